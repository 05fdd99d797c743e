"""Which number format and which devices a training run uses.

:func:`choose_precision` picks the Keras mixed-precision policy the machine
computes fastest without losing accuracy; :func:`model_scope` applies it (and
a multi-GPU strategy where there are several GPUs) while a model is built and
compiled.
"""
from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_PRECISION_ALIASES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16",
                      "float16": "mixed_float16", "mixed_float16": "mixed_float16"}
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def read_cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """CPU feature flags of the first core (empty set where /proc/cpuinfo is missing, e.g. macOS)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability (major, minor) of every GPU TensorFlow sees; [] on CPU-only machines."""
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return caps


def choose_precision(requested: str = "auto", cpu_flags=None, gpus=None) -> str:
    """Pick the Keras mixed-precision policy name for this machine.

    requested: "auto", "float32", "bfloat16"/"mixed_bfloat16" or "float16"/"mixed_float16";
        anything but "auto" is honoured as given.
    cpu_flags: CPU feature flags (default: read from /proc/cpuinfo).
    gpus: compute capabilities [(major, minor), ...] (default: ask TensorFlow).

    "auto" gives "mixed_float16" when there are GPUs, all with tensor cores
    (compute capability >= 7.0); on CPU-only machines "mixed_bfloat16" when the
    CPU computes bfloat16 natively (AMX or AVX512-BF16 — elsewhere bfloat16 is
    emulated and slower than float32); else "float32".
    """
    if requested != "auto":
        try:
            return _PRECISION_ALIASES[requested]
        except KeyError:
            raise ValueError(f"precision must be 'auto' or one of {sorted(_PRECISION_ALIASES)}, "
                             f"got {requested!r}") from None
    gpus = gpu_compute_capabilities() if gpus is None else [tuple(g) for g in gpus]
    if gpus:
        return "mixed_float16" if all(g >= (7, 0) for g in gpus) else "float32"
    flags = read_cpu_flags() if cpu_flags is None else set(cpu_flags)
    return "mixed_bfloat16" if flags.intersection(_BF16_CPU_FLAGS) else "float32"


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def model_scope(precision: str):
    """Build and compile a model inside this block to train it in ``precision`` on all GPUs.

    precision: a Keras policy name (see :func:`choose_precision`).  A layer keeps the
    policy it was built with, so ``fit`` may run after the block; the global policy
    is restored on exit, so later models (e.g. loaded for evaluation) are unaffected.
    """
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with choose_strategy().scope():
            yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
