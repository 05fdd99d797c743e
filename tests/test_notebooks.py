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
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.compare import compare_notebooks

from livecell_kit import course

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
EXPECTED = ["01_data", "02_masks", "03_model", "04_training", "05_evaluation"]


def test_the_five_notebooks_exist_in_order():
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
    assert "google.colab" in code[0] and "course.setup()" in code[0]
    assert any(src.startswith("# NBVAL_CHECK_OUTPUT") for src in code), "no nbval-checked cell"
    checked = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")]
    assert all(c.outputs for c in checked), "a checked cell has no stored output to compare: run `make demo` and store"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_checker(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if course.BEGIN_SOLUTION in cell.source:
            assert "checks.check_" in cell.source.split(course.END_SOLUTION)[1], cell.source


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
    assert n_exercises >= len(NOTEBOOKS), "each notebook should carry at least one exercise"


def test_strip_solutions_keeps_indentation_and_the_checker():
    source = ("for x in range(1):\n    ### BEGIN SOLUTION\n    total = 40\n    answer = total + 2\n"
              "    ### END SOLUTION\nchecks.check_answer(answer)\n")
    stripped = course.strip_solutions(source)
    assert "40" not in stripped and "total" not in stripped
    assert "    answer = ...  # your code\n" in stripped and stripped.endswith("checks.check_answer(answer)\n")
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


def test_student_notebooks_run_through_and_say_your_turn(tmp_path):
    from nbclient import NotebookClient

    written = course.make_student_notebooks(NOTEBOOK_DIR, tmp_path)
    for path in written:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{path.name}: cell failed: {errors[0].ename}: {errors[0].evalue}"
            if "# your code" in cell.source:
                shown = " ".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "")
                                 for o in cell.outputs)
                assert "Your turn:" in shown, f"{path.name}: exercise cell gave no 'Your turn' message"


def test_nbval_fails_on_a_broken_expected_output(tmp_path):
    """Corrupt one stored output of a checked cell in 03_model: nbval must report a failure."""
    nb = nbformat.read(NOTEBOOK_DIR / "03_model.ipynb", as_version=4)
    checked = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("# NBVAL_CHECK_OUTPUT")
                   and any(o.output_type == "stream" for o in c.outputs))
    stream = next(o for o in checked.outputs if o.output_type == "stream")
    stream.text = re.sub(r"\d", "7", stream.text) + "an extra line nobody prints\n"
    broken = tmp_path / "03_model_broken.ipynb"
    nbformat.write(nb, broken)
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", str(broken), "-p", "no:cacheprovider", "-q",
           "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]
    result = subprocess.run(cmd, cwd=NOTEBOOK_DIR, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode != 0, result.stdout[-2000:]
    assert "an extra line nobody prints" in result.stdout or "mismatch" in result.stdout.lower()
