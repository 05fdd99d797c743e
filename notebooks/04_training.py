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
# # 04 · Training
#
# Training shows the network many (image, mask) pairs and nudges its weights to lower a
# **loss**. The seed project used **binary cross-entropy** (BCE), which punishes confident
# wrong pixels; the `quick` preset adds a **Dice** term, which counts overlap and so is not
# dominated by the many easy background pixels.
#
# The kit feeds the network with a `tf.data` pipeline that **streams** images and cached masks
# from disk (it never needs the whole data set in memory), cuts random crops, **augments**
# them (flips, 90° rotations, brightness and contrast) so the network cannot memorise, and
# prepares the next batch while the current one trains.

# %%
# Setup. On Colab this installs the kit first (Colab keeps its own TensorFlow and numpy).
import subprocess, sys
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"], check=True)
from livecell_kit import course
info = course.setup()

# %%
from livecell_kit import data, masks, plot, presets, train, checks

root = course.training_root()  # the sample, or real LIVECell when it annotates train and val
quick = presets.get_preset("quick")
print(quick.description)

# %% [markdown]
# ## What the network sees
#
# One training batch: random crops of `crop_size` pixels with their masks, after augmentation.

# %%
# NBVAL_CHECK_OUTPUT
batch_images, batch_masks = train.example_batch(root, quick)
print("images:", tuple(batch_images.shape), batch_images.dtype, "| masks:", tuple(batch_masks.shape), batch_masks.dtype)

# %%
fig = plot.show_images([plot.overlay(i[..., 0], {"truth": m[..., 0]}) for i, m in zip(batch_images[:8], batch_masks[:8])],
                       ncols=4, size=2.2, suptitle="augmented training crops, cells in green")

# %% [markdown]
# ### Exercise 4 — how good is doing nothing?
#
# Most pixels are background. What **pixel accuracy** would a "model" reach that answers
# *no cell* everywhere? Compute it on the training masks (`train_masks`, a list of 0/1 arrays)
# as a fraction between 0 and 1.

# %%
train_split = data.load_split(root, "train")
mask_dir = masks.build_mask_cache(train_split, kind="semantic", progress=False)
train_masks = [masks.load_mask(mask_dir, img["file_name"]) for img in train_split.images]

# %%
### BEGIN SOLUTION
background = sum(int((m == 0).sum()) for m in train_masks)
answer = background / sum(m.size for m in train_masks)
### END SOLUTION
checks.check_background_accuracy(answer, train_masks)

# %% [markdown]
# ## Train the quick preset
#
# `course.quick_run()` trains the `quick` preset on the training split, validating on the
# validation split after each epoch, and saves everything in a *run folder*: the best model
# (`model.keras`), the per-epoch history (`history.json`) and the settings used
# (`config.json`). If the run already exists — say notebook 05 trained it — it is reused;
# if training was interrupted, it resumes where it stopped.

# %%
val_split = data.load_split(root, "val")
# Two 256×256 crops of validation images, predicted after every epoch to watch the network learn.
snapshot_images = [data.read_image(val_split.image_path(img))[128:384, 224:480] for img in val_split.images[:2]]
snapshots = train.PredictionSnapshots(snapshot_images)
run = course.quick_run(root, verbose=2, callbacks=[snapshots])

# %%
fig = plot.training_snapshots(snapshots, snapshot_images)

# %%
# NBVAL_CHECK_OUTPUT
print("epochs trained:", len(run.history["loss"]))
print("history keys:", sorted(run.history))
print("files:", sorted(p.name for p in run.out_dir.iterdir() if p.suffix in {".keras", ".json"}))

# %% [markdown]
# ## Learning curves
#
# Training loss should fall steadily. Validation metrics are computed on whole 520×704 frames
# of images the network never trained on; if they stopped improving while the training loss
# kept falling, the network would be **overfitting**.

# %%
fig = plot.learning_curves(run.history, metrics=("loss", "pixel_accuracy", "iou", "dice"))

# %% [markdown]
# ## Predictions on validation images

# %%
import numpy as np
from livecell_kit import predict

val_mask_dir = masks.build_mask_cache(val_split, kind="semantic", progress=False)
examples = val_split.images[:: max(1, len(val_split.images) // 3)][:3]
images = [data.read_image(val_split.image_path(img)) for img in examples]
truths = [masks.load_mask(val_mask_dir, img["file_name"]) for img in examples]
probabilities = [predict.predict_image(run.model, image) for image in images]
fig = plot.prediction_grid(images, truths, probabilities, titles=[val_split.cell_type(i) for i in examples])

# %%
# NBVAL_CHECK_OUTPUT
print("prediction shape:", probabilities[0].shape, probabilities[0].dtype)
print("validation IoU above 0.5:", run.history["val_iou"][-1] > 0.5)

# %% [markdown]
# ## Reproducing the seed project on real LIVECell
#
# The seed preset trains the seed's U-Net on whole frames: 1024 training images, 50 epochs,
# batch 32, learning rate 5e-5. That is a job for a GPU (Colab's is enough). After
# `livecell-kit download --out ~/livecell`:

# %%
print(train.reproduce_command("seed", data_dir="~/livecell", out_dir="runs/seed"))

# %% [markdown]
# **Next:** notebook 05 asks how good this model really is.
