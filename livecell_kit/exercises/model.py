"""Notebook 03's exercise: the parameters of a convolution."""
from __future__ import annotations

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number


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
    """Exercise 03: ``conv_params(kernel, in_channels, filters)`` counts a convolution's weights and biases.

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
