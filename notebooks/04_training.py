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
# * build a `tf.data` input pipeline step by step — read, crop, augment, batch, prefetch — and
#   explain why training crops are augmented;
# * write the Dice loss as tensor code and train a U-Net with it (exercise 4c);
# * compile and train, and read Keras's log line by line (including its `precision:` line);
# * read learning curves, and explain why validation can score above training;
# * change the learning rate and compare (experiment), and count what training sees (exercise 4b).

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %%
import keras
import numpy as np
import tensorflow as tf
from livecell_kit import data, exercises, figures, masks, presets, train
from livecell_kit.model import build_unet

root = kit.train_root  # the sample, or real LIVECell when it annotates train and val
quick = kit.preset      # the `quick` preset: settings sized for a laptop CPU
tc = quick.train  # its training settings: batch size, crop size, seed, loss, ...
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
# A `tf.data` pipeline is a chain of steps that **streams** training examples to `model.fit`:
# it never needs the whole data set in memory, and it prepares the next batch while the current
# one trains. We build it step by step: **read**, **crop**, **augment**, **batch**, **prefetch**.
# The kit supplies one function per step where there is plumbing to hide (finding files, decoding
# TIFFs); the rest is plain `tf.data`.
#
# **Read.** `train.read_frames` decodes each training image and its cached mask into one stacked
# array (H, W, 2): grey values, then the mask. Stacked, a crop, a zoom or a flip moves image and
# mask together and cannot misalign them. The sample is small, so the decoded frames are kept
# after the first round (`cache`), shuffled anew every round and repeated forever: an epoch is
# `steps_per_epoch` batches, not one pass. Seeding first makes the crops, the shuffling and the
# starting weights the same on every run.

# %%
keras.utils.set_random_seed(tc.seed)
image_files, mask_files = train.preset_files(root, quick, "train")  # the images `quick` trains on, their masks
frames = train.read_frames(image_files, mask_files)  # read: one (H, W, 2) uint8 stack per image
first = next(iter(frames)).numpy()
print(len(image_files), "training frames; one stack:", first.shape, first.dtype,
      "| mask values:", np.unique(first[..., 1]))
frames = frames.cache().shuffle(len(image_files), seed=tc.seed, reshuffle_each_iteration=True).repeat()
source = course.data_label(root)  # "synthetic sample" or "real LIVECell": said in the figures' titles

# %% [markdown]
# **Crop and augment.** Training uses random 128×128 crops: small enough for a CPU, and every
# crop is a new view. **Augmentation** shows the network a slightly different version of every
# crop each time — zoomed in or out a little, flipped, turned by 90°, brighter or dimmer, with
# more or less contrast and a gamma curve — so it cannot memorise the few training images. The
# ranges were set by measuring how real LIVECell frames differ from the synthetic sample (cell
# sizes, contrast, brightness; `bench/sample_realism.py`), which is what lets a model trained on
# the sample segment real cells. The geometric changes act on the stack (image and mask), the
# grey-level changes on the image only. Every random choice takes its seed from `seed`, a pair of
# integers each frame gets from `train.with_seeds`: the same run seed gives the same crops, in
# whatever order the parallel workers finish.

# %%
augmentation = train.Augmentation()  # the ranges: zoom, contrast, gamma, brightness (its docstring says how much)

def crop_and_augment(stack, seed):
    """One training example from one (H, W, 2) stack: x (128, 128, 1) grey levels 0..255, y (128, 128, 1) 0/1."""
    zoom, left_right, up_down, turn, look = tf.unstack(tf.random.experimental.stateless_split(seed, num=5))
    stack = train.zoomed_crop(stack, tc.crop_size, augmentation.scale, zoom)  # a random window, zoomed, resized
    stack = tf.image.stateless_random_flip_left_right(stack, left_right)  # image and mask flip together
    stack = tf.image.stateless_random_flip_up_down(stack, up_down)
    stack = tf.image.rot90(stack, tf.random.stateless_uniform([], turn, 0, 4, dtype=tf.int32))  # 0-3 quarter turns
    return train.vary_intensity(stack[..., :1], look, augmentation), stack[..., 1:]  # gamma, contrast, brightness

# %% [markdown]
# **Batch and prefetch.** `map` runs `crop_and_augment` on each frame, on several CPU threads at
# once; `batch` groups 8 crops into one batch, one weight update; `prefetch` keeps the next
# batches ready while the current one trains.

# %%
crops = train.with_seeds(frames, tc.seed).map(crop_and_augment, num_parallel_calls=tf.data.AUTOTUNE)
train_ds = crops.batch(tc.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
print(train_ds.element_spec)

# %% [markdown]
# `train.preset_datasets` is the kit's version of these steps in one call (what `livecell-kit train`
# uses); it also builds the **validation** data: whole 520×704 frames in file order, neither
# cropped nor augmented. The pipeline is deterministic, so ours must give exactly its batches:

# %%
# NBVAL_CHECK_OUTPUT
kit_train_ds, val_ds, steps = train.preset_datasets(root, quick)  # training crops; whole validation frames
for (x, y), (kit_x, kit_y) in zip(train_ds.take(3), kit_train_ds.take(3)):
    assert np.array_equal(x, kit_x) and np.array_equal(y, kit_y), "the notebook's pipeline differs from the kit's"
del kit_train_ds  # its cache would hold a second copy of the frames
print("the first 3 batches equal the kit's | batches per epoch:", steps, "| batch size:", tc.batch_size,
      "| crop:", tc.crop_size, "| epochs:", tc.epochs)

# %% [markdown]
# ### Exercise 4b — how much does training see?
#
# How many training crops pass through the network in the whole `quick` run? Use the numbers
# printed above (`tc.epochs`, `steps`, `tc.batch_size`).
#
# **Hint:** one step is one batch; an epoch is `steps` of them.

# %%
### BEGIN SOLUTION
crops_seen = tc.epochs * steps * tc.batch_size
### END SOLUTION
exercises.check_crops_seen(crops_seen, tc.epochs, steps, tc.batch_size)

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
# *no cell* everywhere? Compute it on the training masks (`train_masks`, a list of 0/1 arrays,
# read by the pipeline's first step) as a fraction between 0 and 1.
#
# **Hint:** `(m == 0).sum()` counts one mask's background pixels, `m.size` all of its pixels.

# %%
train_masks = [stack[..., 1] for stack in train.read_frames(image_files, mask_files).as_numpy_iterator()]

# %%
### BEGIN SOLUTION
background = sum(int((m == 0).sum()) for m in train_masks)
answer = background / sum(m.size for m in train_masks)
### END SOLUTION
exercises.check_background_accuracy(answer, train_masks)

# %% [markdown]
# ## The loss
#
# The loss is one number per training crop that says how wrong the prediction is; training
# lowers it. The seed project used **binary cross-entropy**, BCE = −[y·log p + (1 − y)·log(1 − p)]
# per pixel, which punishes confident wrong pixels. The `quick` preset adds a **Dice** term,
# 1 − 2·|truth ∩ prediction| / (|truth| + |prediction|), which counts overlap per image and so
# is not dominated by the many easy background pixels. (Notebook 02 showed a third option,
# the U-Net paper's border-weighted BCE.)
#
# ### Exercise 4c — write the Dice loss
#
# Write `dice_loss(y_true, y_pred)`. Both are float32 tensors of shape (B, H, W, 1): `y_true`
# the 0/1 masks of a batch, `y_pred` the network's probabilities. Return one loss per image,
# shape (B,): **1 − (2·Σ y·p + 1) / (Σ y + Σ p + 1)**, each Σ over one image's pixels. With
# probabilities instead of 0/1 this is the *soft* Dice, which has a gradient. The `+ 1` is a
# smoothing term: a crop without cells, predicted empty, would otherwise be 0 / 0. Use
# TensorFlow operations (`tf.reduce_sum`): training runs the function inside a TensorFlow graph.
#
# **Hint:** `tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))` is each image's overlap, shape (B,).

# %%
### BEGIN SOLUTION
def dice_loss(y_true, y_pred):
    """1 − soft Dice per image → (B,); y_true (B, H, W, 1) 0/1, y_pred (B, H, W, 1) probabilities."""
    overlap = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    total = tf.reduce_sum(y_true, axis=(1, 2, 3)) + tf.reduce_sum(y_pred, axis=(1, 2, 3))
    return 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)
### END SOLUTION
exercises.check_dice_loss(dice_loss)

# %% [markdown]
# The `quick` preset trains with BCE + Dice. Here it is in full, with your Dice loss in it — or
# the kit's `train.dice_loss` until yours checks out, so the rest of the notebook still runs.
# Keras averages the per-image losses over the batch. The last line checks it against the kit's
# `train.bce_dice` on the batch above.

# %%
dice = dice_loss if exercises.check_dice_loss.verdict(dice_loss) else train.dice_loss

def bce_dice(y_true, y_pred):
    """BCE averaged over each image's pixels + the Dice loss → (B,)."""
    p = tf.clip_by_value(y_pred, 1e-7, 1 - 1e-7)  # keeps log() finite, as Keras's BCE does
    bce = -tf.reduce_mean(y_true * tf.math.log(p) + (1 - y_true) * tf.math.log(1 - p), axis=(1, 2, 3))
    return bce + dice(y_true, y_pred)

guess = np.clip(batch_masks + np.random.default_rng(0).normal(0, 0.3, batch_masks.shape), 0, 1).astype("float32")
assert np.allclose(bce_dice(batch_masks, guess), train.bce_dice(batch_masks, guess), atol=1e-5)

# %%
# The loss of three guesses on the batch above: lower is better.
guesses = {"perfect": batch_masks, "unsure, 0.5 everywhere": np.full_like(batch_masks, 0.5),
           "no cell anywhere": np.zeros_like(batch_masks)}
for name, guess in guesses.items():
    print(f"{name:>24}: BCE + Dice = {float(np.mean(bce_dice(batch_masks, guess))):.2f}")

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
# `compile` tells the model how to learn: the Adam optimizer, the loss (ours, from above), and
# metrics to report after each epoch. The learning rate starts at the preset's value and decays
# along a cosine to 1 % of it by the last step — big steps early, fine adjustments at the end.
# `jit_compile=True` would have XLA, TensorFlow's compiler, fuse each training step's operations
# into a few machine-code kernels before the first batch: it pays on GPUs, but on a CPU the
# compile time rarely comes back, so `quick` leaves it off.

# %%
run = train.open_run(root, quick, course.quick_run_dir(root))  # notebook 05 looks for the run here
with train.model_scope(run.precision):  # the number format (and all GPUs) while building
    model = build_unet(quick.model, name="unet_quick")
    model.compile(optimizer=keras.optimizers.Adam(train.learning_rate(tc, steps)),
                  loss=bce_dice,  # the notebook's, with your Dice loss
                  metrics=train.make_metrics(),  # pixel accuracy, IoU and Dice at p >= 0.5
                  jit_compile=tc.jit_compile)  # False: no XLA compilation (see above)

# %%
schedule = train.learning_rate(tc, steps)
fig = figures.learning_rate_schedule([float(schedule(s)) for s in range(tc.epochs * steps)], steps,
                                  title=f"learning rate of the quick run (Adam, starts at {tc.learning_rate:g})")

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
val_mask_dir = masks.build_mask_cache(val_split, kind="semantic", progress=False)
watched = val_split.images[:2]  # two validation crops, with their annotated masks
snapshot_images = [data.read_image(val_split.image_path(img))[128:384, 224:480] for img in watched]
snapshot_truths = [masks.load_mask(val_mask_dir, img["file_name"])[128:384, 224:480] for img in watched]
snapshots = train.PredictionSnapshots(snapshot_images, truths=snapshot_truths)
if not run.finished:
    model.fit(train_ds, validation_data=val_ds, epochs=tc.epochs, steps_per_epoch=steps,
              callbacks=train.run_callbacks(run.out_dir, tc.early_stopping_patience) + [snapshots],
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
keras.utils.set_random_seed(tc.seed)
with train.model_scope(run.precision):
    trial = build_unet(quick.model, name="unet_trial")
    trial.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=bce_dice, metrics=train.make_metrics())
trial_history = trial.fit(train_ds, validation_data=val_ds, epochs=2, steps_per_epoch=steps, verbose=0,
                          shuffle=False).history  # the pipeline shuffles itself
for epoch in range(2):
    print(f"epoch {epoch + 1}: val IoU {trial_history['val_iou'][epoch]:.3f} with learning rate {learning_rate:g}"
          f" | {result.history['val_iou'][epoch]:.3f} with the preset's {tc.learning_rate:g}")

# %% [markdown]
# ## Predictions on validation images

# %%
from livecell_kit import predict

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
# * The pipeline reads, crops, **augments**, batches and prefetches: a few training frames go a
#   long way, and image and mask are transformed together because they travel stacked.
# * The loss (BCE + your Dice) is what training lowers, one number per image; the metrics are
#   what we read. Validation
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
