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
# # 04 · Training
#
# Training shows the network many (image, mask) pairs and nudges its weights to lower a
# **loss**. This notebook takes the steps one by one: the **input pipeline** and its
# **augmentation**, the **loss**, `model.compile(...)` and `model.fit(...)`. The kit keeps the
# bookkeeping: a *run folder* with checkpoints, the history and the settings, which lets an
# interrupted run resume. `livecell-kit train` (and `train.train()`) runs the same steps in one call.
#
# **After this notebook you can**
#
# * say what a *batch*, an *epoch*, an *optimizer* and a *learning rate* are, with this run's numbers;
# * explain why training crops are augmented, and look at what the network is shown;
# * compile and train a U-Net, and read Keras's log line by line (including its `precision:` line);
# * read learning curves, and explain why validation can score above training;
# * change the learning rate and compare (experiment), and count what training sees (exercise 4b).

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %%
import inspect
import keras
import numpy as np
from livecell_kit import data, exercises, figures, masks, presets, train
from livecell_kit.model import build_unet

root = kit.train_root  # the sample, or real LIVECell when it annotates train and val
quick = kit.preset      # the `quick` preset: settings sized for a laptop CPU
print(quick.description)

# %% [markdown]
# ## Four words first
#
# * A **batch** is the handful of training examples the network looks at together — here 8
#   crops of 128×128 pixels. The loss is averaged over the batch, and after every batch the
#   weights change once: one **step** (one *weight update*).
# * An **epoch** is one round of batches. Classically that is one pass over all training
#   images; with random crops there is no "all", so the preset fixes the round at
#   `steps_per_epoch` batches. After each epoch Keras prints one line, scores the validation
#   images and the kit saves a checkpoint.
# * The **optimizer** is the rule that turns the loss's gradient — how much each weight would
#   raise or lower the loss — into a change of the weights. The kit uses **Adam**, the usual
#   choice, which smooths each weight's recent gradients so its steps stay steady.
# * The **learning rate** sets the size of those steps: too small and learning crawls, too
#   large and the loss jumps about or blows up. It is the setting most worth tuning first.
#
# ## The input pipeline
#
# A `tf.data` pipeline **streams** images and their cached masks from disk (it never needs the
# whole data set in memory; a small one like the sample is decoded once and kept), cuts random
# crops of `crop_size` pixels, augments them and prepares the next batch while the current one
# trains. Seeding first makes the crops, the shuffling and the starting weights the same on every run.

# %%
keras.utils.set_random_seed(quick.train.seed)
train_ds, val_ds, steps = train.preset_datasets(root, quick)  # training crops; whole validation frames
print("batches per epoch:", steps, "| batch size:", quick.train.batch_size, "| crop:", quick.train.crop_size,
      "| epochs:", quick.train.epochs)
source = course.data_label(root)  # "synthetic sample" or "real LIVECell": said in the figures' titles

# %% [markdown]
# ### Exercise 4b — how much does training see?
#
# How many training crops pass through the network in the whole `quick` run? Use the numbers
# printed above (`quick.train.epochs`, `steps`, `quick.train.batch_size`).

# %%
### BEGIN SOLUTION
crops_seen = quick.train.epochs * steps * quick.train.batch_size
### END SOLUTION
exercises.check_crops_seen(crops_seen, quick.train.epochs, steps, quick.train.batch_size)

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
# One training batch, as `model.fit` will receive it, all crops on one grey scale. Some crops
# hold no cell at all: a random 128×128 window of a sparse frame is often empty background,
# and the network must learn that too. (Stretched to its own contrast, such a crop would
# turn a few grey levels of camera noise into black-and-white static.)

# %%
# NBVAL_CHECK_OUTPUT
batch_images, batch_masks = (t.numpy() for t in next(iter(train_ds)))
print("images:", tuple(batch_images.shape), batch_images.dtype, "| masks:", tuple(batch_masks.shape), batch_masks.dtype)

# %%
fig = figures.augmented_crops(batch_images[:8, ..., 0], batch_masks[:8, ..., 0],
                           title=f"augmented training crops ({source})")

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
exercises.check_background_accuracy(answer, train_masks)

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
# `train.open_run` opens the *run folder* and records the settings in `config.json`. It prints
# one line, `precision: ...`: the **number format** the layers compute in on this machine.
# `mixed_bfloat16` means the layers multiply and add in *bfloat16*, a 16-bit float with
# float32's range but only about 3 significant digits, while the weights themselves stay
# float32 so that many tiny updates still add up. It is chosen on CPUs that compute bfloat16
# natively (AMX or AVX512-BF16 instructions; the stored outputs were made on such a CPU):
# about twice as fast, same accuracy. Elsewhere you see `float32` (older CPUs, where bfloat16 would be
# emulated and slower) or `mixed_float16` (GPUs with tensor cores).
#
# `compile` tells the model how to learn: the Adam optimizer, the loss, and metrics to report
# after each epoch. The learning rate starts at the preset's value and decays along a cosine
# to 1 % of it by the last step — big steps early, fine adjustments at the end:

# %%
run = train.open_run(root, quick, course.quick_run_dir(root))  # notebook 05 looks for the run here
with train.model_scope(run.precision):  # the number format (and all GPUs) while building
    model = build_unet(quick.model, name="unet_quick")
    model.compile(optimizer=keras.optimizers.Adam(train.learning_rate(quick.train, steps)),
                  loss=train.get_loss(quick.train.loss),  # bce_dice
                  metrics=train.make_metrics(),  # pixel accuracy, IoU and Dice at p >= 0.5
                  jit_compile=quick.train.jit_compile)

# %%
schedule = train.learning_rate(quick.train, steps)
fig = figures.learning_rate_schedule([float(schedule(s)) for s in range(quick.train.epochs * steps)], steps,
                                  title=f"learning rate of the quick run (Adam, starts at {quick.train.learning_rate:g})")

# %% [markdown]
# ## Train
#
# `fit` runs `epochs` × `steps` batches and scores the whole validation frames after each epoch.
# **This cell trains** (about two minutes on a 2-core CPU; one line per epoch). The kit's
# callbacks save the best and the last model, the history (`history.json`) and resume state
# after every epoch: rerun an interrupted cell and it continues where it stopped; a finished run
# is reused, not trained again. Two validation crops are predicted after every epoch to watch
# the network learn.
#
# Each log line reads: `30/30` batches done, the seconds the epoch took, then the loss and
# metrics on the training batches (averaged over the epoch) and, prefixed `val_`, the same
# on the validation frames, measured once at the epoch's end.

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
fig = figures.training_snapshots(snapshots, snapshot_images)

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
#
# **Why is validation often *better* than training here?** Three reasons, none of them a bug:
#
# * The training numbers are an **average over the epoch**, while the weights were still
#   improving; the validation numbers are measured once, with the weights at the epoch's end.
# * Training crops are **augmented** (zoomed, re-contrasted) and small: 128×128 windows whose
#   edge pixels lack context. Validation frames are unaugmented and whole. Layers that act
#   only in training — **dropout**, in presets that use it (`quick` does not), and batch
#   normalisation's per-batch statistics — make training scores noisier still.
# * The validation set is small (16 frames on the sample), so one epoch's value moves a lot.

# %%
fig = figures.learning_curves(result.history, metrics=("loss", "pixel_accuracy", "iou", "dice"),
                           title=f"learning curves of the quick run ({source})")

# %% [markdown]
# ### Experiment — change the learning rate and compare
#
# Set `learning_rate` below to 10× smaller (`3e-4`) or 10× larger (`3e-2`) than the preset's
# and run the cell: it trains a fresh copy of the same U-Net for two epochs at that constant
# rate (under a minute) and prints its validation IoU beside the first two epochs above. Which way is worse, and by how much?
# Try `0.3` too.

# %%
learning_rate = 3e-4  # change this: the preset uses 3e-3
keras.utils.set_random_seed(quick.train.seed)
with train.model_scope(run.precision):
    trial = build_unet(quick.model, name="unet_trial")
    trial.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=train.get_loss(quick.train.loss),
                  metrics=train.make_metrics())
trial_history = trial.fit(train_ds, validation_data=val_ds, epochs=2, steps_per_epoch=steps, verbose=0,
                          shuffle=False).history  # the pipeline shuffles itself
for epoch in range(2):
    print(f"epoch {epoch + 1}: val IoU {trial_history['val_iou'][epoch]:.3f} with learning rate {learning_rate:g}"
          f" | {result.history['val_iou'][epoch]:.3f} with the preset's {quick.train.learning_rate:g}")

# %% [markdown]
# ## Predictions on validation images

# %%
from livecell_kit import predict

val_mask_dir = masks.build_mask_cache(val_split, kind="semantic", progress=False)
examples = val_split.images[:: max(1, len(val_split.images) // 3)][:3]
images = [data.read_image(val_split.image_path(img)) for img in examples]
truths = [masks.load_mask(val_mask_dir, img["file_name"]) for img in examples]
probabilities = [predict.predict_image(result.model, image) for image in images]
fig = figures.prediction_grid(images, truths, probabilities, titles=[f"{val_split.cell_type(i)} ({source})" for i in examples])

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
# ## Summary
#
# * A run is **epochs** of **batches**: after each batch the **optimizer** (Adam) moves every
#   weight a step against the loss's gradient, the step size set by the **learning rate**
#   (here decaying along a cosine). The `quick` run made 240 such steps.
# * The pipeline streams random crops and **augments** them, so a few training frames go a
#   long way; image and mask are transformed together.
# * The loss (BCE + Dice) is what training lowers; the metrics are what we read. Validation
#   can score above training, because training numbers are averaged over an improving epoch
#   on harder, augmented crops.
# * `precision: mixed_bfloat16` is the number format the machine computes fastest, not a
#   metric.
# * The run folder keeps everything needed to resume and to evaluate: notebook 05 loads it.
#
# **Next:** notebook 05 asks how good this model really is. It finds this run with
# `course.quick_run()`, which trains it first (and says so) when this notebook has not run.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
