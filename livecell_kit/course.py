"""Course plumbing shared by the notebooks: setup, where data and runs live, student versions.

Every notebook starts with one call, ``kit = course.setup()``: it returns a :class:`Course`
holding what the notebook needs (the data root, its label, the splits, where notebook 04
trains and saves its run), computed by the look-ups below, so each notebook runs on its own:
it rebuilds (or reuses) what the earlier notebooks produced in the work folder.

Exercises in the solution notebooks are marked nbgrader-style::

    ### BEGIN SOLUTION
    area = ...
    ### END SOLUTION

:func:`make_student_notebooks` removes what lies between the markers and puts
placeholders in its place (``answer = ...``), which the exercise's checker
answers with "Your turn".
"""
from __future__ import annotations

import ast
import contextlib
import os
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import matplotlib

from livecell_kit import atomic, data, kernels, presets, sample

#: Set this environment variable to a folder holding real LIVECell (as laid out by
#: ``livecell-kit download``) to run every notebook on it instead of the sample.
REAL_DATA_ENV = "LIVECELL_KIT_DATA_ROOT"

#: Set this environment variable to 1 to have notebook 06 load the cells model the kit ships
#: (:mod:`livecell_kit.pretrained`: the same preset trained on the same sample) instead of training
#: it for several minutes. ``make test`` sets it, so nbval checks 06 quickly; Colab does it anyway.
USE_PRETRAINED_ENV = "LIVECELL_KIT_USE_PRETRAINED"

#: The line each notebook's first cell runs. Only on Colab (its machines have /content) does it do anything:
#: a Colab notebook starts on a fresh machine without the kit, so this installs it, holding every
#: package Colab already has at its version (pip constraints from ``pip list``): pip adds what is
#: missing and replaces nothing, so Colab's TensorFlow, numpy, ipywidgets and Jupyter stay.
#: It has to be a shell line in the notebook: no code of the kit can run before the kit is there.
COLAB_INSTALL = ('!test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q '
                 '-c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"')

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
_SOLUTION_RE = re.compile(
    r"^(?P<indent>[ \t]*)" + re.escape(BEGIN_SOLUTION) + r"[^\n]*\n.*?^[ \t]*" + re.escape(END_SOLUTION) + r"[^\n]*$",
    re.DOTALL | re.MULTILINE,
)


#: nbval's comment markers (``# NBVAL_CHECK_OUTPUT``, ``# NBVAL_IGNORE_OUTPUT``...), one per line.
_NBVAL_MARKER_RE = re.compile(r"^[ \t]*# NBVAL_[A-Z_]+[ \t]*(?:\n|$)", re.MULTILINE)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def workdir() -> Path:
    """Folder for artifacts handed from notebook to notebook (sample, masks, runs)."""
    path = data.default_workdir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Course:
    """What a notebook needs, as :func:`setup` found it. ``print(kit)`` says it in one line.

    root: the data the notebook reads: the synthetic sample, or real LIVECell when
        ``$LIVECELL_KIT_DATA_ROOT`` names it (:func:`data_root`).
    label: "synthetic sample" or "real LIVECell", said in every figure's title (:func:`data_label`).
    split: the split notebooks 01-03 explore (:func:`explored_split`: ``train`` when there is one).
    train_root: where notebook 04 trains (:func:`training_root`: the sample when ``root`` has no
        train and val annotations, so a model is never tuned on the frames it is scored on).
    eval_split: the split notebooks 05-06 score (:func:`evaluation_split`: ``test``, else ``val``).
    preset: the settings notebook 04 trains with (``quick``: a couple of minutes on a laptop CPU).
    run_dir: the run folder notebook 04 writes and 05-06 read (:func:`quick_run_dir`).
    device: "GPU" or "CPU" where TensorFlow was loaded, else None; colab: running on Colab.
    use_pretrained: notebook 06 loads the shipped cells model instead of training it
        (:func:`use_pretrained`).
    """

    root: Path
    label: str
    split: str
    train_root: Path
    eval_split: str
    preset: presets.Preset
    run_dir: Path
    device: str | None = None
    colab: bool = False
    use_pretrained: bool = False

    def __str__(self) -> str:
        engine = f"TensorFlow on the {self.device}" if self.device else "no TensorFlow in this notebook"
        work = workdir().absolute()
        inside = Path(self.root).absolute().is_relative_to(work)
        where = f"{shown_path(self.root)} in the work folder" if inside else f"{shown_path(self.root)}; work folder"
        return f"data: {self.label}, {where} {shown_path(work)}; {engine}{' (on Colab)' if self.colab else ''}"


def setup(tensorflow: bool = True, preset: str = "quick") -> Course:
    """Prepare a notebook: plot defaults, TensorFlow when needed, and the data it reads; see :class:`Course`.

    tensorflow: False in the data notebooks (01-02), which never run a model: importing
        TensorFlow costs ~0.5 GB of kernel memory, and Binder restarts a user's kernels above 2 GB.
        When loaded, TensorFlow may grow into GPU memory as it needs (Colab shares its GPU).
    preset: the training settings notebook 04 uses and 05-06 reload.
    Prints one line when the other kernels of this Jupyter session (the notebooks opened before)
    hold more memory than ``presets.OTHER_KERNELS_WARN_MB``, saying to shut the unused ones down.
    """
    matplotlib.rcParams.update({"figure.dpi": 90, "image.cmap": "gray", "axes.titlesize": 10})
    warning = kernels.memory_warning(kernels.other_kernels_mb())
    if warning:
        print(warning)
    device = None
    if tensorflow:
        kernels.limit_malloc()  # before TensorFlow starts its threads
        try:
            tf, gpus = import_tensorflow_quietly()
            for gpu in gpus:
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:
                    pass  # already initialised in this kernel
            device = "GPU" if gpus else "CPU"
        except ImportError:
            device = "CPU"
    root = data_root()
    train_root = training_root()
    return Course(root=root, label=data_label(root), split=explored_split(root), train_root=train_root,
                  eval_split=evaluation_split(root), preset=presets.get_preset(preset),
                  run_dir=quick_run_dir(train_root, preset), device=device, colab=in_colab(),
                  use_pretrained=use_pretrained(train_root))


def use_pretrained(train_root: Path) -> bool:
    """Whether notebook 06 should load the shipped cells model rather than train one on ``train_root``.

    Only where the shipped model is what training would give: ``train_root`` is the sample of
    seed 0 it was trained on. Then on Colab (each notebook starts on a fresh machine, so nothing
    trained earlier is there) or when ``$LIVECELL_KIT_USE_PRETRAINED`` is 1 (``make test``).
    """
    wanted = in_colab() or os.environ.get(USE_PRETRAINED_ENV, "").strip() == "1"
    return wanted and Path(train_root).resolve() == _sample_folder(seed=0).resolve()


def shown_path(path) -> str:
    """``path`` as the notebooks print it, free of machine-specific prefixes.

    Inside the work folder: relative to it (``runs/quick-sample-seed0``); the work folder itself
    and other paths: relative to the current folder when inside its parent, the kit's checkout
    seen from ``notebooks/`` (``../build/work``); else ``~/...`` under the home folder; else absolute.
    """
    path, work = Path(path).absolute(), workdir().absolute()
    if path != work and path.is_relative_to(work):
        return str(path.relative_to(work))
    here, home = Path.cwd().absolute(), Path.home().absolute()
    if here.parent not in (Path(here.anchor), home) and path.is_relative_to(here.parent):
        return os.path.relpath(path, here)
    if path.is_relative_to(home):
        return str(Path("~") / path.relative_to(home))
    return str(path)


def using_real_data() -> bool:
    """True when ``$LIVECELL_KIT_DATA_ROOT`` points the notebooks at the real LIVECell."""
    return bool(os.environ.get(REAL_DATA_ENV))


def data_label(root: Path | None = None) -> str:
    """"synthetic sample" or "real LIVECell", for figure titles, so the sample is never taken for microscopy.

    root: the data root a figure shows (the sample's folder carries the sample's stamp);
        without it, what ``$LIVECELL_KIT_DATA_ROOT`` says the notebooks use.
    """
    if root is None:
        return "real LIVECell" if using_real_data() else "synthetic sample"
    return "synthetic sample" if (Path(root) / sample.STAMP_NAME).is_file() else "real LIVECell"


def import_tensorflow_quietly():
    """Import TensorFlow and list its GPUs with its C++ start-up logs silenced; returns (tf, gpus).

    The chatter ("could not find cuda drivers" on a CPU) would otherwise land in whichever
    notebook cell runs next, making nbval's comparisons flaky, and clutter the CLI's output.
    Later C++ logs below FATAL are off too (``TF_CPP_MIN_LOG_LEVEL=3`` unless set): they are
    CPU-specific notes such as "oneDNN supports DT_UINT8 only on platforms with AVX-512", shown
    in red in a notebook; real errors still raise Python exceptions with their message.
    Set ``TF_CPP_MIN_LOG_LEVEL=0`` before the import to see every log.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet_native_stderr():
        import tensorflow as tf

        return tf, tf.config.list_physical_devices("GPU")


@contextlib.contextmanager
def _quiet_native_stderr():
    """Send file descriptor 2 (where C++ libraries log) to /dev/null inside the block."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some hosted kernels): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def data_root(seed: int = 0, images_per_type: dict | None = None) -> Path:
    """Root of the data set the notebooks use.

    The real LIVECell when ``$LIVECELL_KIT_DATA_ROOT`` names a folder holding it,
    otherwise the bundled sample, generated on first use (seconds) in the work folder.
    """
    real = os.environ.get(REAL_DATA_ENV)
    if real:
        root = Path(real).expanduser()
        if not (root / "annotations").is_dir():
            raise FileNotFoundError(
                f"${REAL_DATA_ENV}={real} holds no annotations/ folder; run "
                f"`livecell-kit download --out {real}` first, or unset the variable to use the sample")
        return root
    return sample_root(seed, images_per_type)


def sample_root(seed: int = 0, images_per_type: dict | None = None) -> Path:
    """The kit's synthetic sample (generated on first use), whatever ``$LIVECELL_KIT_DATA_ROOT`` says."""
    return Path(sample.make_sample(_sample_folder(seed), seed=seed, images_per_type=images_per_type))


def _sample_folder(seed: int) -> Path:
    return workdir() / f"sample-seed{seed}"


def explored_split(root: Path) -> str:
    """The split notebooks 01-02 explore: ``train``, else the first split ``root`` annotates.

    A real data root may hold only some of LIVECell's JSONs (e.g. frames for evaluation).
    """
    available = data.available_splits(root)
    if not available:
        raise FileNotFoundError(f"{root}/annotations holds none of livecell_coco_{{train,val,test}}.json; "
                                f"run `livecell-kit download --out {root}` or unset ${REAL_DATA_ENV}")
    if "train" not in available:
        print(f"{root} has no train annotations: exploring the {available[0]} split instead")
    return "train" if "train" in available else available[0]


def preset_split(root: Path, split: str, preset: str = "quick") -> data.Split:
    """The images of ``split`` that ``preset`` trains, validates or evaluates on.

    :func:`livecell_kit.data.load_subset` with the preset's image count for that split and
    its subset rule and seed, so notebooks build masks only for those images and share
    them (one mask cache per annotation file) with training and evaluation.  On the sample
    the CPU presets (``quick``, ``borders``, ``cells``) take every split whole.
    """
    dc = presets.get_preset(preset).data
    limit = {"train": dc.train_images, "val": dc.val_images, "test": dc.test_images}[split]
    return data.load_subset(root, split, limit, dc.subset_seed, rule=dc.subset)


def training_root() -> Path:
    """Where notebook 04 trains: the data root when it annotates train and val, else the sample.

    A real data root with only evaluation frames is then measured (notebook 05) with a
    model trained on the sample — never tuned on the frames it is scored on.
    """
    root = data_root()
    missing = [s for s in ("train", "val") if s not in data.available_splits(root)]
    if not missing:
        return root
    print(f"{root} has no {' or '.join(missing)} annotations: training on the synthetic sample")
    return sample_root()


def evaluation_split(root: Path) -> str:
    """The split notebook 05 scores: ``test`` when ``root`` annotates it, else ``val``."""
    return "test" if "test" in data.available_splits(root) else "val"


def quick_run_dir(root: Path, preset: str = "quick") -> Path:
    """Run folder of ``preset`` trained on ``root`` in the work folder: ``runs/<preset>-<root name>``."""
    return workdir() / "runs" / f"{preset}-{Path(root).name}"


def quick_run(root: Path | None = None, preset: str = "quick", verbose: int = 2, callbacks=()):
    """The run trained in notebook 04: reuse it when complete, else train it now (and say so).

    root: the data it trains on, default :func:`training_root`.
    ``callbacks`` (Keras callbacks) only run when training actually happens; training prints
    one line per epoch (``verbose=2``), so a notebook never trains silently.
    Returns the training result (``.model``, ``.history``, ``.out_dir``).
    """
    from livecell_kit import train  # on demand: TensorFlow loads only when a run is needed

    root = Path(root) if root is not None else training_root()
    out_dir = quick_run_dir(root, preset)
    if train.is_finished(out_dir):
        where = "notebook 04" if preset == "quick" else "an earlier run"
        print(f"{shown_path(out_dir)} in the work folder: trained already ({where}); loading its model")
        return train.train(root, preset=preset, out_dir=out_dir, verbose=0, callbacks=callbacks)
    print(f"training preset {preset!r} now, into {shown_path(out_dir)} in the work folder "
          f"({presets.get_preset(preset).description})")
    return train.train(root, preset=preset, out_dir=out_dir, verbose=verbose, callbacks=callbacks)


def strip_solutions(source: str) -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` block by placeholders.

    Each name the solution assigns becomes ``name = ...`` and each function it defines keeps
    its ``def`` line (and docstring) with a ``...`` body, all marked ``# your code``, so the
    student sees exactly what to fill in. The checker below answers "Your turn" to a ``...``,
    so a student copy runs from top to bottom without a traceback.
    """

    def placeholder(match: re.Match) -> str:
        indent = match.group("indent")
        block = textwrap.dedent("\n".join(match.group(0).splitlines()[1:-1]))
        return "\n".join(indent + line for line in _placeholders(block).splitlines())

    return _SOLUTION_RE.sub(placeholder, source)


def _placeholders(solution: str) -> str:
    """The student's version of one solution block (already dedented): what it defines, empty.

    Every function keeps its signature; of the names assigned, only the last is kept, as the
    checker reads it (earlier helper names are the student's choice).
    """
    functions, assigned = [], []
    for node in ast.parse(solution).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.append(f"def {node.name}({ast.unparse(node.args)}):")
            doc = ast.get_docstring(node, clean=False)
            if doc is not None:
                functions.append(f"    {ast.unparse(ast.Expr(ast.Constant(doc)))}")
            functions.append("    ...  # your code: return the result")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            assigned += [name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)]
    lines = functions + [f"{name} = ...  # your code" for name in assigned[-1:]]
    if not lines:
        raise ValueError(f"a solution block defines nothing for the student to fill in:\n{solution}")
    return "\n".join(lines)


def make_student_notebooks(source_dir: Path | str = "notebooks", out_dir: Path | str = "build/student") -> list[Path]:
    """Write student copies of ``source_dir/NN_*.ipynb``: solutions removed, outputs cleared.

    nbval's markers (comments and ``nbval-*`` tags) and the saved widget state go too.

    Returns the paths written (one per notebook). Notebooks without exercises are copied
    with outputs cleared so the student folder is a complete course.
    """
    import nbformat  # here, not at the top: slow to import (jsonschema), and only this needs it

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    notebooks = sorted(source_dir.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no NN_*.ipynb notebooks in {source_dir}; run from the kit's root "
                                "or pass --source notebooks/")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        # Saved widget state (~20 KB) belongs to the cleared outputs; tests' markers are no lesson.
        nb.metadata.pop("widgets", None)
        for cell in nb.cells:
            tags = [t for t in cell.metadata.get("tags", []) if not t.lower().startswith("nbval")]
            if tags:
                cell.metadata["tags"] = tags
            else:
                cell.metadata.pop("tags", None)
            if cell.cell_type == "code":
                if BEGIN_SOLUTION in cell.source and END_SOLUTION not in cell.source:
                    raise ValueError(f"{path}: a cell opens '{BEGIN_SOLUTION}' without '{END_SOLUTION}'")
                cell.source = _NBVAL_MARKER_RE.sub("", strip_solutions(cell.source))
                cell.outputs, cell.execution_count = [], None
        target = out_dir / path.name
        with atomic.atomic_path(target, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
        written.append(target)
    return written
