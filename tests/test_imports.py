"""The package's import graph: no cycles, imports at the top, light stages stay light.

The graph is read from the source (``ast``), so it also sees imports inside
functions, which a cycle can hide behind until the one call that triggers it.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "livecell_kit"
#: Modules allowed to import kit stages inside functions, and why: the CLI and the
#: notebooks' course helpers load TensorFlow only for the commands/cells that train
#: or predict (TensorFlow costs seconds and ~0.5 GB at import, Binder's kernel has 2 GB);
#: the console script (launch) imports the CLI inside main() so a Ctrl-C while it loads is caught;
#: notebook 03's decoder-block checker builds Keras layers with the kit's builder only when called,
#: so notebooks 01-02, which import the exercises, stay TensorFlow-free.
LAZY_OK = {"livecell_kit.cli.commands", "livecell_kit.course", "livecell_kit.cli.launch", "livecell_kit.exercises.model"}
#: Stages a notebook or the CLI imports before any model exists.
LIGHT = ("livecell_kit.data", "livecell_kit.sample", "livecell_kit.masks", "livecell_kit.figures", "livecell_kit.presets",
         "livecell_kit.course", "livecell_kit.kernels", "livecell_kit.exercises", "livecell_kit.cli.commands")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _kit_imports(tree: ast.AST):
    """(module imported, line, at top level?) for every livecell_kit import in ``tree``."""
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from livecell_kit import data" imports the module data; "from x.y import f" imports x.y.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in MODULES
                     else node.module for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("livecell_kit.") and name in MODULES:
                yield name, node.lineno, id(node) in top


def _graph() -> dict[str, set[str]]:
    return {name: {dep for dep, _, _ in _kit_imports(ast.parse(path.read_text()))}
            for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    path: list[str] = []

    def visit(node: str):
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_package_import_graph_has_no_cycles():
    assert _cycle(_graph()) is None


def test_kit_imports_are_at_the_top():
    late = [f"{name}:{line} imports {dep}"
            for name, path in MODULES.items() if name not in LAZY_OK
            for dep, line, at_top in _kit_imports(ast.parse(path.read_text())) if not at_top]
    assert not late, "import kit modules at the top of the module:\n" + "\n".join(late)


@pytest.mark.parametrize("module", LIGHT)
def test_light_stages_do_not_load_tensorflow(module):
    code = (f"import sys, {module}; heavy = sorted(m for m in ('tensorflow', 'keras', "
            f"'matplotlib.pyplot') if m in sys.modules); print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = set(filter(None, out.stdout.strip().split(",")))
    if module == "livecell_kit.figures":
        heavy.discard("matplotlib.pyplot")  # plotting is its job
    assert not heavy, f"importing {module} loads {sorted(heavy)}"


DATA_NOTEBOOKS = ("01_data", "02_masks")


@pytest.mark.parametrize("notebook", DATA_NOTEBOOKS)
def test_data_notebooks_imports_and_setup_do_not_load_tensorflow(notebook, small_sample, tmp_path):
    """Every import in notebooks 01-02, then their setup call: TensorFlow and Keras stay unloaded.

    A kernel that never imports TensorFlow stays ~0.5 GB smaller (Binder's limit: 2 GB in all).
    (Set up on a small sample named as the data root: drawing the whole sample would add ~15 s.)
    """
    source = (PACKAGE.parent / "notebooks" / f"{notebook}.py").read_text()
    imports = [ast.unparse(node) for node in ast.walk(ast.parse(source))
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert any("livecell_kit" in line for line in imports)
    code = "\n".join(imports + ["from livecell_kit import course", "course.setup(tensorflow=False)",
                                "import sys", "print(','.join(m for m in ('tensorflow', 'keras') if m in sys.modules))"])
    env = {**os.environ, "LIVECELL_KIT_DATA_ROOT": str(small_sample), "LIVECELL_KIT_WORKDIR": str(tmp_path / "work")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert not out.stdout.strip(), f"notebook {notebook} loads {out.stdout.strip()}"
