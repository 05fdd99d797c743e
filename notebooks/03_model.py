# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The U-Net
#
# A **U-Net** (Ronneberger, Fischer & Brox, 2015) maps an image to a same-sized map of
# probabilities. It has two halves:
#
# * the **encoder** (left of the "U"): blocks of two 3×3 convolutions followed by a 2×2
#   max-pooling that halves the resolution; the number of filters doubles at each level, so
#   the network trades *where* for *what*;
# * the **decoder** (right): each step doubles the resolution again (a learned 2×2
#   transposed convolution) and **concatenates** the encoder's feature map of the same size —
#   the *skip connection* — so fine detail lost by pooling comes back for precise outlines;
# * a final 1×1 convolution with a **sigmoid** gives, per pixel, the probability of "cell".
#
# The seed project used 3 down-samplings and 16 filters at the first level (16, 32, 64, and
# 128 in the bottleneck). Because every pooling halves the image, inputs must be multiples of
# 2³ = 8 pixels — and LIVECell's 520×704 frames are.

# %%
# Setup. On Colab this installs the kit first, keeping every package Colab has at its version.
import subprocess, sys
if "google.colab" in sys.modules:
    have = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True)
    open("/tmp/colab-packages.txt", "w").write(have.stdout)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--constraint", "/tmp/colab-packages.txt",
                    "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"], check=True)
from livecell_kit import course
info = course.setup()

# %% [markdown]
# ## Presets
#
# All named settings live in `livecell_kit/presets.py`. `seed` reproduces the seed project;
# `quick` is a smaller, batch-normalised network trained on crops, sized for a laptop CPU.

# %%
# NBVAL_CHECK_OUTPUT
from livecell_kit import model, plot, presets, checks

for name, preset in presets.PRESETS.items():
    print(f"{name}: {preset.description}")
    print(f"    {preset.model}")

# %% [markdown]
# ## The U-Net in code
#
# Now the seed U-Net itself, written plainly with `keras.layers`, one block per cell. The unit
# every level repeats is a pair of 3×3 convolutions, each followed by a ReLU. `padding="same"`
# pads the border so the feature map keeps its height and width. No `kernel_initializer` is
# given: the seed used Keras' default (Glorot-uniform).

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
# A **decoder block** goes the other way. A 2×2 transposed convolution with stride 2 doubles
# the height and width (it learns how to spread each pixel over a 2×2 patch); the encoder's
# features of the same size are concatenated along the channel axis (the skip connection);
# two 3×3 convolutions then mix the coarse "what" with the fine "where".

# %%
def decoder_block(x, skip, filters):
    """(B, h/2, w/2, ·) and skip (B, h, w, filters) -> (B, h, w, filters)."""
    x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
    x = layers.Concatenate()([x, skip])  # channels: filters (up-sampled) + filters (skip)
    return two_convs(x, filters)


# %% [markdown]
# The **assembly**. The input is a grey image of any size (`None × None`, a multiple of 8)
# holding raw values 0…255; the first layer divides by 255, so the model takes images exactly
# as they are read from disk. Three encoder levels (16, 32, 64 filters), a 128-filter
# bottleneck at 1/8 of the size, three decoder levels that take the skips back in reverse
# order, and a 1×1 convolution with a sigmoid: one probability per pixel.

# %%
inputs = keras.Input(shape=(None, None, 1))
x = layers.Rescaling(1 / 255)(inputs)
skip1, x = encoder_block(x, 16)   # 520×704 -> 260×352
skip2, x = encoder_block(x, 32)   #         -> 130×176
skip3, x = encoder_block(x, 64)   #         ->  65×88
x = two_convs(x, 128)             # the bottleneck
x = decoder_block(x, skip3, 64)   #  65×88  -> 130×176
x = decoder_block(x, skip2, 32)   #         -> 260×352
x = decoder_block(x, skip1, 16)   #         -> 520×704
outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
my_unet = keras.Model(inputs, outputs, name="my_unet")

# %% [markdown]
# ## The package's builder
#
# The kit builds its networks with `model.build_unet(preset.model)`. It is the same recipe
# with options the seed does not use (batch normalisation, dropout, bilinear up-sampling, a
# second output channel, another initializer) and a name for every layer; its `_two_convs`,
# `_encoder_block` and `_decoder_block` in `livecell_kit/model.py` read like the cells above,
# with those options added. For the seed preset
# it must give exactly our network — first check: the same number of parameters, and the same
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

# %%
unet.summary(line_length=100)

# %% [markdown]
# ## Levels, parameters and receptive field
#
# Each row below is one level of the "U": its filters and its resolution relative to the input.
# The **receptive field** is how many input pixels can influence one output pixel — it must be
# large enough to see a whole cell and some background around it.

# %%
# NBVAL_CHECK_OUTPUT
for level, filters, factor in model.describe_unet(seed_preset.model):
    print(f"level {level}: {filters:4d} filters at 1/{factor} resolution")
for name, preset in presets.PRESETS.items():
    print(f"{name:6s}: {model.count_params(preset.model):9,d} parameters, "
          f"receptive field {model.receptive_field(preset.model)} px")

# %%
fig = plot.draw_unet(model.describe_unet(seed_preset.model), title="seed U-Net")

# %% [markdown]
# ### Exercise 3 — counting parameters
#
# A convolution with a k×k kernel, C_in input channels and F filters learns one k×k×C_in kernel
# **and one bias** per filter. How many parameters does the very first convolution of the seed
# U-Net have (3×3 kernel, 1 input channel — a grey image — and 16 filters)? Store it in `answer`;
# compare with the row `enc0_conv1` of the summary above.

# %%
### BEGIN SOLUTION
answer = 3 * 3 * 1 * 16 + 16
### END SOLUTION
checks.check_conv_params(answer, kernel=3, in_channels=1, filters=16)

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
# **Next:** notebook 04 trains this network.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
