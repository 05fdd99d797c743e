"""The two dependency lists (pip: pyproject.toml, conda/Binder: environment.yml) must agree."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pyproject_dependencies() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(r) for r in meta["dependencies"]}


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


def test_environment_yml_lists_the_same_packages_as_pyproject():
    pip_side, conda_side = pyproject_dependencies(), environment_dependencies()
    assert pip_side == conda_side, (
        f"only in pyproject.toml: {sorted(pip_side - conda_side)}; "
        f"only in environment.yml: {sorted(conda_side - pip_side)}"
    )


def test_design_card_packages_are_dependencies():
    required = {"jupyterlab", "tensorflow", "pycocotools", "matplotlib", "ipywidgets", "nbval", "jupytext"}
    assert required <= pyproject_dependencies()


def test_tensorflow_and_numpy_are_not_pinned():
    # Colab preinstalls both; an exact pin would replace its GPU build.
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in meta["dependencies"]:
        if _name(req) in {"tensorflow", "numpy"}:
            assert "==" not in req and "<" not in req, req


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make demo" in (ROOT / "README.md").read_text()
