"""Notebook 05 in a real browser: JupyterLab + headless Chromium, Run All, then drive the viewer.

Run it with ``make browser-test`` (installs Playwright into .venv; needs Debian's
``chromium`` package: ``sudo apt-get install -y chromium``).  Skipped when Chromium,
Playwright or JupyterLab is missing.  JupyterLab runs on 127.0.0.1 on a free port with no
token, with its own temporary settings and root folder (a copy of the notebook, so the
repository's stays untouched).  The kernel uses ``$LIVECELL_KIT_WORKDIR``, so a quick run
trained before (notebook 04, ``make nbval``) is reused; without one, notebook 05 trains it
first (minutes).  Screenshots go to ``$LIVECELL_KIT_SCREENSHOTS`` (default build/browser-test/).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "05_evaluation.ipynb"
RUN_ALL_TIMEOUT_S = 1500  # evaluation on a 2-core CPU; longer when the quick run must train first

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="Chromium not installed "
                                "(sudo apt-get install -y chromium), see make browser-test")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (make browser-test)")
pytest.importorskip("jupyterlab", reason="JupyterLab not installed")


def _jupyter_path() -> str:
    """Share folders with the kernel spec and the widgets' lab extension, for ``$JUPYTER_PATH``.

    In a plain venv both are under ``sys.prefix``; a venv layered on another one (a .pth
    file pointing at its site-packages) keeps the extension next to that other site-packages.
    """
    import jupyterlab_widgets

    folders = [Path(sys.prefix) / "share" / "jupyter"]
    for parent in Path(jupyterlab_widgets.__file__).resolve().parents:
        if (parent / "share" / "jupyter" / "labextensions" / "@jupyter-widgets").is_dir():
            folders.append(parent / "share" / "jupyter")
            break
    return os.pathsep.join(str(f) for f in folders)


def _write_settings(settings_dir: Path) -> None:
    """Lab settings for a scripted session: every cell in the page (no windowed rendering,
    which leaves off-screen cells out of the DOM) and no news pop-up over the notebook."""
    for plugin, values in (("notebook-extension/tracker", '{"windowingMode": "none"}'),
                           ("apputils-extension/notification", '{"fetchNews": "false"}')):
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyterlab():
    """A JupyterLab server on a free local port, token disabled; yields its base URL."""
    # its own folder, not pytest's tmp_path: other pytest sessions of the same user prune those
    with tempfile.TemporaryDirectory(prefix="livecell-kit-browser-") as folder:
        yield from _serve(Path(folder))


def _serve(folder: Path):
    root = folder / "root"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    env = {k: v for k, v in os.environ.items() if k != "LIVECELL_KIT_STATIC_PLOTS"}  # live widgets
    env.setdefault("LIVECELL_KIT_WORKDIR", str(REPO / "build" / "work"))
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR",
                 "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        env[name] = str(folder / name.lower())
    env["JUPYTER_PATH"] = _jupyter_path()
    _write_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    port = _free_port()
    log = open(folder / "jupyterlab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
         "--ServerApp.allow_root=True",  # containers and CI often run as root
         f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True",  # window.jupyterapp, to run its commands
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(folder / 'jupyterlab.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail("JupyterLab did not answer within 120 s")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _viewer_src(page) -> str:
    return page.locator("img.widget-image").first.get_attribute("src") or ""


def test_notebook_05_viewer_draws_and_redraws_in_chromium(jupyterlab):
    shots = Path(os.environ.get("LIVECELL_KIT_SCREENSHOTS", REPO / "build" / "browser-test"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{jupyterlab}/lab/tree/{NOTEBOOK.name}")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for()
        # run only once the notebook's kernel is connected and idle: a run issued earlier is lost
        page.wait_for_function("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                               " const k = w && w.sessionContext && w.sessionContext.session"
                               " && w.sessionContext.session.kernel;"
                               " return w.sessionContext.isReady && k && k.status === 'idle'"
                               " && k.connectionStatus === 'connected'; }")
        # the stored outputs hold the viewer's picture too: clear them, so only a fresh one counts
        page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        page.wait_for_function("() => !document.querySelector('img.widget-image')")
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")  # Run > Run All Cells

        image = page.locator("img.widget-image").first
        image.wait_for(state="visible", timeout=RUN_ALL_TIMEOUT_S * 1000)
        page.wait_for_function("() => { const i = document.querySelector('img.widget-image');"
                               " return i && i.complete && i.naturalWidth > 0; }")
        viewer_box = image.locator("xpath=..")  # the VBox: controls and picture
        viewer_box.scroll_into_view_if_needed()
        first = _viewer_src(page)
        assert first.startswith("blob:") or first.startswith("data:image/png")
        viewer_box.screenshot(path=str(shots / "viewer-first.png"))

        dropdowns = page.locator(".widget-dropdown select")
        cell_types = dropdowns.first.locator("option").all_inner_texts()
        assert cell_types[0] == "all" and len(cell_types) > 2
        dropdowns.first.select_option(cell_types[2])  # the second cell type: another image
        page.wait_for_function("(before) => { const i = document.querySelector('img.widget-image');"
                               " return i && i.src !== before && i.complete && i.naturalWidth > 0; }", arg=first)
        second = _viewer_src(page)
        viewer_box.screenshot(path=str(shots / "viewer-after-cell-type.png"))

        page.locator(".widget-checkbox", has_text="missed").locator("input").click()
        page.wait_for_function("(before) => document.querySelector('img.widget-image').src !== before", arg=second)
        viewer_box.screenshot(path=str(shots / "viewer-missed-off.png"))

        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                              has_text="Traceback")
        assert errors.count() == 0
        browser.close()
