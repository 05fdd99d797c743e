# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The U-Net
#
# A **U-Net** (Ronneberger, Fischer & Brox, 2015) is a neural network that maps an image to a
# same-sized map of probabilities — here, for every pixel, the probability that it belongs to a
# cell. This notebook first introduces the building blocks a U-Net is made of, then assembles
# the seed project's U-Net (the student project this kit grew from) in plain Keras and checks it
# against the kit's builder.
#
# **In this notebook you will**
#
# * see what a convolution, ReLU, max-pooling, up-sampling and batch normalisation do, with a
#   figure each, and what a receptive field is;
# * read the U-Net's shape: encoder, bottleneck, decoder and skip connections;
# * build the seed U-Net with `keras.layers` — writing its decoder block yourself (exercise 3a) —
#   and confirm the kit builds exactly the same network;
# * write a function that counts a convolution's parameters (exercise 3b) and see how depth and
#   width change the network's size (experiment).

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %% [markdown]
# ## Building blocks
#
# We illustrate each block on a crop of one frame of the data set around one of its cells.

# %%
import dataclasses

from livecell_kit import data, exercises, figures, model, presets

root = kit.root
split = data.load_split(root, kit.split)
image = data.read_image(split.image_path(split.images[0]))
left, top, width, height = (int(v) for v in split.annotations_for(split.images[0]["id"])[0]["bbox"])
centre = (min(max(top + height // 2, 48), image.shape[0] - 48), min(max(left + width // 2, 48), image.shape[1] - 48))
crop = image[centre[0] - 48:centre[0] + 48, centre[1] - 48:centre[1] + 48]  # 96×96 px around a cell

# %% [markdown]
# ### Convolution
#
# A **convolution** slides a small grid of numbers, the **kernel** (here 3×3), over the image.
# At each position it multiplies the 3×3 pixels under it by the kernel's numbers and adds them
# up (plus one constant, the **bias**): that is one pixel of the output, the **feature map**.
# The top row works one position out in numbers. A kernel responds where the image looks like
# it: the bottom row shows a blur and two edge kernels on the crop.

# %%
fig = figures.convolution(crop, suptitle=f"{course.data_label()}: a 3×3 convolution")

# %% [markdown]
# A convolution **layer** has several kernels, its **filters**; each gives one feature map, a
# **channel** of the layer's output. When the input itself has C_in channels (the grey image
# has 1; a layer's output has as many as it had filters), each filter holds one 3×3 kernel per
# input channel and adds up their results. The kernels' numbers and the biases are the layer's
# **parameters** (also called weights): nobody writes them by hand as we did above — training
# (notebook 04) adjusts them. `padding="same"` pads the image's border so the feature map keeps
# the image's height and width.
#
# ### Activation functions: ReLU and sigmoid
#
# After each convolution the U-Net bends the values with an **activation function**. **ReLU**
# (rectified linear unit) keeps positive values and sets negative ones to 0; without such a bend,
# a stack of convolutions would add up to one single convolution. The very last layer uses a
# **sigmoid** instead, which squeezes any number into (0, 1): the probability of "cell".

# %%
fig = figures.activations()

# %% [markdown]
# ### Max-pooling and up-sampling
#
# A 2×2 **max-pooling** keeps the largest value of each 2×2 block: half the height and width,
# a quarter of the pixels, and the strongest responses survive. The network can then look at a
# larger area for the same cost, but it loses *where* exactly things were. **Up-sampling** goes
# back: the U-Net's **transposed convolution** ("up-conv", 2×2 kernel, stride 2) spreads each
# value over a 2×2 block with learned weights; the figure shows the simplest case, a copy.

# %%
fig = figures.pooling_and_upsampling()

# %% [markdown]
# ### Batch normalisation
#
# Training shows the network a **batch** of images at a time (notebook 04). **Batch
# normalisation** (BN) shifts and scales each channel's values over the batch to mean 0 and
# standard deviation 1, then by two learned numbers per channel (γ and β). Values stay in a
# range where training is stable whatever the layers before did. The seed U-Net has no BN;
# the kit's `kit`, `quick` and `borders` presets do. Here the channel is the frame's grey levels:

# %%
fig = figures.batch_normalisation(image / 255, suptitle=f"{course.data_label()}: one channel, before and after BN")

# %% [markdown]
# ### Receptive field
#
# One output pixel of a 3×3 convolution depends on a 3×3 square of its input; a second 3×3
# convolution on top sees 5×5 input pixels; after a 2×2 pooling every further step covers twice
# as much. That square of input pixels is the output pixel's **receptive field**. To tell a cell
# from background, and one cell from its neighbour, it must cover a whole cell and some of what
# lies around it. The squares below are the receptive fields of U-Nets with 1, 2 and 3 poolings.

# %%
seed_preset = presets.get_preset("seed")
fields = {"one 3×3 conv": 3, "two 3×3 convs": 5}
for depth in (1, 2, 3):
    fields[f"U-Net, {depth} pooling{'s' if depth > 1 else ''}"] = model.receptive_field(
        dataclasses.replace(seed_preset.model, depth=depth))
fig = figures.receptive_fields(image, fields, centre=centre, suptitle=course.data_label())

# %% [markdown]
# ## The U-Net's shape
#
# * the **encoder** (left of the "U"): blocks of two 3×3 convolutions, each followed by a ReLU,
#   then a 2×2 max-pooling that halves the resolution; the number of filters doubles at each
#   level, so the network trades *where* for *what*;
# * the **bottleneck** at the bottom: the smallest, most abstract feature maps;
# * the **decoder** (right): each step doubles the resolution again (the up-conv) and
#   **concatenates** — stacks along the channel axis — the encoder's feature map of the same
#   size: the **skip connection**, so the fine detail lost by pooling comes back for precise
#   outlines;
# * a final 1×1 convolution with a sigmoid gives, per pixel, the probability of "cell".
#
# The seed project used 3 poolings and 16 filters at the first level (16, 32, 64, and 128 in
# the bottleneck). Because every pooling halves the image, inputs must be multiples of
# 2³ = 8 pixels — and LIVECell's 520×704 frames are.

# %%
fig = figures.draw_unet(model.describe_unet(seed_preset.model), title="seed U-Net")

# %% [markdown]
# ## Presets
#
# All named settings live in `livecell_kit/presets/`. `seed` reproduces the seed project;
# `quick` is a smaller, batch-normalised network trained on crops, sized for a laptop CPU.
# The descriptions also name training settings — epochs, batch size, the Adam optimizer and its
# learning rate, the losses: notebook 04 explains them.

# %%
# NBVAL_CHECK_OUTPUT
for name, preset in presets.PRESETS.items():
    print(f"{name}: {preset.description}")
    print(f"    {preset.model}")

# %% [markdown]
# ## The U-Net in code
#
# Now the seed U-Net itself, written plainly with `keras.layers`, one block per cell. The unit
# every level repeats is a pair of 3×3 convolutions, each followed by a ReLU. `padding="same"`
# pads the border so the feature map keeps its height and width.
#
# **Weight initialisation.** Before training, every kernel holds small random numbers and every
# bias 0: were the kernels equal, all filters of a layer would compute, and learn, the same thing.
# No `kernel_initializer` is given, so Keras' default draws them, as the seed did: Glorot-uniform,
# uniform in ±√(6 / (fan_in + fan_out)) with fan_in = 3·3·C_in and fan_out = 3·3·F, a range that
# keeps each layer's outputs about as spread out as its inputs. The kit's other presets use
# He-normal, scaled for layers followed by a ReLU (`kernel_initializer` in `livecell_kit/presets/`).

# %%
import keras
from keras import layers


def two_convs(x, filters):
    """Two 3×3 convolutions with ReLU: (B, h, w, channels) -> (B, h, w, filters)."""
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    return x


# %% [markdown]
# An **encoder block** runs the two convolutions and then a 2×2 max-pool, which keeps the
# largest value of each 2×2 patch and so halves the height and width. It returns both
# tensors: the full-size features are kept for the skip connection, the pooled ones go one
# level down.

# %%
def encoder_block(x, filters):
    """Returns (skip, pooled): (B, h, w, filters) and (B, h/2, w/2, filters)."""
    skip = two_convs(x, filters)
    pooled = layers.MaxPooling2D(2)(skip)
    return skip, pooled


# %% [markdown]
# ### Exercise 3a — the decoder block
#
# A **decoder block** goes the other way, in three steps:
#
# 1. **up-sample** `x`: a 2×2 transposed convolution with stride 2,
#    `layers.Conv2DTranspose(filters, 2, strides=2, padding="same")`, doubles the height and
#    width (it learns how to spread each pixel over a 2×2 patch);
# 2. **concatenate** the result with `skip`, the encoder's features of the same size, along the
#    channel axis — up-sampled features first, then the skip: `layers.Concatenate()([..., skip])`.
#    This is the skip connection;
# 3. two 3×3 **convolutions** with ReLU, which mix the coarse "what" with the fine "where".
#
# Complete `decoder_block(x, skip, filters)` in the next cell; every layer in it has `filters`
# filters. The checker builds your block on fresh shapes and filter counts and compares its
# layers, parameters and output with the kit's block (`_decoder_block` in `livecell_kit/model.py`).
#
# **Hint:** a Keras layer is created, then called on a tensor: `layers.Conv2DTranspose(...)(x)`
# returns the new tensor. `two_convs` above does step 3; the whole body is three lines.

# %%
### BEGIN SOLUTION
def decoder_block(x, skip, filters):
    """(B, h/2, w/2, ·) and skip (B, h, w, filters) -> (B, h, w, filters)."""
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
    x = layers.Concatenate()([x, skip])  # channels: filters (up-sampled) + filters (skip)
    return two_convs(x, filters)
### END SOLUTION
exercises.check_decoder_block(decoder_block)

# %% [markdown]
# Your block goes into the U-Net below, at each of the three decoder levels. Until it checks
# out, the kit's own block stands in, so the rest of the notebook still runs.

# %%
block = decoder_block if exercises.check_decoder_block.verdict(decoder_block) else exercises.kit_decoder_block
print("decoder block in the U-Net:", "yours" if block is decoder_block else "the kit's stand-in")

# %% [markdown]
# The **assembly**. The input is a grey image of any size (`None × None`, a multiple of 8)
# holding raw values 0…255; the first layer divides by 255, so the model takes images exactly
# as they are read from disk. Three encoder levels (16, 32, 64 filters), a 128-filter
# bottleneck at 1/8 of the size, three decoder levels (your `decoder_block`) that take the skips
# back in reverse order, and a 1×1 convolution with a sigmoid: one probability per pixel.

# %%
inputs = keras.Input(shape=(None, None, 1))
x = layers.Rescaling(1 / 255)(inputs)
skip1, x = encoder_block(x, 16)   # 520×704 -> 260×352
skip2, x = encoder_block(x, 32)   #         -> 130×176
skip3, x = encoder_block(x, 64)   #         ->  65×88
x = two_convs(x, 128)             # the bottleneck
x = block(x, skip3, 64)           #  65×88  -> 130×176
x = block(x, skip2, 32)           #         -> 260×352
x = block(x, skip1, 16)           #         -> 520×704
outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
my_unet = keras.Model(inputs, outputs, name="my_unet")

# %% [markdown]
# ### Exercise 3b — counting parameters
#
# A convolution with a k×k kernel, C_in input channels and F filters learns, for each of its F
# filters, one k×k weight per input channel (k·k·C_in weights) **and one bias**. Complete
# `conv_params(kernel, in_channels, filters)` in the next cell: replace its `...` with code that
# returns that layer's number of parameters. The checker tries it on several convolutions and
# on every convolution of `my_unet` (the up-convolutions count the same way).
#
# **Hint:** for one filter, count the kernel's weights over all input channels, add its bias,
# then multiply by the number of filters.

# %%
### BEGIN SOLUTION
def conv_params(kernel, in_channels, filters):
    """Weights and biases of a kernel×kernel convolution from in_channels to filters channels."""
    return kernel * kernel * in_channels * filters + filters
### END SOLUTION
exercises.check_conv_params(conv_params, my_unet)

# %% [markdown]
# ## The package's builder
#
# The kit builds its networks with `model.build_unet(preset.model)`. It is the same recipe
# with options the seed does not use (batch normalisation, dropout, bilinear up-sampling, a
# second output channel, another initializer) and a name for every layer; its `_two_convs`,
# `_encoder_block` and `_decoder_block` in `livecell_kit/model.py` read like the cells above,
# with those options added. For the seed preset
# it must give exactly our network, your decoder block included — first check: the same number of parameters, and the same
# weight tensors in the same order.

# %%
# NBVAL_CHECK_OUTPUT
seed_preset = presets.get_preset("seed")
unet = model.build_unet(seed_preset.model)
print(f"notebook: {my_unet.count_params():,d} parameters; package: {unet.count_params():,d}")
assert my_unet.count_params() == unet.count_params()
assert [w.shape for w in my_unet.weights] == [w.shape for w in unet.weights]

# %% [markdown]
# Second check: give the package's model our (random, untrained) weights and feed both the
# same random 520×704 frame. Same shape and same values out means the same computation. If
# `livecell_kit/model.py` ever changes the seed network, one of these two cells fails.

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

unet.set_weights(my_unet.get_weights())
frame = np.random.default_rng(0).integers(0, 256, (1, 520, 704, 1)).astype(np.float32)
ours = my_unet.predict(frame, verbose=0)  # predict: compiled, ~0.3 GB less memory than a plain call
theirs = unet.predict(frame, verbose=0)
print("notebook:", ours.shape, "package:", theirs.shape)
print("same probabilities:", np.allclose(ours, theirs))
assert ours.shape == theirs.shape == (1, 520, 704, 1) and np.allclose(ours, theirs)

# %% [markdown]
# `summary()` lists the package's layers with their names: `enc0_conv1` is the first
# convolution of encoder level 0, `up2` the transposed convolution of decoder level 2, and so on.
# Its `Param #` column is what your `conv_params` computes for each convolution.

# %%
unet.summary(line_length=100)

# %% [markdown]
# ## Levels, parameters and receptive field
#
# Each row below is one level of the "U": its filters and its resolution relative to the input.
# Then, for each preset, its parameters and its receptive field (the side of the square of
# input pixels one output pixel depends on, see above).

# %%
# NBVAL_CHECK_OUTPUT
for level, filters, factor in model.describe_unet(seed_preset.model):
    print(f"level {level}: {filters:4d} filters at 1/{factor} resolution")
for name, preset in presets.PRESETS.items():
    print(f"{name:6s}: {model.count_params(preset.model):9,d} parameters, "
          f"receptive field {model.receptive_field(preset.model)} px")

# %% [markdown]
# ### Experiment — deeper or wider?
#
# Run the next cell, then change `DEPTH` (the number of poolings: try 2 and 4) or
# `BASE_FILTERS` (the filters of the first level: try 8 and 32) and run it again. Compare how
# the parameters and the receptive field change: which one lets the network see more of the
# image, and which one only makes it bigger?

# %%
DEPTH, BASE_FILTERS = 3, 16  # ← change one of them and run again (the seed: 3 and 16)
trial = dataclasses.replace(seed_preset.model, depth=DEPTH, base_filters=BASE_FILTERS)
print(f"depth {DEPTH}, {BASE_FILTERS} first-level filters: {model.count_params(trial):,d} parameters, "
      f"receptive field {model.receptive_field(trial)} px, inputs a multiple of {2 ** DEPTH} px")

# %% [markdown]
# ## Shapes through the network
#
# A full 520×704 frame goes in; a 520×704×1 probability map comes out. Values lie in [0, 1]
# thanks to the sigmoid — before training they hover around 0.5.

# %%
# NBVAL_CHECK_OUTPUT
frame = np.zeros((1, 520, 704, 1), dtype=np.float32)
probabilities = unet.predict(frame, verbose=0)
print("in:", frame.shape, "-> out:", probabilities.shape, probabilities.dtype)
print("all probabilities in [0, 1]:", bool((probabilities >= 0).all() and (probabilities <= 1).all()))

# %% [markdown]
# ## What you learned
#
# * A convolution slides small learned kernels over its input; its parameters are k·k·C_in
#   weights and one bias per filter. ReLU bends the values after each convolution, a sigmoid
#   turns the last one into a probability.
# * Max-pooling halves the resolution so deeper layers see more of the image (a larger receptive
#   field); up-convolutions bring the resolution back, and skip connections return the detail.
# * Batch normalisation keeps each channel's values at mean 0, std 1 over a batch; the seed
#   U-Net has none, the kit's presets use it.
# * A decoder block up-samples, concatenates the encoder's features of the same size (the skip
#   connection) and convolves twice; the weights start random (Glorot-uniform or He-normal) so
#   that the filters differ, and training takes them from there.
# * The seed U-Net, written in a dozen lines of Keras, is exactly what `model.build_unet` builds;
#   more depth widens its receptive field, more filters only add parameters.
#
# **Next:** notebook 04 trains this network: batches, epochs, the loss and the optimizer.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
