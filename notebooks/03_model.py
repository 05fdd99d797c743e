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
# Setup. On Colab this installs the kit first (Colab keeps its own TensorFlow and numpy).
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
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
# ## Build the seed U-Net
#
# `model.build_unet` builds the network from a `ModelConfig`. The input size is left open
# (`None × None`), so the same model trains on crops and predicts on whole frames.

# %%
seed_preset = presets.get_preset("seed")
unet = model.build_unet(seed_preset.model)
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
# compare with the first row of the summary above.

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
import numpy as np

frame = np.zeros((1, 520, 704, 1), dtype=np.float32)
probabilities = unet.predict(frame, verbose=0)
print("in:", frame.shape, "-> out:", probabilities.shape, probabilities.dtype)
print("all probabilities in [0, 1]:", bool((probabilities >= 0).all() and (probabilities <= 1).all()))

# %% [markdown]
# **Next:** notebook 04 trains this network.
