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
# # 02 · From polygons to masks
#
# A U-Net learns from pixel masks: an array the size of the image with 1 where there is a cell
# and 0 elsewhere. LIVECell gives polygons. This notebook walks the path the seed project (the
# student project this kit grew from) took — **polygon → run-length encoding (RLE) → mask** —
# with `pycocotools.mask`, then shows a problem with the plain "cell / not cell" mask (touching
# cells merge) and how the U-Net paper fixed it with **border weights**.
#
# **In this notebook you will**
#
# * turn one cell's polygon into a run-length encoding with pycocotools and read its runs;
# * write a function that gets a cell's area from its runs (exercise 2), and one that decodes
#   the runs into the mask (exercise 2b);
# * build the mask of a whole image, and see where touching cells merge into one blob;
# * see how the U-Net paper's weight map makes the gaps between cells count more, and change
#   its width (experiment);
# * cache the masks for training.

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup(tensorflow=False)  # no model here: TensorFlow (~0.5 GB) stays unloaded
print(kit)

# %%
import matplotlib.pyplot as plt
import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit import data, exercises, figures, masks

root = kit.root
# the training images of notebook 04's `quick` preset (on the sample: the whole split)
train = course.preset_split(root, kit.split)
image_record = train.images[0]
height, width = image_record["height"], image_record["width"]
image = data.read_image(train.image_path(image_record))
annotations = train.annotations_for(image_record["id"])
cell = annotations[0]

# %% [markdown]
# ## One cell, as a polygon
#
# The polygon is a list of corner points around the cell, in pixel coordinates.

# %%
x, y, w, h = (int(v) for v in cell["bbox"])
pad = 15
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(image, cmap="gray")
figures.draw_polygons(ax, [cell], linewidth=2)
ax.set_xlim(x - pad, x + w + pad); ax.set_ylim(y + h + pad, y - pad)
ax.set_title(f"annotation {cell['id']}: {len(cell['segmentation'][0]) // 2} points ({course.data_label()})");

# %% [markdown]
# ## The same cell as a run-length encoding
#
# Storing a full 520×704 mask per cell would waste memory: almost all of it is 0. A
# **run-length encoding** stores only the lengths of the alternating runs of 0s and 1s,
# reading the image **column by column** (top to bottom, then the next column to the right —
# "Fortran order"), always starting with a run of 0s. `[5, 3, 2]` means: five 0s, three 1s,
# two 0s.
#
# `pycocotools.mask` does the work: `frPyObjects` rasterises each polygon of the cell straight
# into an RLE, `merge` joins a cell's polygons into one RLE (their union; a LIVECell cell has
# just one), and `decode` unpacks an RLE into the (H, W) 0/1 mask. pycocotools stores the
# counts as a compact string; `masks.uncompressed_rle` gives the plain list of counts. The
# kit's `masks.annotation_rles`, used from here on, makes the same RLE after checking the polygon.

# %%
# NBVAL_CHECK_OUTPUT
polygon_rles = mask_utils.frPyObjects(cell["segmentation"], height, width)  # one RLE per polygon
rle = mask_utils.merge(polygon_rles)  # the union of the cell's polygons
cell_mask = mask_utils.decode(rle)  # uint8 (H, W): 1 inside the cell, 0 outside
assert np.array_equal(cell_mask, mask_utils.decode(masks.annotation_rles([cell], height, width)[0]))
plain_rle = masks.uncompressed_rle(cell_mask)
print("compressed counts string starts:", rle["counts"][:24])
print("number of runs:", len(plain_rle["counts"]))
print("first runs:", plain_rle["counts"][:7])
print("image size [h, w]:", plain_rle["size"])

# %% [markdown]
# ### Exercise 2 — area from the RLE
#
# Complete the function `rle_area(counts)` in the next cell: replace its `...` with code that
# returns the area in pixels (the number of 1s) of the mask whose run lengths are `counts`, a
# list like `plain_rle["counts"]` above. Use only `counts`: the checker calls your function on
# this cell and on RLEs of other masks it makes up, and then compares with the annotation's own
# `cell["area"]`.
#
# *Hint:* the runs alternate background, cell, background, …: the cell runs are every second
# one, starting with the second (`counts[1::2]`).

# %%
### BEGIN SOLUTION
def rle_area(counts):
    """Pixels set to 1 in the mask whose uncompressed RLE run lengths are ``counts``."""
    return sum(counts[1::2])
### END SOLUTION
exercises.check_rle_area(rle_area, plain_rle, cell["area"])

# %% [markdown]
# ### Exercise 2b — decode the runs into a mask
#
# Now do what `mask_utils.decode` did above, with numpy. Complete `decode_rle(rle)`: from an
# uncompressed RLE like `plain_rle` (`rle["size"]` is `[height, width]`, `rle["counts"]` the run
# lengths) return the mask as a uint8 array of shape (height, width), 1 for cell and 0 for
# background. The checker compares your masks with pycocotools' on this cell and on small RLEs
# it makes up, one of them starting with a cell pixel (`counts[0] == 0`).
#
# *Hint:* `np.repeat(values, counts)` writes each run's value (0, 1, 0, 1, …) `count` times in a
# row; the runs fill the mask **column by column**, so reshape with `order="F"`.

# %%
### BEGIN SOLUTION
def decode_rle(rle):
    """The uint8 (height, width) 0/1 mask whose uncompressed RLE is ``rle``."""
    height, width = rle["size"]
    run_values = np.arange(len(rle["counts"])) % 2  # 0, 1, 0, 1, ...: background first
    flat = np.repeat(run_values, rle["counts"]).astype(np.uint8)
    return flat.reshape((height, width), order="F")  # column by column
### END SOLUTION
exercises.check_decode_rle(decode_rle, plain_rle)

# %% [markdown]
# Your decoded mask under the polygon it came from (pycocotools' own until your function is
# right): each pixel is in or out as a whole, so the mask's edge is a staircase along the
# outline. (Pixel k is drawn from k to k + 1, the convention pycocotools rasterises with.)

# %%
yours = exercises.check_decode_rle.verdict(decode_rle, plain_rle).ok
decoded = decode_rle(plain_rle) if yours else mask_utils.decode(mask_utils.frPyObjects(plain_rle, height, width))
fig, ax = plt.subplots(figsize=(4, 4))
ax.imshow(decoded, cmap="gray", interpolation="nearest", extent=(0, width, height, 0))
figures.draw_polygons(ax, [cell], linewidth=2)
ax.set_xlim(x - pad, x + w + pad); ax.set_ylim(y + h + pad, y - pad)
ax.set(xlabel="x (column)", ylabel="y (row)",
       title=f"{'your' if yours else 'pycocotools’'} decoded mask, {int(decoded.sum())} px");

# %% [markdown]
# ## Decoding: all cells of the image at once
#
# To build the semantic mask of a whole image, convert every polygon to an RLE, **merge** them
# (a union, done on the compressed runs) and **decode once** — much faster than decoding each
# cell into a full image and OR-ing (`bench/masks.py` measures it). The kit's
# `masks.semantic_mask` does exactly this; the cell checks that it gives the same mask.

# %%
# NBVAL_CHECK_OUTPUT
polygons = [polygon for ann in annotations for polygon in ann["segmentation"]]
semantic = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, height, width)))
assert np.array_equal(semantic, masks.semantic_mask(annotations, height, width))
naive = np.zeros((height, width), np.uint8)
for ann in annotations:  # the slow way, for comparison
    naive |= mask_utils.decode(masks.annotation_rles([ann], height, width)[0])
print(semantic.dtype, semantic.shape, "cells cover", f"{semantic.mean():.1%}", "of the image")
print("identical to decoding each cell and OR-ing:", np.array_equal(semantic, naive))

# %%
fig = figures.show_images([image, semantic * 255, figures.overlay(image, {"truth": semantic})],
                       ["image", "semantic mask", "overlay"], ncols=3, suptitle=course.data_label())

# %% [markdown]
# ## Touching cells merge
#
# In the union mask, two cells that touch become one blob: nothing tells the network where one
# ends and the next begins. The **instance label image** gives each cell its own number; from
# it the kit finds the **touching borders**: background or cell pixels where two different
# cells come closer than a few pixels.

# %%
labels = masks.instance_labels(annotations, height, width)
border = masks.touching_border_mask(labels, distance=2)
weights = masks.border_weight_map(labels, w0=10.0, sigma=5.0)

# %%
# NBVAL_CHECK_OUTPUT
print("cells labelled:", labels.max(), "| label dtype:", labels.dtype)
print("border pixels:", int(border.sum()), "| weights range:", f"{weights.min():.1f} to {weights.max():.1f}")

# %% [markdown]
# The border pixels are a fraction of a percent of the frame, too thin to see at this size: the
# zoom on the right shows the part of the frame with the most of them, where cells touch.

# %%
fig = figures.touching_borders(image, labels, border, suptitle=course.data_label())

# %% [markdown]
# The U-Net paper's **weight map** (Ronneberger et al. 2015, eq. 2)
# w(x) = w_c(x) + w₀·exp(−(d₁(x) + d₂(x))² / 2σ²), where d₁ and d₂ are the distances to the
# nearest and second-nearest cell, makes background in the narrow gaps between cells weigh up to
# 1 + w₀ times more than elsewhere (the kit keeps the class-balance term w_c = 1). The colour bar
# reads as "this pixel's error counts w times": cell pixels keep weight 1, so where two cells
# touch, the background notches on either side of the contact light up. The close-up is the
# 80×80 px square where the extra weight piles up most.

# %%
fig = figures.border_weights(image, labels, border, weights, suptitle=course.data_label())

# %% [markdown]
# A network learns by lowering its **loss**: one number that measures how wrong its predictions
# are (notebook 04 trains with one). For cell/background masks the usual loss is the **binary
# cross-entropy** (BCE): per pixel, −log of the probability the network gave the right answer —
# 0 when it was sure and right — averaged over the pixels. Multiplying each pixel's BCE by w(x)
# gives the **border-weighted BCE**, the kit's loss `train.weighted_bce`: a network that paints
# a gap as cell, merging two cells, pays up to eleven times more there. The **`borders`** preset trains notebook 04's `quick` U-Net with
# it (`livecell-kit train --preset borders`); its input pipeline computes each frame's weight map
# from the cached instance labels and hands it to the loss as one more target channel.

# %%
# NBVAL_CHECK_OUTPUT
from livecell_kit import presets

borders = presets.get_preset("borders").train
print("preset 'borders': loss", borders.loss, "| w0", borders.border_weight_w0, "| sigma", borders.border_weight_sigma, "px")

# %% [markdown]
# ### Experiment — how wide is a gap?
#
# σ (sigma, in pixels) sets how far from the cells the extra weight reaches. Run the next cell,
# then change `SIGMA` to `2.0` and to `10.0`, and run it again each time. Watch the close-up:
# with a small σ only the narrowest gaps light up; with a large one, background far from any
# contact gets heavy too, and the loss cares less about the gaps in particular.

# %%
SIGMA = 5.0  # ← change to 2.0 or 10.0 and run again (the borders preset uses 5)
trial = masks.border_weight_map(labels, w0=10.0, sigma=SIGMA)
print(f"sigma {SIGMA} px: {np.mean(trial > 2):.1%} of the pixels weigh more than 2")
fig = figures.border_weights(image, labels, border, trial, suptitle=f"{course.data_label()}, σ = {SIGMA} px")

# %% [markdown]
# ## A mask cache for training
#
# Masks do not change between epochs, so the kit builds them once per image and writes them to
# disk as PNG files (0 = background, 255 = cell), in a folder keyed by a hash of the annotation
# file: edit the JSON and the cache is rebuilt, otherwise every later notebook reuses it. Only
# the images asked for are drawn: here the ones notebook 04 trains on.

# %%
cache = masks.build_mask_cache(train, kind="semantic", progress=False)
cached = masks.load_mask(cache, image_record["file_name"])

# %%
# NBVAL_CHECK_OUTPUT
n_cached = sum(masks.mask_file(cache, img["file_name"]).exists() for img in train.images)
print("cached masks:", n_cached, "| same as computed:", np.array_equal(cached, semantic))

# %% [markdown]
# The same is available from a shell: `livecell-kit masks --annotations JSON --out DIR`.
#
# ## What you learned
#
# * A run-length encoding stores a mask as alternating runs of 0s and 1s, column by column,
#   starting with 0s; the cell's area is the sum of its foreground runs, and `np.repeat` plus a
#   column-major reshape decodes it (pycocotools' `frPyObjects`, `merge` and `decode` do it in C).
# * The semantic mask of an image is the union of its cells, decoded once from merged RLEs.
# * In that union, touching cells merge; the instance labels find their shared borders, and the
#   U-Net paper's weight map makes errors in the gaps between cells cost up to 1 + w₀ times
#   more (σ sets how far that reaches).
# * Masks are built once per image and cached as PNG files for every later notebook.
#
# **Next:** notebook 03 builds the U-Net that learns these masks.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
