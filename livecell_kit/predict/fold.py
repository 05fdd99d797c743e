"""Batch normalisation folded into the convolution before it, for prediction only.

At inference a batch normalisation is a fixed per-channel affine map, ``y = (x - mean) *
gamma / sqrt(var + eps) + beta``; after a convolution without activation it can be merged into
the convolution's kernel and bias. Keras 3 runs batch normalisation as separate element-wise
operations over every feature map, which TensorFlow's graph optimiser cannot merge, whereas a
plain convolution + bias + ReLU runs as one fused oneDNN operation. ONNX Runtime does this fold
itself; doing it here closes most of the gap (figures: ``bench/throughput.py``).

The folded model *shares* the original's layers and variables and computes the folded kernel
from them on every call, so it stays right while the original keeps training (notebook 04's
snapshots predict between epochs). Anything it does not recognise is left as it is: the result
is always the same function as the model, up to float rounding.
"""
from __future__ import annotations

import functools


@functools.cache
def _layer_types() -> tuple[type, type]:
    """(FoldedConv2D, Passthrough): defined on first use, as Keras and TensorFlow take seconds to
    import and ``import livecell_kit.predict`` does not need them."""
    import keras
    import tensorflow as tf

    class FoldedConv2D(keras.layers.Layer):
        """A Conv2D followed by its BatchNormalization, as one convolution (inference only)."""

        def __init__(self, conv, norm, **kwargs):
            super().__init__(name=conv.name, **kwargs)
            self._conv, self._norm = conv, norm

        def call(self, x):
            conv, norm = self._conv, self._norm
            scale = tf.math.rsqrt(tf.convert_to_tensor(norm.moving_variance) + norm.epsilon)
            if norm.scale:
                scale = scale * norm.gamma
            bias = -tf.convert_to_tensor(norm.moving_mean)
            if conv.use_bias:
                bias = bias + conv.bias
            bias = bias * scale
            if norm.center:
                bias = bias + norm.beta
            kernel = tf.convert_to_tensor(conv.kernel) * scale  # (kh, kw, in, out) * (out,)
            y = tf.nn.conv2d(x, kernel, strides=conv.strides, padding=conv.padding.upper(),
                             dilations=conv.dilation_rate)
            return tf.nn.bias_add(y, bias)

    class Passthrough(keras.layers.Layer):
        """Where a folded BatchNormalization was: returns its input."""

        def call(self, x, training=None, mask=None):
            return x

    return FoldedConv2D, Passthrough


def _foldable_pairs(model) -> dict:
    """{id(conv): batch norm} for each plain Conv2D, called once, whose only consumer is a BatchNormalization
    (not also a model output)."""
    import keras  # see _layer_types
    consumers: dict = {id(tensor._keras_history.operation): ["model output"] for tensor in model.outputs}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                consumers.setdefault(id(tensor._keras_history.operation), []).append(layer)
    pairs = {}
    for layer in model.layers:
        if type(layer) is not keras.layers.BatchNormalization or len(layer._inbound_nodes) != 1:
            continue
        (tensor,) = layer._inbound_nodes[0].input_tensors
        conv = tensor._keras_history.operation
        if (type(conv) is keras.layers.Conv2D and consumers.get(id(conv)) == [layer] and len(conv._inbound_nodes) == 1
                and conv.data_format == "channels_last" and conv.groups == 1
                and conv.activation in (None, keras.activations.linear)
                and layer.axis in (-1, 3) and conv.dtype_policy.name == layer.dtype_policy.name == "float32"):
            pairs[id(conv)] = layer
    return pairs


def fold_batch_norm(model):
    """``model`` for prediction with each Conv2D → BatchNormalization pair run as one convolution.

    Returns ``model`` itself when it has no such pair or is not a functional Keras model.
    """
    try:
        pairs = _foldable_pairs(model)
    except (AttributeError, TypeError, ValueError):  # not a functional graph (subclassed, ...)
        return model
    if not pairs:
        return model
    import keras  # see _layer_types

    folded_norms = {id(norm) for norm in pairs.values()}
    folded_conv, passthrough = _layer_types()

    def rebuild(layer):
        if id(layer) in pairs:
            return folded_conv(layer, pairs[id(layer)])
        if id(layer) in folded_norms:
            return passthrough(name=layer.name)
        return layer  # shared, weights and all

    return keras.models.clone_model(model, clone_function=rebuild)
