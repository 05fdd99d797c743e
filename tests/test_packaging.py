"""Packaging: the runtime install is what the package imports; extras hold the course tools;
pyproject.toml and environment.yml (Binder) agree; Colab's install keeps Colab's packages;
the repository's location is written once."""
import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "livecell_kit"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB_PINS = Path(__file__).with_name("colab_pins.txt")
#: What a course user runs besides the kit; none of it may come with `pip install livecell-kit`.
COURSE_TOOLS = {"jupyterlab", "jupytext", "nbval", "pytest", "notebook", "jupyter"}
#: Packages Colab ships that the kit's install must never replace (its GPU TensorFlow, its frontend).
COLAB_KEEPS = {"tensorflow", "keras", "numpy", "ipywidgets", "jupyter-server"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _meta() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def runtime_dependencies() -> set[str]:
    return {_name(r) for r in _meta()["dependencies"]}


def extra(name: str) -> set[str]:
    return {_name(r) for r in _meta()["optional-dependencies"][name]}


def environment_dependencies() -> set[str]:
    names, section = set(), None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if re.match(r"^\w", line):
            section = line.split(":")[0]
        # Only top-level conda entries ("  - name"), not the nested pip section ("      - -e .").
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)", line)
        if section == "dependencies" and m and m.group(1) not in {"python", "pip"}:
            names.add(_name(m.group(1)))
    return names


def _guarded(tree: ast.AST) -> set[int]:
    """ids of import nodes inside ``try: ... except ImportError`` (optional imports)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                for h in node.handlers):
            ids |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return ids


def imported_distributions() -> dict[str, set[str]]:
    """Distribution -> modules of livecell_kit importing it unconditionally (optional imports left out)."""
    to_dist = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        optional = _guarded(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            for root in roots:
                if root in sys.stdlib_module_names or root in {"livecell_kit", "__future__"}:
                    continue
                dists = to_dist.get(root)
                assert dists, f"{path.relative_to(ROOT)} imports {root}, which no installed distribution provides"
                found.setdefault(_name(dists[0]), set()).add(str(path.relative_to(ROOT)))
    return found


def test_runtime_dependencies_are_exactly_what_the_package_imports():
    imported, declared = imported_distributions(), runtime_dependencies()
    assert set(imported) == declared, (
        f"imported but not in [project] dependencies: {sorted(set(imported) - declared)} "
        f"({ {k: sorted(v) for k, v in imported.items() if k not in declared} }); "
        f"declared but never imported by livecell_kit: {sorted(declared - set(imported))}")


def test_course_tools_live_in_extras_and_dev_includes_course():
    assert not runtime_dependencies() & COURSE_TOOLS, "course tools belong in the `course`/`dev` extras"
    assert {"jupyterlab", "jupytext", "nbval"} <= extra("course")
    dev = _meta()["optional-dependencies"]["dev"]
    assert "livecell-kit[course]" in dev and "pytest" in extra("dev")
    makefile = (ROOT / "Makefile").read_text()
    assert 'pip install -q -e ".[dev]"' in makefile


def test_the_export_extra_stays_out_of_the_runtime_and_dev_installs():
    # Installing bioimageio.core/tf2onnx beside the dev set changed Keras' tree backend on a fresh
    # clone (notebooks failed importing torch), so `make test` leaves the extra out and
    # tests/test_export.py skips its bioimageio checks; `pip install .[export]` runs them.
    assert "livecell-kit[export]" not in _meta()["optional-dependencies"]["dev"]
    assert {"bioimageio.core", "tf2onnx", "onnx", "onnxruntime"} <= extra("export")
    assert not extra("export") & runtime_dependencies(), "the export tools stay out of the runtime install"


def test_environment_yml_lists_runtime_and_course_packages():
    pip_side, conda_side = runtime_dependencies() | extra("course"), environment_dependencies()
    assert pip_side == conda_side, (
        f"only in pyproject.toml: {sorted(pip_side - conda_side)}; "
        f"only in environment.yml: {sorted(conda_side - pip_side)}")


def test_packages_colab_ships_are_not_pinned():
    # An exact pin or an upper bound would replace Colab's GPU build or its frontend's widgets.
    for req in _meta()["dependencies"]:
        if _name(req) in COLAB_KEEPS:
            assert "==" not in req and "<" not in req, req


# ---------------------------------------------------------------------------- the repository's location

def repository() -> tuple[str, str]:
    """(owner, name) from pyproject.toml's [project.urls] Repository, the one place it is written."""
    url = _meta()["urls"]["Repository"]
    m = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url)
    assert m, f"pyproject.toml [project.urls] Repository must be https://github.com/OWNER/NAME, not {url}"
    return m.group(1), m.group(2)


_LINK_PATTERNS = (
    r"github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?(?=[/\"')\s]|$)",
    r"colab\.research\.google\.com/github/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)",
    r"mybinder\.org/v2/gh/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)",
)


def _links(text: str):
    for pattern in _LINK_PATTERNS:
        for m in re.finditer(pattern, text):
            yield m.group(0), (m.group("owner"), m.group("name"))


def test_every_badge_and_install_url_names_the_one_repository():
    expected = repository()
    files = [ROOT / "README.md", *NOTEBOOKS, *(p.with_suffix(".py") for p in NOTEBOOKS)]
    wrong = [f"{f.relative_to(ROOT)}: {link}" for f in files for link, where in _links(f.read_text())
             if where != expected]
    assert not wrong, (f"links that disagree with pyproject.toml's Repository {'/'.join(expected)} "
                       "(change them, or the Repository URL, so all agree):\n" + "\n".join(wrong))
    readme = (ROOT / "README.md").read_text()
    owner, name = expected
    for nb in NOTEBOOKS:  # each Colab badge opens its own notebook
        assert f"colab.research.google.com/github/{owner}/{name}/blob/main/notebooks/{nb.name}" in readme, nb.name


def test_the_link_check_catches_a_stale_location():
    assert dict(_links("[![b](https://mybinder.org/v2/gh/old-owner/kit/HEAD)]"))
    assert list(_links("git+https://github.com/someone/fork.git\"")) == [
        ("github.com/someone/fork.git", ("someone", "fork"))]


# ---------------------------------------------------------------------------- Colab's install

def test_every_notebook_installs_the_kit_the_same_way_keeping_colabs_packages():
    from livecell_kit import course

    for nb in NOTEBOOKS:  # the notebooks carry the line itself: nothing of the kit runs before it
        first = next(c for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code").source
        assert course.COLAB_INSTALL in first.splitlines(), f"{nb.name}: its first cell lacks course.COLAB_INSTALL"
        assert first.count("pip install") == 1, nb.name
    line = course.COLAB_INSTALL
    # Only on Colab (its machines have /content; IPython's `!` ignores the failed test elsewhere).
    assert line.startswith("!test -e /content && ")
    # Every installed package is a constraint at its installed version, so pip adds what is
    # missing and can replace nothing; the kit itself comes from the repository.
    assert "pip list --format=freeze > /tmp/colab-packages.txt" in line and "-c /tmp/colab-packages.txt" in line
    owner, name = repository()
    assert f'"livecell-kit @ git+https://github.com/{owner}/{name}"' in line
    assert "--upgrade" not in line and " -U " not in line


def _index_reachable() -> bool:
    probe = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed",
             "--quiet", "--disable-pip-version-check", "ijson"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.mark.network
def test_colab_install_keeps_colabs_packages_and_pulls_no_course_tools(tmp_path):
    """Resolve the notebooks' Colab install against a Colab-like package set (tests/colab_pins.txt).

    As in the notebook, every Colab package is a constraint; resolution must succeed (nothing
    of Colab's needs replacing) and bring none of JupyterLab, jupytext, nbval, pytest.
    Needs the package index (~40 s); skipped when it cannot be reached.
    """
    if not _index_reachable():
        pytest.skip("package index not reachable: cannot resolve the Colab install")
    pins = {_name(line): line.split("==")[1].strip() for line in COLAB_PINS.read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    assert COLAB_KEEPS <= set(pins)
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--report", str(report), "--constraint", str(COLAB_PINS), str(ROOT)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    # With Colab's versions as constraints, success means nothing of Colab's needs replacing.
    assert result.returncode == 0, "the kit's install conflicts with Colab's packages:\n" + result.stderr[-3000:]
    installed = {_name(item["metadata"]["name"]): item["metadata"]["version"]
                 for item in json.loads(report.read_text())["install"]}
    pulled = (set(installed) - set(pins)) & COURSE_TOOLS
    assert not pulled, f"pulls course tools onto Colab: {sorted(pulled)}"
