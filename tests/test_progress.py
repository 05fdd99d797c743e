"""Progress bars off in stored notebook outputs (TQDM_DISABLE), live otherwise."""
import pytest
from tqdm import notebook

from livecell_kit import progress


@pytest.mark.parametrize("value, disabled", [("1", True), ("true", True), ("", False), ("0", False), (None, False)])
def test_notebook_bars_follow_tqdm_disable(monkeypatch, value, disabled):
    # tqdm's notebook bar passes disable=False itself, so TQDM_DISABLE alone does not reach it.
    monkeypatch.setattr(progress, "tqdm", notebook.tqdm)
    if value is None:
        monkeypatch.delenv(progress.DISABLE_ENV, raising=False)
    else:
        monkeypatch.setenv(progress.DISABLE_ENV, value)
    bar = progress.progress_bar(range(3), desc="masks")
    assert bar.disable is disabled
    assert list(bar) == [0, 1, 2]
    bar.close()


def test_an_explicit_disable_still_wins(monkeypatch):
    monkeypatch.delenv(progress.DISABLE_ENV, raising=False)
    assert progress.progress_bar(range(2), disable=True).disable
