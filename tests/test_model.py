"""U-Net builder: shapes, dtypes, parameter counts, receptive field."""
import itertools

import keras
import numpy as np
import pytest

from livecell_kit.model import (build_unet, count_params, describe_unet, output_channels,
                                receptive_field)
from livecell_kit.presets import PRESETS, ModelConfig


@pytest.mark.parametrize("batch_norm,dropout,upsampling,outputs", list(itertools.product(
    [False, True], [0.0, 0.3], ["transpose", "bilinear"], ["semantic", "semantic+border", "cells"])))
def test_output_shape_dtype_range_for_every_option(batch_norm, dropout, upsampling, outputs):
    cfg = ModelConfig(depth=2, base_filters=4, batch_norm=batch_norm, dropout=dropout,
                      upsampling=upsampling, outputs=outputs)
    model = build_unet(cfg)
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 24, 1), dtype=np.uint8)
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, 32, 24, output_channels(cfg))
    assert y.dtype == np.float32
    assert np.all((y >= 0) & (y <= 1))
    # the formula and Keras agree for every option combination
    assert count_params(cfg) == model.count_params()


def test_instance_head_is_three_channels_of_the_same_builder():
    semantic = ModelConfig(depth=2, base_filters=4, batch_norm=True)
    cells = ModelConfig(depth=2, base_filters=4, batch_norm=True, outputs="cells")
    assert output_channels(cells) == 3 and output_channels(semantic) == 1
    # only the 1x1 output layer grows: 2 more output channels of (4 weights + 1 bias)
    assert count_params(cells) - count_params(semantic) == 2 * (4 + 1)
    head, plain = build_unet(cells), build_unet(semantic)
    assert [l.name for l in head.layers] == [l.name for l in plain.layers]
    assert head.output.shape[-1] == 3 and head.layers[-1].dtype_policy.compute_dtype == "float32"
    assert PRESETS["cells"].model.outputs == PRESETS["kit-cells"].model.outputs == "cells"
    with pytest.raises(ValueError, match="outputs must be one of .*'cells'"):
        build_unet(ModelConfig(outputs="instances"))


def test_seed_parameter_count_regression():
    cfg = PRESETS["seed"].model
    # depth 3, 16 filters, transposed conv, no BN: hand-summed layer by layer
    # (enc 2480 + 13888 + 55424, bottleneck 221440, dec 143552 + 35936 + 9008, output 17)
    assert count_params(cfg) == 481_745
    assert build_unet(cfg).count_params() == 481_745


def test_receptive_field_of_seed_unet():
    # 3 levels of two 3x3 convs + 2x2 pools, bottleneck, and the decoder's convs:
    # 1 + 2*2*(1+2+4) + (1+2+4) [pools] + 2*2*8 [bottleneck] + 2*2*(4+2+1) = 96
    assert receptive_field(PRESETS["seed"].model) == 96
    # bilinear up-sampling mixes two coarse pixels: +8 +4 +2
    assert receptive_field(ModelConfig(upsampling="bilinear")) == 110
    # one level less: 1 + 2*2*(1+2) + 3 + 2*2*4 + 2*2*(2+1) = 44
    assert receptive_field(ModelConfig(depth=2)) == 44


def test_describe_unet_levels():
    assert describe_unet(PRESETS["seed"].model) == [(0, 16, 1), (1, 32, 2), (2, 64, 4), (3, 128, 8)]


def test_full_frame_and_wrong_sizes():
    cfg = ModelConfig(depth=3, base_filters=2)
    model = build_unet(cfg)
    assert model(np.zeros((1, 520, 704, 1), np.uint8)).shape == (1, 520, 704, 1)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*depth"):
        build_unet(cfg, input_shape=(100, 704, 1))
    with pytest.raises(ValueError, match="upsampling"):
        build_unet(ModelConfig(upsampling="nearest"))


def test_model_rescales_raw_intensities():
    """A constant 255 image and a constant 1.0 image must differ: the model divides by 255 itself."""
    model = build_unet(ModelConfig(depth=1, base_filters=2))
    layer = model.get_layer("rescale")
    out = keras.ops.convert_to_numpy(layer(np.full((1, 4, 4, 1), 255.0, np.float32)))
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


def test_output_float32_under_mixed_bfloat16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_unet(ModelConfig(depth=1, base_filters=2, batch_norm=True))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("enc0_conv1").compute_dtype == "bfloat16"
    y = model(np.zeros((1, 8, 8, 1), np.uint8))
    assert keras.backend.standardize_dtype(y.dtype) == "float32"


def test_seed_layer_names_and_weight_order():
    """Names that notebook 03's prose cites and saved runs carry; weights in the order of
    notebook 03's plain version (encoder levels, bottleneck, decoder levels, output)."""
    names = [layer.name for layer in build_unet(PRESETS["seed"].model).layers if layer.weights]
    encoder = [f"enc{level}_conv{i}" for level in range(3) for i in (1, 2)]
    decoder = [name for level in (2, 1, 0)
               for name in (f"up{level}", f"dec{level}_conv1", f"dec{level}_conv2")]
    assert names == encoder + ["bottleneck_conv1", "bottleneck_conv2"] + decoder + ["output"]
