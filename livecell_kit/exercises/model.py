"""Notebook 03's exercises: the U-Net's decoder block, and the parameters of a convolution.

The decoder-block checker builds Keras layers, so it imports Keras (and the kit's builder,
:mod:`livecell_kit.model`) only when called: notebooks 01–02 import :mod:`livecell_kit.exercises`
and stay TensorFlow-free (~0.5 GB less on Binder's 2 GB).
"""
from __future__ import annotations

import numpy as np

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number
from livecell_kit.presets import get_preset

#: (height, width, channels of x, filters) of the blocks the decoder checker builds: x is
#: (height/2, width/2, channels), skip (height, width, filters). None is the notebook's U-Net's,
#: one is not square, and x's channels are not always 2 × filters, so shapes cannot be guessed.
_BLOCK_CASES = ((8, 12, 24, 12), (16, 8, 10, 5), (4, 4, 48, 32))
_BLOCK_LAYERS = "up-convolution (2×2, strides 2) → concatenate [x, skip] → 3×3 conv + ReLU → 3×3 conv + ReLU"


def kit_decoder_block(x, skip, filters: int):
    """The kit's decoder block for the seed preset, called like notebook 03's ``decoder_block``.

    x (B, h/2, w/2, ·) and skip (B, h, w, filters), Keras tensors -> (B, h, w, filters).
    It is :func:`livecell_kit.model._decoder_block` with the seed's settings (no batch
    normalisation, transposed-convolution up-sampling): the checker's reference, and the
    stand-in notebook 03 plugs into its U-Net until the student's block checks out.
    """
    import keras  # here, not at the top: see the module docstring

    from livecell_kit import model

    # The kit names its layers by level; a fresh number keeps the names unique when the
    # stand-in serves every level of one U-Net.
    level = f"_kit{keras.backend.get_uid('kit_decoder_block')}"
    return model._decoder_block(x, skip, filters, get_preset("seed").model, level)


def _steps(block) -> list[tuple]:
    """The block's layers in order, each as a tuple: ("up", filters, kernel, strides, activation),
    ("conv", filters, kernel, activation, padding), ("concat",), ("resize",) or ("other", name).
    A separate ReLU layer is folded into the convolution before it, as Keras' ``activation="relu"`` does."""
    steps: list[tuple] = []
    for op in block.operations:
        kind = type(op).__name__
        activation = getattr(getattr(op, "activation", None), "__name__", None)
        if kind == "InputLayer":
            continue
        if kind == "Conv2DTranspose":
            steps.append(("up", op.filters, op.kernel_size[0], op.strides[0], activation))
        elif kind == "Conv2D":
            steps.append(["conv", op.filters, op.kernel_size[0], activation, op.padding])
        elif kind == "Concatenate":  # the layer or keras.ops.concatenate
            steps.append(("concat",))
        elif kind == "UpSampling2D":
            steps.append(("resize",))
        elif kind in ("Activation", "ReLU") and steps and steps[-1][0] == "conv" and steps[-1][3] == "linear":
            steps[-1][3] = "relu" if kind == "ReLU" else activation
        else:
            steps.append(("other", kind))
    return [tuple(step) for step in steps]


def _build(decoder_block, height: int, width: int, channels: int, filters: int):
    """keras.Model([x, skip] -> decoder_block(x, skip, filters)) on fresh input shapes."""
    import keras

    x = keras.Input((height // 2, width // 2, channels), name="x")
    skip = keras.Input((height, width, filters), name="skip")
    try:
        out = decoder_block(x, skip, filters)
    except Exception as error:  # the student's code: explain the usual cause, no traceback
        if "oncatenat" in str(error) or "same shape except" in str(error):
            raise NotYet(f"Keras could not concatenate: the tensors need the same height and width, and skip "
                         f"is {height}×{width} while x comes in at {height // 2}×{width // 2}. Up-sample x first "
                         "(a 2×2 transposed convolution with strides=2 doubles them), then concatenate") from None
        raise NotYet(f"decoder_block(x, skip, {filters}) raised {type(error).__name__}: {error}") from None
    if out is None:
        raise NotYet("decoder_block returned None: end it with return x")
    if not isinstance(out, keras.KerasTensor):
        raise NotYet(f"decoder_block should return the last layer's output (a Keras tensor), "
                     f"got {type(out).__name__}")
    return keras.Model([x, skip], out)


def _diagnose(steps: list[tuple], filters: int) -> None:
    """Raise NotYet naming the first difference between ``steps`` and the seed decoder block's."""
    kinds = [step[0] for step in steps]
    if "up" not in kinds:
        if "resize" in kinds:
            raise NotYet("the seed U-Net up-samples with a learned 2×2 transposed convolution "
                         "(layers.Conv2DTranspose), not with UpSampling2D")
        raise NotYet("your block does not up-sample x: begin with a 2×2 transposed convolution with "
                     "strides=2, which doubles the height and width")
    if "concat" not in kinds:
        raise NotYet("your block never uses skip: after up-sampling x, concatenate it with the encoder's "
                     "features, layers.Concatenate()([x, skip]) — that is the skip connection")
    if kinds.index("concat") < kinds.index("up"):
        raise NotYet("up-sample x before concatenating, so that it has skip's height and width")
    others = sorted({step[1] for step in steps if step[0] == "other"})
    if others:
        raise NotYet(f"the seed's decoder block has no {', '.join(others)}: its layers are {_BLOCK_LAYERS}")
    if kinds.count("up") > 1 or kinds.count("concat") > 1:
        raise NotYet(f"one up-convolution and one concatenate per block: {_BLOCK_LAYERS}")
    after = [step for step in steps[kinds.index("concat") + 1:] if step[0] == "conv"]
    between = [step for step in steps[:kinds.index("concat")] if step[0] == "conv"]
    if between:
        raise NotYet("the 3×3 convolutions come after the concatenate: they mix the up-sampled features "
                     "with the skip's")
    if len(after) != 2:
        raise NotYet(f"your block has {len(after)} convolution{'s' if len(after) != 1 else ''} after the "
                     "concatenate; the U-Net's blocks have two (two_convs does both)")
    up = steps[kinds.index("up")]
    for what, step in (("up-convolution", up), ("first convolution", after[0]), ("second convolution", after[1])):
        if step[1] != filters:
            raise NotYet(f"with filters={filters}, your {what} has {step[1]} filters: every layer of the block "
                         "has `filters` filters (the function's argument, not a number of your own)")
    if up[2] != 2 or up[3] != 2:
        raise NotYet(f"your up-convolution has a {up[2]}×{up[2]} kernel and strides {up[3]}: the U-Net's has a "
                     "2×2 kernel and strides=2, so each pixel becomes one 2×2 patch")
    if up[4] not in (None, "linear"):
        raise NotYet("the seed's up-convolution has no activation; the ReLUs follow the 3×3 convolutions")
    for step in after:
        if step[2] != 3:
            raise NotYet(f"your block has a {step[2]}×{step[2]} convolution: the U-Net's are 3×3")
        if step[3] != "relu":
            raise NotYet('each 3×3 convolution is followed by a ReLU (activation="relu")')
        if step[4] != "same":
            raise NotYet('give the 3×3 convolutions padding="same", so they keep the height and width')


@exercise
def check_decoder_block(decoder_block) -> str:
    """Exercise 03a: ``decoder_block(x, skip, filters)`` is the seed U-Net's decoder block.

    Built on fresh shapes and filter counts (:data:`_BLOCK_CASES`) and compared with
    :func:`kit_decoder_block` on the same inputs: the layers in order, the output's shape, the
    number of parameters and, with the kit's weights copied in, the output on random inputs.
    """
    if not callable(decoder_block):
        raise NotYet(f"decoder_block should be a function (def ...), got {type(decoder_block).__name__}")
    rng = np.random.default_rng(3)
    for height, width, channels, filters in _BLOCK_CASES:
        student = _build(decoder_block, height, width, channels, filters)
        kit = _build(kit_decoder_block, height, width, channels, filters)
        _diagnose(_steps(student), filters)
        shape, expected = tuple(student.output.shape[1:]), tuple(kit.output.shape[1:])
        if shape != expected:
            raise NotYet(f"for x {height // 2}×{width // 2}×{channels}, skip {height}×{width}×{filters} and "
                         f"filters={filters} your block gives {'×'.join(map(str, shape))}, not {height}×{width}×"
                         f"{filters}")
        if student.count_params() != kit.count_params():
            raise NotYet(f"your block has {student.count_params():,} parameters where the kit's has "
                         f"{kit.count_params():,} for the same shapes: does every layer keep its bias?")
        inputs = [rng.uniform(-1, 1, (2, height // 2, width // 2, channels)).astype(np.float32),
                  rng.uniform(-1, 1, (2, height, width, filters)).astype(np.float32)]
        blank_skip = [inputs[0], np.zeros_like(inputs[1])]
        if np.allclose(np.asarray(student(inputs)), np.asarray(student(blank_skip))):
            raise NotYet("your block's output does not depend on skip: concatenate the up-sampled x with "
                         "skip and convolve the result")
        try:
            student.set_weights(kit.get_weights())
        except ValueError:
            raise NotYet(f"your block's layers are right, but not in the kit's order: {_BLOCK_LAYERS}") from None
        if not np.allclose(np.asarray(student(inputs)), np.asarray(kit(inputs)), atol=1e-5):
            raise NotYet("with the kit's weights your block computes something else: concatenate "
                         "[up-sampled x, skip] in that order (the kit's, so the weights line up), and "
                         "let each layer take the previous layer's output")
    return ok(f"right on {len(_BLOCK_CASES)} fresh blocks (other shapes and filter counts than the U-Net's): "
              f"the same layers, parameters and, with the kit's weights, the same output as "
              f"livecell_kit.model's _decoder_block.")


#: (kernel, in_channels, filters) the convolution checker tries, none of them the exercise's example.
_CONV_CASES = ((5, 3, 7), (3, 16, 16), (1, 16, 1), (2, 128, 64), (3, 64, 128))


def _convolutions(model) -> list:
    """The layers of a Keras ``model`` that are square convolutions with a bias (duck-typed)."""
    found = []
    for layer in getattr(model, "layers", []):
        kernel = getattr(layer, "kernel_size", None)
        if getattr(layer, "filters", None) and kernel and len(set(kernel)) == 1 and getattr(layer, "use_bias", False):
            found.append(layer)
    return found


@exercise
def check_conv_params(conv_params, model=None) -> str:
    """Exercise 03b: ``conv_params(kernel, in_channels, filters)`` counts a convolution's weights and biases.

    Tried on several (kernel, in_channels, filters) cases and, given a Keras ``model``, on
    each of its square convolutions with a bias (their ``count_params()``), so the answer
    shown by ``model.summary()`` for one layer is not enough.
    """
    cases = [(k, c, f, k * k * c * f + f) for k, c, f in _CONV_CASES]
    layers = _convolutions(model) if model is not None else []
    cases += [(layer.kernel_size[0], int(layer.input.shape[-1]), layer.filters, layer.count_params())
              for layer in layers]
    for kernel, in_channels, filters, expected in cases:
        what = f"conv_params(kernel={kernel}, in_channels={in_channels}, filters={filters})"
        got = require_number(call_student(conv_params, kernel, in_channels, filters, what="conv_params"), what)
        if close(got, expected):
            continue
        if close(got, expected - filters):
            raise NotYet(f"{what}: close — each filter also has one bias")
        if close(got, kernel * kernel * filters + filters):
            raise NotYet(f"{what}: each filter has one {kernel}×{kernel} kernel slice per input channel")
        raise NotYet(f"{what} is {'too high' if got > expected else 'too low'}: each of the filters has a "
                     "kernel×kernel slice of weights per input channel, plus one bias")
    message = f"right on {len(_CONV_CASES)} test convolutions"
    if layers:
        total = sum(layer.count_params() for layer in layers)
        message += (f" and on all {len(layers)} convolutions of {model.name}: together {total:,} "
                    f"of its {model.count_params():,} parameters")
    return ok(message + ".")
