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
# **loss**. This notebook takes the steps one by one: the **input pipeline** and its
# **augmentation**, the **loss**, `model.compile(...)` and `model.fit(...)`. The kit keeps the
# bookkeeping: a *run folder* with checkpoints, the history and the settings, which lets an
# interrupted run resume. `livecell-kit train` (and `train.train()`) runs the same steps in one call.

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

# %%
import inspect
import keras
import numpy as np
from livecell_kit import data, masks, plot, presets, train, checks
from livecell_kit.model import build_unet

root = course.training_root()  # the sample, or real LIVECell when it annotates train and val
quick = presets.get_preset("quick")
print(quick.description)

# %% [markdown]
# ## The input pipeline
#
# A `tf.data` pipeline **streams** images and their cached masks from disk (it never needs the
# whole data set in memory; a small one like the sample is decoded once and kept), cuts random
# crops of `crop_size` pixels, augments them and prepares the next batch while the current one
# trains. Seeding first makes the crops, the shuffling and the starting weights the same on every run.

# %%
keras.utils.set_random_seed(quick.train.seed)
train_ds, val_ds, steps = train.preset_datasets(root, quick)  # training crops; whole validation frames
print("batches per epoch:", steps, "| batch size:", quick.train.batch_size, "| crop:", quick.train.crop_size)

# %% [markdown]
# **Augmentation** shows the network a slightly different version of every crop each time —
# zoomed in or out a little, flipped, turned by 90°, brighter or dimmer, with more or less
# contrast and a gamma curve — so it cannot memorise the few training images. The ranges
# were set by measuring how real LIVECell frames differ from the synthetic sample (cell sizes,
# contrast, brightness; `bench/sample_realism.py`), which is what lets a model trained on the
# sample segment real cells. Image and mask are stacked in one tensor, so a crop, a zoom or a
# flip moves both together. This is the kit's code:

# %%
print(inspect.getsource(train.crop_and_augment))

# %% [markdown]
# ## What the network sees
#
# One training batch, as `model.fit` will receive it.

# %%
# NBVAL_CHECK_OUTPUT
batch_images, batch_masks = (t.numpy() for t in next(iter(train_ds)))
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
train_split = course.preset_split(root, "train")  # the images `quick` trains on
mask_dir = masks.build_mask_cache(train_split, kind="semantic", progress=False)
train_masks = [masks.load_mask(mask_dir, img["file_name"]) for img in train_split.images]

# %%
### BEGIN SOLUTION
background = sum(int((m == 0).sum()) for m in train_masks)
answer = background / sum(m.size for m in train_masks)
### END SOLUTION
checks.check_background_accuracy(answer, train_masks)

# %% [markdown]
# ## The loss
#
# The seed project used **binary cross-entropy**, BCE = −[y·log p + (1 − y)·log(1 − p)] per pixel,
# which punishes confident wrong pixels. The `quick` preset adds a **Dice** term,
# 1 − 2·|truth ∩ prediction| / (|truth| + |prediction|), which counts overlap per image and so
# is not dominated by the many easy background pixels. (Notebook 02 showed a third option,
# the U-Net paper's border-weighted BCE.) The kit's code:

# %%
print(inspect.getsource(train.dice_loss))
print(inspect.getsource(train.bce_dice))

# %%
# The loss of three guesses on the batch above: lower is better.
guesses = {"perfect": batch_masks, "unsure, 0.5 everywhere": np.full_like(batch_masks, 0.5),
           "no cell anywhere": np.zeros_like(batch_masks)}
for name, guess in guesses.items():
    print(f"{name:>24}: BCE + Dice = {float(np.mean(train.bce_dice(batch_masks, guess))):.2f}")

# %% [markdown]
# ## Build and compile
#
# `train.open_run` opens the *run folder* and records the settings in `config.json`, with the
# number format chosen for this machine (bfloat16 on CPUs that compute it natively, float16 on
# GPUs with tensor cores, else float32). `compile` tells the model how to learn: the **Adam**
# optimiser with the preset's learning rate, decaying along a cosine over the run, the loss,
# and metrics to report after each epoch.

# %%
run = train.open_run(root, quick, course.quick_run_dir(root))  # notebook 05 looks for the run here
with train.model_scope(run.precision):  # the number format (and all GPUs) while building
    model = build_unet(quick.model, name="unet_quick")
    model.compile(optimizer=keras.optimizers.Adam(train.learning_rate(quick.train, steps)),
                  loss=train.get_loss(quick.train.loss),  # bce_dice
                  metrics=train.make_metrics(),  # pixel accuracy, IoU and Dice at p >= 0.5
                  jit_compile=quick.train.jit_compile)

# %% [markdown]
# ## Train
#
# `fit` runs `epochs` × `steps` batches and scores the whole validation frames after each epoch.
# **This cell trains** (about two minutes on a 2-core CPU; one line per epoch). The kit's
# callbacks save the best and the last model, the history (`history.json`) and resume state
# after every epoch: rerun an interrupted cell and it continues where it stopped; a finished run
# is reused, not trained again. Two validation crops are predicted after every epoch to watch
# the network learn.

# %%
val_split = course.preset_split(root, "val")
snapshot_images = [data.read_image(val_split.image_path(img))[128:384, 224:480] for img in val_split.images[:2]]
snapshots = train.PredictionSnapshots(snapshot_images)
if not run.finished:
    model.fit(train_ds, validation_data=val_ds, epochs=quick.train.epochs, steps_per_epoch=steps,
              callbacks=train.run_callbacks(run.out_dir, quick.train.early_stopping_patience) + [snapshots],
              verbose=2, shuffle=False)  # the tf.data pipeline shuffles itself
result = train.finish_run(run, model)  # the best epoch's model -> model.keras; the run is finished

# %%
fig = plot.training_snapshots(snapshots, snapshot_images)

# %%
# NBVAL_CHECK_OUTPUT
print("epochs trained:", len(result.history["loss"]))
print("history keys:", sorted(result.history))
print("files:", sorted(p.name for p in result.out_dir.iterdir() if p.suffix in {".keras", ".json"}))

# %% [markdown]
# ## Learning curves
#
# Training loss should fall steadily. Validation metrics are computed on whole 520×704 frames
# of images the network never trained on; if they stopped improving while the training loss
# kept falling, the network would be **overfitting**.

# %%
fig = plot.learning_curves(result.history, metrics=("loss", "pixel_accuracy", "iou", "dice"))

# %% [markdown]
# ## Predictions on validation images

# %%
from livecell_kit import predict

val_mask_dir = masks.build_mask_cache(val_split, kind="semantic", progress=False)
examples = val_split.images[:: max(1, len(val_split.images) // 3)][:3]
images = [data.read_image(val_split.image_path(img)) for img in examples]
truths = [masks.load_mask(val_mask_dir, img["file_name"]) for img in examples]
probabilities = [predict.predict_image(result.model, image) for image in images]
fig = plot.prediction_grid(images, truths, probabilities, titles=[val_split.cell_type(i) for i in examples])

# %%
# NBVAL_CHECK_OUTPUT
print("prediction shape:", probabilities[0].shape, probabilities[0].dtype)
print("validation IoU above 0.5:", result.history["val_iou"][-1] > 0.5)

# %% [markdown]
# ## Reproducing the seed project on real LIVECell
#
# The seed preset trains the seed's U-Net on whole frames: 1024 training images, 50 epochs,
# batch 32, learning rate 5e-5. That is a job for a GPU (Colab's is enough). After
# `livecell-kit download --out ~/livecell`:

# %%
print(train.reproduce_command("seed", data_dir="~/livecell", out_dir="runs/seed"))

# %% [markdown]
# **Next:** notebook 05 asks how good this model really is. It finds this run with
# `course.quick_run()`, which trains it first (and says so) when this notebook has not run.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
