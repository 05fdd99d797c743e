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
# # 06 · Cells, not pixels: split touching cells, count them, measure confluence
#
# Notebook 05 ended with a puzzle: the U-Net finds cell *pixels* well, yet instance AP is low.
# Biologists count cells and follow **confluence** (the share of the dish covered by cells)
# over time, and both need every cell on its own — in a crowded sheet, neighbouring cells
# touch, and a mask of "cell / not cell" merges them into blobs.
#
# Here the U-Net learns to predict, besides the foreground, **where each cell's centre is and
# where its outline is**, and a **seeded watershed** turns those maps into one label per cell
# (the approach of torch-em and of deepcell; the ViM-UNet paper measured it on LIVECell).
#
# **After this notebook you can**
#
# * show why a perfect cell mask still merges touching cells (the "ceiling" of notebook 05's method);
# * explain the three targets: foreground, distance to the cell's centre, distance to its outline;
# * train a U-Net with an instance head (`compile`/`fit` in the open) and read its per-channel loss;
# * run the seeded watershed step by step, and write its seeds yourself (exercise 6);
# * read instance AP, cell counts and confluence against the annotations, frame by frame;
# * compare distance targets with a border target (experiment).

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %%
import csv
from pathlib import Path
import keras
import numpy as np
from IPython.display import Image
from scipy import ndimage
from skimage import measure, segmentation
from livecell_kit import data, evaluate, exercises, figures, instances, masks, predict, presets, pretrained, train
from livecell_kit.measure import measure_frames
from livecell_kit.model import build_unet

root, eval_split, source = kit.root, kit.eval_split, kit.label  # the data scored, its split, its label
train_root = kit.train_root    # where the model trains (the sample when root has no train split)

# %% [markdown]
# ## Why touching cells merge
#
# Take the most crowded test frame and pretend the U-Net were perfect: give the watershed of
# notebook 05 the **annotated** cell mask. The watershed cuts a blob where the distance to the
# background has a neck — but cells in a sheet meet along straight, neck-free borders.

# %%
test_split = course.preset_split(root, eval_split)
counts = dict(zip(test_split.image_ids, test_split.cell_counts()))
crowded = max(test_split.images, key=lambda img: counts[img["id"]])
image = data.read_image(test_split.image_path(crowded))
annotations = test_split.annotations_for(crowded["id"])
true_cells = masks.cell_labels(annotations, *image.shape)
from_perfect_mask = instances.semantic_to_instances((true_cells > 0).astype(np.float32))
fig = figures.label_panels(image, {"annotated cells": true_cells, "watershed of the perfect mask": from_perfect_mask},
                              suptitle=f"{crowded['file_name']} ({source})")

# %%
# NBVAL_CHECK_OUTPUT
print(f"{len(annotations)} cells annotated; the watershed of the perfect mask finds {from_perfect_mask.max()}")

# %% [markdown]
# The network has to predict where one cell ends and the next begins. A yes/no "border" pixel
# (notebook 02) is one way; smoother targets that a network regresses more easily are
# **distances**, normalised per cell so that every cell — small or large — spans 0 to 1:
#
# * **foreground**: 1 inside any cell;
# * **centre distance**: 0 at the cell's centre (its pixel farthest from the outline), 1 at its farthest pixel;
# * **boundary distance**, inverted: 0 deep inside the cell, 1 on its outline.
#
# Both distances are 1 on the background. Where two cells touch, the boundary distance rises to 1
# along their shared border — the ridge the watershed will follow.
#
# LIVECell's outlines overlap in places (duplicates, cells crawling over each other), so
# `masks.cell_labels` first makes one label per pixel by a documented rule (see its docstring).

# %%
targets = masks.distance_targets(true_cells)   # (H, W, 3): foreground, centre, boundary
outline = masks.boundary_target(true_cells)    # the simpler target: 1 on every cell's outline
print("targets:", targets.shape, targets.dtype, "| range", float(targets.min()), "to", float(targets.max()))
fig = figures.targets(image, true_cells, targets, outline)

# %% [markdown]
# Every cell, whatever its size, gets a dark centre in the middle map and a dark core with a
# bright rim in the right-hand map; the bright ridges between touching cells are what the
# network must learn to see.

# %% [markdown]
# ## An instance head, trained in the open
#
# The U-Net is notebook 03's, with **three** sigmoid outputs instead of one
# (`ModelConfig(outputs="cells")`). The loss adds two parts: BCE + Dice on the foreground, as in
# notebook 04, and the mean squared error of the two distance maps **inside the annotated cells
# only** — on the background they carry no information.

# %%
cells_preset = presets.get_preset("cells")
print(cells_preset.description)
perfect = targets[None]                       # a batch of one frame
blurred = ndimage.gaussian_filter(targets, sigma=(3, 3, 0))[None]
for name, guess in {"perfect": perfect, "blurred by 3 px": blurred, "all 0.5": np.full_like(perfect, 0.5)}.items():
    print(f"{name:>16}: loss {float(np.mean(train.get_loss('cells_loss')(perfect, guess))):.3f}")

# %%
train_ds, val_ds, steps = train.preset_datasets(train_root, cells_preset)
run = train.open_run(train_root, cells_preset, course.quick_run_dir(train_root, "cells"))
with train.model_scope(run.precision):
    model = build_unet(cells_preset.model, name="unet_cells")
    model.compile(optimizer=keras.optimizers.Adam(train.learning_rate(cells_preset.train, steps)),
                  loss=train.get_loss(cells_preset.train.loss),   # foreground + distance parts
                  metrics=train.make_metrics())                   # pixel metrics of the foreground channel
print(model.output_shape, "— three maps per pixel")

# %% [markdown]
# **This cell trains** (a few minutes on a 2-core CPU; one line per epoch). As in notebook 04,
# a finished run in the work folder is reused, and an interrupted one resumes. On Colab, where
# every notebook gets a fresh machine, it loads instead the model the kit ships
# (`livecell_kit.pretrained`): this very preset, trained on this very sample. So it does wherever
# `LIVECELL_KIT_USE_PRETRAINED=1` was set before Jupyter started (`make test` sets it).

# %%
if kit.use_pretrained and not run.finished:
    model = pretrained.load_pretrained()   # this preset, trained on this sample
else:
    if not run.finished:
        model.fit(train_ds, validation_data=val_ds, epochs=cells_preset.train.epochs, steps_per_epoch=steps,
                  callbacks=train.run_callbacks(run.out_dir, cells_preset.train.early_stopping_patience),
                  verbose=2, shuffle=False)
    model = train.finish_run(run, model).model

# %% [markdown]
# ## The seeded watershed, step by step
#
# The trained network's three maps for the crowded frame:

# %%
output = predict.predict_image(model, image)    # (H, W, 3)
splitting = presets.CELL_SPLITTING              # thresholds chosen on the sample's validation split
print(splitting)
foreground, centre, boundary = (output[..., c] for c in range(3))
fig = figures.targets(image, true_cells, output, None, title="predicted")

# %% [markdown]
# **Step 1 — seeds.** A seed is a small region that surely belongs to one cell only: near its
# centre **and** far from its outline **and** inside the foreground. Requiring both distances
# avoids two mistakes: the centre distance alone can join two narrow neighbours, the boundary
# distance alone can give a bent cell two seeds.
#
# ### Exercise 6 — find the seeds
#
# Write `find_seeds`: return a True/False array, True where all three tests pass
# (`splitting.foreground_threshold`, `splitting.centre_threshold`, `splitting.boundary_threshold`).
# Hint: each test is one comparison of a whole array; `&` combines them.

# %%
### BEGIN SOLUTION
def find_seeds(foreground, centre, boundary, splitting):
    """True where a pixel is inside the foreground, near its cell's centre and far from its outline."""
    return ((foreground >= splitting.foreground_threshold) & (centre < splitting.centre_threshold)
            & (boundary < splitting.boundary_threshold))
### END SOLUTION
exercises.check_seeds(find_seeds, splitting)

# %% [markdown]
# **Step 2 — smooth, then number the seeds.** Predictions can be noisy pixel to pixel; a
# Gaussian blur of `splitting.smoothing_sigma` px evens the two distance maps out before seeding
# (0 here: on the sample's validation frames the trained maps were smooth enough, and blurring
# merged small neighbours). Each connected group of seed pixels then gets its own number.

# %%
smooth_centre = ndimage.gaussian_filter(centre, splitting.smoothing_sigma)
smooth_boundary = ndimage.gaussian_filter(boundary, splitting.smoothing_sigma)
# Until your find_seeds checks out, the kit's own version stands in, so the rest still runs.
seeding = find_seeds if exercises.check_seeds.verdict(find_seeds, splitting) else instances.distance_seeds
seeds = measure.label(seeding(foreground, smooth_centre, smooth_boundary, splitting))
print(f"{seeds.max()} seeds for {len(annotations)} annotated cells")

# %% [markdown]
# **Step 3 — flood.** Think of the boundary map as a landscape: low inside cells, ridges on the
# outlines. Water rising from each seed fills its basin; where two floods meet, on a ridge,
# a border is drawn. Only foreground pixels are flooded.

# %%
flooded = segmentation.watershed(smooth_boundary, seeds, mask=foreground >= splitting.foreground_threshold)
found = instances.relabel(flooded, splitting.min_size)   # drop specks, number the cells 1..n
fig = figures.watershed_steps(image, smooth_boundary, seeds, found)

# %% [markdown]
# A good split has one cyan seed in every dark basin and none on the bright ridges between
# cells; each flooded cell then follows the outline you would draw by eye.

# %% [markdown]
# The package's `instances.split_cells` does these three steps for any model (and for models
# without distance maps, notebook 05's watershed). It also tidies up: foreground that no seed
# reached becomes a cell of its own, and fragments under `min_size` join their neighbours. So
# nearly every cell found here by hand should be found there too:

# %%
labels, scores = instances.split_cells(output, splitting)
same = instances.best_match_ious(found, labels) >= 0.9
print(f"by hand {found.max()} cells, split_cells {labels.max()}; {same.mean():.0%} of the hand-made cells "
      f"are also the package's (IoU >= 0.9); annotated: {len(annotations)}")

# %%
# NBVAL_CHECK_OUTPUT
print("the package agrees with the hand-made split on at least 90 % of the cells:", bool(same.mean() >= 0.9))

# %% [markdown]
# ## Cells against the truth: AP, counts and confluence
#
# `evaluate.evaluate_model` now splits every test frame this way and reports, next to the pixel
# metrics, instance **AP** (notebook 05) and under `cells` what a biologist reads: the **cell
# count** error per frame and the **confluence** error in percentage points.

# %%
results = evaluate.evaluate_model(model, root, split=eval_split, progress=False, threshold_data=train_root)
cells = results["cells"]

# %%
instance = results["instance"]
print(f"instance AP {instance['AP']:.3f}   AP50 {instance['AP50']:.3f}   AP75 {instance['AP75']:.3f}   ({source})")
print(f"cell count: median error {cells['count_median_abs_error_pct']:.1f} %")
print(f"confluence: mean error {cells['confluence_mae_pp']:.1f} points, worst frame {cells['confluence_max_pp']:.1f}")

# %%
# NBVAL_CHECK_OUTPUT
print("instance AP above 0.3:", instance["AP"] > 0.3)
print("cell counts within 25 % (median):", cells["count_median_abs_error_pct"] < 25)
print("confluence within 3 points (mean):", cells["confluence_mae_pp"] < 3)

# %%
fig = figures.counts_and_confluence(cells["per_frame"], title=f"{eval_split} frames ({source})")

# %% [markdown]
# Each dot is a frame. On the diagonal the model counts exactly what was annotated; the grey
# band is ±15 %. Dots below it: cells merged or missed; above: cells split in two or debris
# counted.
#
# ### Experiment — border target instead of distances
#
# Notebook 02's touching-border mask is the other classic way to split cells: predict the
# foreground and a "border" channel, remove the border, label what is left. The preset
# `cells-border` trains the same network that way. Set `compared = "cells-border"` below, run
# the two cells (the first trains, a few minutes), and compare AP, the count error and the
# confluence error with the distance model. Which way splits the sheets better?

# %%
compared = "cells"  # change this: "cells-border"
table = {"cells (distance maps)": results}
if compared != "cells":
    print(presets.get_preset(compared).description)
    other = course.quick_run(train_root, preset=compared, verbose=2).model   # trains it the first time
    table[compared] = evaluate.evaluate_model(other, root, split=eval_split, progress=False, threshold_data=train_root)

# %%
for name, r in table.items():
    print(f"{name:>22}: AP {r['instance']['AP']:.3f}  count error {r['cells']['count_median_abs_error_pct']:.1f} %  "
          f"confluence error {r['cells']['confluence_mae_pp']:.1f} points  ({r['instance_source']})")

# %% [markdown]
# ## Use it on your own frames: counts and confluence per frame, per well, over time
#
# A biologist does not want AP: they want a table with one row per image and curves over time.
# LIVECell's names carry the experiment — `<CellType>_Phase_<Well>_<Location>_<DDdHHhMMm>_<Crop>.tif`,
# e.g. well C7, 2 days 0 h after the start — and `measure_frames` reads them (your own names:
# `pattern=`). It streams the frames through the model and the watershed, and writes `frames.csv`
# (one row per frame), `wells.csv` (per well and time point, the format pandas, R and Prism read)
# and growth curves. In a terminal: `livecell-kit measure --model RUN --out DIR FRAMES...`.

# %%
frame_files = [test_split.image_path(img) for img in test_split.images]
measured = measure_frames(model, frame_files, course.workdir() / "measure-06", progress=False, quiet=True)
print(measured.summary(course.shown_path))
frames_table = list(csv.DictReader(open(measured.frames_csv, encoding="utf-8")))
print(", ".join(frames_table[0]))   # the columns of frames.csv

# %% [markdown]
# Confluence is what the Incucyte reports per image. Here it stands next to the annotated one
# (the `cells` results above hold the truth per frame): on real LIVECell frames, this is how far
# to trust the model's numbers.

# %%
truth = {row["file"]: row for row in cells["per_frame"]}
for row in frames_table[:8]:
    t = truth[Path(row["file"]).name]
    print(f"{Path(row['file']).name:>36}  well {row['well']:>3} {float(row['time_h']):5.0f} h   "
          f"confluence {float(row['confluence_pct']):5.1f} % (annotated {t['confluence_true_pct']:5.1f})   "
          f"cells {row['cells']:>4} (annotated {t['cells_true']})")

# %%
Image(filename=str(measured.figures[0]), width=900)

# %% [markdown]
# One panel per cell type, one line per well. The sample's frames are independent draws (each of
# its wells holds one time point), so here the "curves" are single dots; on a real time series —
# LIVECell imaged each well every 4 h for up to 5 days — they are growth curves. The kit also ships
# a model trained on the sample only, `pretrained.load_pretrained()`, which `livecell-kit measure`
# uses when no `--model` is given; the README says how far its counts can be trusted on real cells.

# %% [markdown]
# ## Summary
#
# * A perfect cell mask is not enough: touching cells meet without a neck, and the watershed of
#   the mask merges them. The network must say where one cell ends.
# * Per-cell **centre** and **boundary distances** are smooth targets a U-Net regresses well; a
#   **seeded watershed** turns them into cells: seeds near centres and far from outlines, flooded
#   over the boundary map inside the foreground.
# * Biologists read **counts** and **confluence** per frame: report them, not only AP or Dice.
# * Numbers on the synthetic sample teach the method; only real frames say how far to trust a count.
#   `python bench/cells.py` measures a model on real LIVECell frames.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB.
