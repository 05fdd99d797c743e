"""The course's notebooks: paired with their .py twins, nbval really checks, student versions work.

nbval itself runs the solution notebooks (``make nbval``); these tests check the machinery
around it. The student-notebook execution test reuses the work folder that nbval filled
(sample data, mask cache, the quick run), so it is cheap after ``make nbval``.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks

from livecell_kit import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}
EXPECTED = ["01_data", "02_masks", "03_model", "04_training", "05_evaluation", "06_cells"]


def test_the_six_notebooks_exist_in_order():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_py_percent_twin_agree(path):
    twin = path.with_suffix(".py")
    assert twin.exists(), f"{twin} missing: run `make sync`"
    assert "format_name: percent" in twin.read_text(), f"{twin} is not py:percent: run `make sync`"
    # Raises with a diff when code or markdown differ (outputs are ignored).
    compare_notebooks(jupytext.read(twin), jupytext.read(path), fmt="py:percent")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_starts_with_colab_aware_setup_and_has_checked_cells(path):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    # One start: the Colab line (a no-op elsewhere), one setup call, its one-line summary.
    assert course.COLAB_INSTALL in code[0].splitlines()
    assert "kit = course.setup(" in code[0] and code[0].rstrip().endswith("print(kit)")
    looked_up = [f for f in ("data_root(", "training_root(", "explored_split(", "evaluation_split(", "data_label(")
                 if f"course.{f}" in code[1]]
    assert not looked_up, f"setup() found these already: read them from `kit`, not {looked_up}"
    assert any(src.startswith("# NBVAL_CHECK_OUTPUT") for src in code), "no nbval-checked cell"
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert all(c.outputs for c in checked), "a checked cell has no stored output to compare: run `make demo` and store"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_data_notebooks_leave_tensorflow_unloaded_and_the_others_load_it(path):
    setup = next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    data_only = path.stem in {"01_data", "02_masks"}
    assert ("course.setup(tensorflow=False)" in setup) == data_only, setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_by_asking_to_shut_its_kernel_down(path):
    last = nbformat.read(path, as_version=4).cells[-1]
    assert last.cell_type == "markdown" and "Kernel → Shut Down Kernel" in last.source
    assert "2 GB" in last.source  # why: Binder's limit


def _shown_texts(nb):
    """(cell index, output type, text) of every stored text output."""
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                yield index, f"stream:{out.name}", out.text
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in out.get("data", {}):
                    yield index, mime, out.data[mime]


#: An absolute path of at least two levels (/home/me, /tmp/x, /work/..., /content/...).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])/(?:[\w.-]+/)+[\w.-]+")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_show_no_machine_paths_progress_bars_or_warnings(path):
    """What `make outputs` stores: what GitHub shows and nbval compares. Rerun it when this fails."""
    nb = nbformat.read(path, as_version=4)
    problems = []
    for index, kind, text in _shown_texts(nb):
        if kind == "stream:stderr":
            problems.append(f"cell {index}: red stderr output {text[:120]!r}")
        for found in _ABSOLUTE_PATH.findall(text):
            problems.append(f"cell {index}: machine path {found!r}")
        if re.search(r"\d+%\|", text):
            problems.append(f"cell {index}: a stored progress bar {text[:80]!r}")
    assert not problems, "\n".join(problems) + "\nrun `make outputs` (fresh work folder, quiet logs, no bars)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_widget_state_belongs_to_a_stored_widget(path):
    """nbconvert keeps an earlier run's widget state (~20 KB) when a run shows none: `make outputs` drops it."""
    nb = nbformat.read(path, as_version=4)
    shows_widgets = any("application/vnd.jupyter.widget-view+json" in out.get("data", {})
                        for cell in nb.cells for out in cell.get("outputs", []))
    assert shows_widgets or "widgets" not in nb.metadata, "stale widget state: run `make outputs`"


def test_the_stored_training_notebook_shows_the_whole_run():
    """`make outputs` trains from an empty work folder, so 04 stores the epoch log, not a reload."""
    nb = nbformat.read(NOTEBOOK_DIR / "04_training.ipynb", as_version=4)
    shown = "\n".join(text for _, _, text in _shown_texts(nb))
    assert "Epoch 1/" in shown and "run already finished" not in shown and "trained already" not in shown


def test_make_outputs_starts_from_an_empty_work_folder_of_its_own():
    """Whatever work folder the caller's environment names, `make outputs` empties and uses its own."""
    work = ROOT / "build" / "outputs-work"
    env = {**os.environ, "LIVECELL_KIT_WORKDIR": "/somewhere/else", "TF_CPP_MIN_LOG_LEVEL": "0"}
    dry = subprocess.run(["make", "-n", "-p", "outputs", "STAMP=pyproject.toml"], cwd=ROOT, env=env,
                         capture_output=True, text=True).stdout
    commands = dry.splitlines()
    removal = next(i for i, line in enumerate(commands) if line == f'rm -rf "{work}"')
    execution = next(i for i, line in enumerate(commands) if "nbconvert" in line and "--execute" in line)
    assert removal < execution
    for setting in (f"LIVECELL_KIT_WORKDIR := {work}", "TF_CPP_MIN_LOG_LEVEL := 3", "TQDM_DISABLE := 1"):
        assert f"outputs: {setting}" in commands, setting
    assert any('metadata.pop("widgets"' in line for line in commands[:execution])


def test_shown_paths_are_relative(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "build" / "work"))
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert course.shown_path(course.workdir()) == "../build/work"
    assert course.shown_path(course.workdir() / "runs" / "quick-sample-seed0") == "runs/quick-sample-seed0"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")
    assert course.shown_path(tmp_path / "home" / ".cache" / "livecell-kit") == "~/.cache/livecell-kit"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_checker(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if course.BEGIN_SOLUTION in cell.source:
            assert "exercises.check_" in cell.source.split(course.END_SOLUTION)[1], cell.source


def _solution_lines(nb) -> list[str]:
    lines = []
    for cell in nb.cells:
        for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.DOTALL):
            # a function's def line stays in the student copy on purpose: it says what to write
            lines += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("def ")]
    return lines


def test_student_notebooks_contain_no_solution_code(tmp_path):
    written = course.make_student_notebooks(NOTEBOOK_DIR, tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    n_exercises = 0
    for solution_path, student_path in zip(NOTEBOOKS, written):
        solution = nbformat.read(solution_path, as_version=4)
        text = student_path.read_text()
        student = nbformat.read(student_path, as_version=4)
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        for line in _solution_lines(solution):
            assert all(line not in c.source for c in student.cells), f"solution line leaked: {line!r}"
        n_exercises += sum("# your code" in c.source for c in student.cells)
        assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
        assert "NBVAL_" not in text and "nbval-" not in text, f"{student_path.name}: nbval markers left"
        assert "widgets" not in student.metadata, f"{student_path.name}: saved widget state left"
    assert n_exercises >= len(NOTEBOOKS), "each notebook should carry at least one exercise"


def test_student_copies_drop_nbval_markers_tags_and_widget_state(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {}},
                                            "kernelspec": KERNELSPEC})
    nb.cells = [nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)\n    # NBVAL_IGNORE_OUTPUT\nx = 2",
                                          metadata={"tags": ["nbval-ignore-output", "keep-me"]}),
                nbformat.v4.new_code_cell("print('# NBVAL_ in a string stays')", metadata={"tags": ["nbval-skip"]})]
    (tmp_path / "src").mkdir()
    nbformat.write(nb, tmp_path / "src" / "01_x.ipynb")
    student = nbformat.read(course.make_student_notebooks(tmp_path / "src", tmp_path / "out")[0], as_version=4)
    assert student.cells[0].source == "print(1)\nx = 2" and student.cells[0].metadata["tags"] == ["keep-me"]
    assert student.cells[1].source == "print('# NBVAL_ in a string stays')" and "tags" not in student.cells[1].metadata
    assert "widgets" not in student.metadata and student.metadata["kernelspec"] == KERNELSPEC


def test_strip_solutions_keeps_indentation_and_the_checker():
    source = ("for x in range(1):\n    ### BEGIN SOLUTION\n    total = 40\n    answer = total + 2\n"
              "    ### END SOLUTION\nexercises.check_answer(answer)\n")
    stripped = course.strip_solutions(source)
    assert "40" not in stripped and "total" not in stripped
    assert "    answer = ...  # your code\n" in stripped and stripped.endswith("exercises.check_answer(answer)\n")
    compile(stripped, "<student>", "exec")


def test_strip_solutions_leaves_a_function_to_fill_in():
    source = ('### BEGIN SOLUTION\ndef area(counts, scale=1):\n    """Pixels."""\n'
              '    return sum(counts[1::2]) * scale\n### END SOLUTION\ncheck(area)\n')
    stripped = course.strip_solutions(source)
    assert "counts[1::2]" not in stripped
    assert stripped.startswith("def area(counts, scale=1):\n    'Pixels.'\n    ...  # your code")
    namespace = {}
    exec(compile(stripped.replace("check(area)", ""), "<student>", "exec"), namespace)
    assert namespace["area"]([1, 2]) is None


def _execute(path: Path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
    return path, nb


@pytest.mark.after_nbval
def test_student_notebooks_run_through_and_say_your_turn(tmp_path):
    written = course.make_student_notebooks(NOTEBOOK_DIR, tmp_path)
    # Two kernels at a time: much of a notebook is single-threaded Python (imports, watershed,
    # figures), so two kernels share 2 cores better than one (not measured side by side yet).
    with ThreadPoolExecutor(max_workers=2) as pool:
        executed = list(pool.map(_execute, written))
    for path, nb in executed:
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{path.name}: cell failed: {errors[0].ename}: {errors[0].evalue}"
            if "# your code" in cell.source:
                shown = " ".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                                 for o in cell.outputs)
                assert "Your turn:" in shown, f"{path.name}: exercise cell gave no 'Your turn' message"


def test_nbval_fails_on_a_broken_expected_output(small_sample, tmp_path):
    """Corrupt the stored output of 03_model's first checked cell: nbval must report a failure.

    Runs 03 up to that cell only (the rest of the notebook is nbval's own job), its setup on a
    small sample rather than drawing the whole one.
    """
    nb = nbformat.read(NOTEBOOK_DIR / "03_model.ipynb", as_version=4)
    index, checked = next((i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"
                          and c.source.startswith("# NBVAL_CHECK_OUTPUT")
                          and any(o.output_type == "stream" for o in c.outputs))
    stream = next(o for o in checked.outputs if o.output_type == "stream")
    stream.text = re.sub(r"\d", "7", stream.text) + "an extra line nobody prints\n"
    nb.cells = nb.cells[:index + 1]
    nbformat.write(nb, tmp_path / "03_model_broken.ipynb")
    result = _nbval(tmp_path / "03_model_broken.ipynb", NOTEBOOK_DIR, LIVECELL_KIT_DATA_ROOT=str(small_sample),
                    LIVECELL_KIT_WORKDIR=str(tmp_path / "work"))
    assert result.returncode != 0, result.stdout[-2000:]
    assert "an extra line nobody prints" in result.stdout or "mismatch" in result.stdout.lower()


def _nbval(notebook: Path, cwd: Path, **env) -> subprocess.CompletedProcess:
    """nbval as ``make nbval`` runs it (the notebooks' conftest.py beside ``notebook``), with ``env``
    added to the environment."""
    (notebook.parent / "conftest.py").write_text((NOTEBOOK_DIR / "conftest.py").read_text())
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", str(notebook), "-p", "no:cacheprovider", "-q",
           "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}, timeout=900)


@pytest.mark.parametrize("stored, passes", [("AP 0.052   AP50 0.138   IoU 0.800  n 12", True),
                                            ("AP 0.060   AP50 0.120   IoU 0.785  n 12", True),
                                            ("AP 0.001   AP50 0.138   IoU 0.800  n 12", False),
                                            ("AP 0.052   AP50 0.138   IoU 0.800  n 13", False),
                                            ("AP 0.052   AP50 0.138   IoU 0.800", False)])
def test_nbval_compares_metrics_with_a_tolerance(tmp_path, stored, passes):
    """notebooks/conftest.py: decimals within 0.02 (or 5 %) of the stored value pass, integers match."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    cell = nbformat.v4.new_code_cell('# NBVAL_CHECK_OUTPUT\nprint("AP 0.052   AP50 0.138   IoU 0.800  n 12")')
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored + "\n")]
    cell.execution_count = 1
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "metrics.ipynb")
    result = _nbval(tmp_path / "metrics.ipynb", tmp_path)
    assert (result.returncode == 0) == passes, result.stdout[-2000:]


@pytest.mark.parametrize("stored, passes", [(": True", True), (": False", False)])
def test_nbval_checks_the_verdict_notebook_05_stores(tmp_path, stored, passes):
    """05's checked "the U-Net beats every baseline: True" is compared by nbval, not masked.

    (05's numbers themselves change with the CPU that trained the model, so its checked cells print
    what does not, and assert that the notebook's metrics equal evaluate_model's.) The cell runs as
    05 has it, on made-up results in which the U-Net wins; its stored output set to False must fail.
    nbval itself runs the whole of 05 against the stored True.
    """
    nb = nbformat.read(NOTEBOOK_DIR / "05_evaluation.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")
                and "beats every baseline" in c.source)
    stream = next(o for o in cell.outputs if o.output_type == "stream")
    assert stream.text.strip().endswith(": True"), stream.text
    stream.text = stream.text.replace(": True", stored)
    made_up = nbformat.v4.new_code_cell(
        'results = {"iou": 0.8, "dice": 0.9, "baselines": {"otsu": {"iou": 0.5, "dice": 0.6}}}')
    nb.cells = [made_up, cell]
    nbformat.write(nb, tmp_path / "05_evaluation.ipynb")
    result = _nbval(tmp_path / "05_evaluation.ipynb", tmp_path)
    assert (result.returncode == 0) == passes, result.stdout[-3000:]
    if not passes:
        assert "beats every baseline" in result.stdout and "Dice: False" in result.stdout, result.stdout[-3000:]
