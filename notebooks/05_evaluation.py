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
# # 05 · Evaluation: how good is the model, really?
#
# The seed project reported **92.19 % test pixel accuracy** (BCE 0.2043). That sounds great —
# until you remember that most pixels are background (exercise 4): a model that finds no cell
# at all already scores high. This notebook builds the evaluation itself, step by step: it
# counts pixels right and wrong, turns the counts into **IoU** (intersection over union) and
# **Dice**, chooses the probability threshold on validation images, and scores individual
# cells with COCO's instance **AP**, the number LIVECell was built for. Only then does it call
# the kit's `evaluate.evaluate_model`, checks that the kit gets the same numbers, and uses
# it for more: trivial **baselines** and scores per **cell type**.
#
# **After this notebook you can**
#
# * count a segmentation's true/false positives and negatives and compute IoU and Dice from
#   them (exercise 5), and explain why pixel accuracy flatters;
# * choose a probability threshold on validation data, and see what it trades (experiment);
# * score individual cells with pycocotools' COCOeval and say what AP, AP50 and AP75 measure
#   (exercise 5b);
# * compare a model with trivial baselines and per cell type, and browse its errors image by
#   image: found, false positive, missed.

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %%
import itertools

import numpy as np
from IPython.display import display
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from livecell_kit import data, evaluate, exercises, figures, instances, masks, predict
from livecell_kit.evaluate import cocoeval

# %%
root, eval_split, source = kit.root, kit.eval_split, kit.label  # the data scored, its split, its label
train_root = kit.train_root           # where notebook 04 trained
run = course.quick_run(train_root)    # the model trained in notebook 04 (trained now if missing)

# %% [markdown]
# ## Step 1 · One frame: count the pixels
#
# Evaluating means comparing, frame by frame, what the model predicts with what was annotated.
# `frames` reads each image of a split, builds its truth mask from the annotations (notebook
# 02) and predicts it (notebook 04's `predict_image`), one frame at a time, so memory holds
# one frame, never the split. It reads them as `evaluate_model` will, on the same images:
# every image of the split.

# %%
def frames(split):
    """Each image of ``split`` in turn: (record, image (H, W) uint8, truth (H, W) bool, cell probability (H, W))."""
    for record in split.images:
        image = data.read_image(split.image_path(record))
        truth = masks.semantic_mask(split.annotations_for(record["id"]), *image.shape, split.index.source) > 0
        yield record, image, truth, predict.predict_image(run.model, image)  # the quick model: one channel


test_split = data.load_subset(root, eval_split)  # every image of the split evaluated
print(f"{len(test_split.images)} {eval_split} images of the {source}")

# %% [markdown]
# A threshold turns the probabilities into a mask: a pixel is called *cell* when its
# probability is at least the threshold (0.5 for now). Against the truth every pixel is then
# one of four: a **true positive** (TP, a cell pixel called cell, green below), a **false
# positive** (FP, background called cell, red), a **false negative** (FN, a cell pixel
# missed, blue) or a **true negative** (TN, background left alone, uncoloured).

# %%
def confusion_counts(truth, prediction):
    """Pixel counts [TP, FP, FN, TN] of the cell class; truth, prediction: (H, W) bool."""
    return np.array([np.count_nonzero(truth & prediction), np.count_nonzero(~truth & prediction),
                     np.count_nonzero(truth & ~prediction), np.count_nonzero(~truth & ~prediction)])


# %%
first, image, truth, probability = next(frames(test_split))
counts = confusion_counts(truth, probability >= 0.5)
print(dict(zip(("TP", "FP", "FN", "TN"), counts.tolist())), f"of {truth.size} pixels")
fig = figures.viewer([image], [truth], [probability], [first["file_name"]], [test_split.cell_type(first)],
                  threshold=0.5, static=True, source=source)

# %% [markdown]
# **Pixel accuracy** is (TP + TN) / all pixels: the TN term, the background, dominates it.
# Two scores look at the cell class only. With T the pixels annotated as cell and P those
# predicted as cell:
#
# * **IoU** = |T ∩ P| / |T ∪ P|: the overlap over everything either mask calls cell;
# * **Dice** = 2·|T ∩ P| / (|T| + |P|): the overlap over the two masks' mean size.
#
# ### Exercise 5 — IoU and Dice from the counts
#
# Write `iou_dice(tp, fp, fn, tn)`: return the IoU and the Dice of the cell class, in that
# order. A frame without cells where the model predicts none has TP = FP = FN = 0: nothing
# missed, nothing invented, so return 1.0 for both there (the kit's convention).
# Hint: |T ∩ P| is TP. Which counts make up T, which make up P, and which make up T ∪ P?

# %%
### BEGIN SOLUTION
def iou_dice(tp, fp, fn, tn):
    """IoU and Dice of the cell class from pixel counts; 1.0 and 1.0 when there is no cell and none is predicted."""
    if tp + fp + fn == 0:
        return 1.0, 1.0
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)
### END SOLUTION
exercises.check_iou_dice(iou_dice)

# %% [markdown]
# The kit's `evaluate.confusion_metrics(tp, fp, fn, tn)` computes the same two scores with the
# same rule for empty frames, and precision (of the pixels called cell, the share that are)
# and recall (of the cell pixels, the share found) besides. From here on this notebook uses
# it, so the cells below run whether or not your exercise is solved yet.

# %%
scores = evaluate.confusion_metrics(*counts)
print("  ".join(f"{k} {scores[k]:.3f}" for k in ("pixel_accuracy", "iou", "dice", "precision", "recall")))

# %% [markdown]
# ## Step 2 · Choose the threshold on validation images
#
# 0.5 is a convention, not a law. We try every threshold from 0.05 to 0.95 in steps of 0.01
# on the **validation** split of the data the model was trained on, summing each threshold's
# counts over all validation frames, and keep the threshold with the best IoU. Never choose
# it on the test images: a threshold tuned on the images it is scored on flatters the model
# (data without a test split is scored on its val split: when the model was trained on that
# same data, the threshold stays 0.5, as in `evaluate_model`).

# %%
val_split = data.load_subset(train_root, "val")   # every validation image
thresholds = np.arange(5, 96) / 100                # 0.05, 0.06, ..., 0.95
val_counts = np.zeros((len(thresholds), 4), np.int64)  # one row [TP, FP, FN, TN] per threshold
for _, _, mask, prob in frames(val_split):
    val_counts += [confusion_counts(mask, prob >= t) for t in thresholds]
rows = [evaluate.confusion_metrics(*c) for c in val_counts]
sweep = {"threshold": thresholds, **{k: [r[k] for r in rows] for k in ("iou", "dice", "precision", "recall")}}

# %% [markdown]
# Left: the trade-off — a higher threshold calls fewer pixels cell, so those it calls are more
# often right (precision rises) while more cells are missed (recall falls). Right: the overall
# scores, y axis zoomed, since near the best they change only in the second decimal.

# %%
ious = np.array(sweep["iou"])
best = thresholds[ious >= ious.max() - 1e-12]        # all thresholds with the best IoU
chosen = float(best[np.argmin(np.abs(best - 0.5))])  # of those, the one nearest 0.5
if eval_split == "val" and train_root == root:       # no test split: val is scored, so never tuned on
    chosen = 0.5
print(f"chosen threshold: {chosen:.2f} (IoU {ious.max():.3f} on {len(val_split.images)} validation images)")
fig = figures.threshold_sweep(sweep, chosen=chosen,
                           title=f"threshold sweep on the validation split ({course.data_label(train_root)})")

# %% [markdown]
# ## Step 3 · From pixels to cells: instance AP
#
# LIVECell is an *instance* benchmark: every cell must be found separately. Our U-Net only
# says which pixels are cell, so the kit's `instances.split_cells` cuts its mask into cells:
# the distance of every cell pixel to the background peaks near each cell's centre, and a
# **watershed** floods the mask from those peaks, drawing a border where two floods meet
# (notebook 06 teaches a model to find those borders itself).
#
# **What AP means.** A predicted cell counts as *found* (a true positive) when its IoU with an
# annotated cell reaches a threshold: **AP50** uses IoU ≥ 0.5 (roughly right), **AP75** IoU ≥
# 0.75 (outline nearly right). Ranking the predicted cells by confidence and walking down the
# list traces precision against recall; the **average precision** is the area under that
# curve, 0 to 1. **AP** — COCO's headline number — averages AP over ten IoU thresholds,
# 0.50, 0.55, …, 0.95, so it rewards accurate outlines. The figure shows one annotated cell
# and three predictions shifted by a few pixels:

# %%
fig = figures.iou_hits()

# %% [markdown]
# ### Exercise 5b — found at IoU 0.5, found at IoU 0.75
#
# `best_ious` holds, for every cell the model found in the first test image, its IoU with the
# annotated cell it overlaps most. What share of the predicted cells count as found at IoU ≥
# 0.5, and at IoU ≥ 0.75? Answer as a dict `{0.5: share, 0.75: share}`.
# Hint: `best_ious >= 0.5` is True for each cell found; the mean of True/False is a share.

# %%
found_cells, _ = instances.split_cells(probability, threshold=chosen)  # labels 1..n, 0 = background
annotated_cells = masks.instance_labels(test_split.annotations_for(first["id"]), *image.shape)
best_ious = instances.best_match_ious(found_cells, annotated_cells)
print(f"{len(best_ious)} predicted cells, {annotated_cells.max()} annotated cells")

# %%
### BEGIN SOLUTION
hits = {q: float((best_ious >= q).mean()) for q in (0.5, 0.75)}
### END SOLUTION
exercises.check_hit_fractions(hits, best_ious)

# %% [markdown]
# ## Step 4 · Score the whole test split
#
# One pass over the test frames, at the chosen threshold: each frame's counts are added up
# (so the metrics are **pooled over all pixels**: a big, crowded frame weighs more than a
# sparse one, as if all frames were one mosaic), and each frame's cells are split out and
# written as COCO *results*: one run-length-encoded mask (notebook 02) and a confidence score
# (the cell's mean probability) per cell.

# %%
test_counts, coco_results = np.zeros(4, np.int64), []
for record, _, mask, prob in frames(test_split):
    test_counts += confusion_counts(mask, prob >= chosen)
    cells, cell_scores = instances.split_cells(prob, threshold=chosen)
    coco_results += instances.instances_to_coco_results(cells, record["id"], cell_scores)
pixel_scores = evaluate.confusion_metrics(*test_counts)
print("  ".join(f"{k} {pixel_scores[k]:.3f}" for k in ("pixel_accuracy", "iou", "dice", "precision", "recall")))
print(f"{len(coco_results)} cells found in {len(test_split.images)} images")

# %% [markdown]
# `pycocotools`' `COCOeval` matches the found cells to the annotated ones (segmentation IoU)
# with LIVECell's protocol: up to 2000 detections per image, and areas small < 324 px ≤
# medium ≤ 961 px < large. Its `eval["precision"]` holds the precision-recall curves; AP is
# their mean, with -1 marking "nothing to find" (left out). pycocotools matches cells in
# Python, about half a minute here; `evaluate_model` uses the C++ `faster-coco-eval` instead
# when it is installed (same numbers).

# %%
coco_truth = COCO()                                # the annotated cells of the test images
coco_truth.dataset = test_split.coco_dataset()
coco_truth.createIndex()
evaluation = COCOeval(coco_truth, coco_truth.loadRes(coco_results), iouType="segm")
evaluation.params.maxDets = list(cocoeval.LIVECELL_MAX_DETS)  # [100, 500, 2000]
evaluation.params.areaRng = [list(r) for r in cocoeval.LIVECELL_AREA_RNG]  # all, small, medium, large
evaluation.evaluate()
evaluation.accumulate()

# %%
precision = evaluation.eval["precision"]  # [10 IoU thresholds, 101 recall levels, class, area range, max detections]
curves = {"AP": precision[:, :, :, 0, -1],  # every IoU threshold, all areas, up to 2000 cells
          "AP50": precision[0, :, :, 0, -1], "AP75": precision[5, :, :, 0, -1]}  # IoU 0.50 and 0.75
ap = {k: float(c[c > -1].mean()) for k, c in curves.items()}
print("   ".join(f"{k} {v:.3f}" for k, v in ap.items()), f"(IoU thresholds: {evaluation.params.iouThrs[[0, 5]]})")

# %% [markdown]
# LIVECell's own anchor-free instance model reaches **47.8 mask AP** on LIVECell's real test
# images (from 23.9 on SH-SY5Y to 65.9 on SK-BR-3). Papers write AP × 100: 47.8 means 0.478
# on the 0–1 scale printed here. A semantic U-Net merges touching cells, so expect it to do
# worse on crowded types. Numbers measured on the **synthetic sample do not transfer** to
# real data in either direction: synthetic cells have cleaner edges and simpler shapes (a
# small U-Net can look good on its sparse frames), yet the sample's confluent sheets, where
# neighbours meet without a gap, are rarely cut as annotated by the watershed.
#
# ## Step 5 · The kit does the same, and more
#
# `evaluate.evaluate_model` runs all of the above in one call — on the same images, with the
# threshold chosen the same way — and adds the BCE, two **baselines** and scores per cell
# type. First we check that it agrees with what this notebook computed.

# %%
results = evaluate.evaluate_model(run.model, root, split=eval_split, progress=False,
                                  threshold_data=train_root)  # the threshold: chosen on train_root's val split

# %%
# NBVAL_CHECK_OUTPUT
assert results["n_images"] == len(test_split.images) and np.isclose(results["threshold"], chosen)
assert all(np.isclose(results[k], pixel_scores[k]) for k in ("pixel_accuracy", "iou", "dice", "precision", "recall"))
assert all(np.isclose(results["instance"][k], ap[k]) for k in ("AP", "AP50", "AP75"))
print("evaluate_model agrees with this notebook: threshold, pixel metrics and AP")

# %% [markdown]
# The baselines show what a model must beat: *all background* predicts no cell anywhere;
# *Otsu* is classical image processing — Otsu's threshold on local texture (the standard
# deviation of grey levels in a 7×7 window, since cells are both darker and brighter than the
# flat background) with a morphological clean-up.

# %%
table = {"U-Net (quick)": results, **{f"baseline: {k}": v for k, v in results["baselines"].items()}}
for name, r in table.items():
    print(f"{name:22s} accuracy {r['pixel_accuracy']:.3f}  IoU {r['iou']:.3f}  Dice {r['dice']:.3f}  "
          f"precision {r['precision']:.3f}  recall {r['recall']:.3f}")
print(f"(U-Net's threshold: {results['threshold']:.2f}, chosen on the validation split)")
fig = figures.metric_bars(table, metrics=("pixel_accuracy", "iou", "dice"), title=f"{eval_split} split ({source})")

# %%
# NBVAL_CHECK_OUTPUT
print("the U-Net beats every baseline on IoU and Dice:",
      all(results[k] > b[k] for b in results["baselines"].values() for k in ("iou", "dice")))

# %% [markdown]
# Look at the all-background row: high accuracy, zero IoU. Pixel accuracy alone flatters.
#
# ## Per cell type
#
# Some cell types are much harder than others — small, crowded or low-contrast cells.

# %%
display(evaluate.per_cell_type_table(results))  # a MetricsTable: Jupyter renders it as a table
fig = figures.metric_bars(results["per_cell_type"], metrics=("iou", "dice", "recall"),
                       title=f"U-Net per cell type ({source})")

# %%
instance = results["instance"]
print(f"AP {instance['AP']:.3f}   AP50 {instance['AP50']:.3f}   AP75 {instance['AP75']:.3f}   "
      f"(× 100: AP {100 * instance['AP']:.1f}, on {source} {eval_split} images; LIVECell's model: 47.8 on real test images)")
fig = figures.metric_bars(instance["per_cell_type"], metrics=("AP", "AP50", "AP75"),
                       title=f"instance AP per cell type ({source})")

# %% [markdown]
# ## Look at the errors
#
# Green: cell pixels the model found (true positives). Red: pixels called cell that are not
# (false positives). Blue: cell pixels the model missed (false negatives). In a live Jupyter
# session this is an interactive viewer — pick a cell type or an image, move the threshold,
# switch colours off, change the opacity; every change redraws — in a static rendering it
# shows the first image of each cell type. The viewer lives in the running kernel: after
# reopening the notebook, run its cell again.

# %%
records, images, truths, probabilities = zip(*itertools.islice(frames(test_split), 24))  # 24 frames in memory at most
viewer = figures.viewer(images, truths, probabilities, names=[r["file_name"] for r in records],
                     cell_types=[test_split.cell_type(r) for r in records], threshold=chosen, source=source)

# %% [markdown]
# ### Experiment — move the threshold and compare
#
# Set `threshold` below to 0.2, then to 0.9, and run the cell. Which colour grows, which
# shrinks, and what happens to IoU? Compare with the sweep above. (In the live viewer the
# threshold slider does the same.)

# %%
threshold = 0.2  # change this: try 0.2, 0.5, 0.9
for t in sorted({threshold, chosen}):
    scores = evaluate.confusion_metrics(*confusion_counts(truth, probability >= t))
    print(f"threshold {t:.2f}: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  IoU {scores['iou']:.3f}")
fig = figures.viewer([image], [truth], [probability], [first["file_name"]],
                  [test_split.cell_type(first)], threshold=threshold, static=True, source=source)

# %% [markdown]
# ## Where the model fails, and what to try
#
# * **Touching cells** merge into one blob: pixel metrics barely notice, instance AP does.
#   **Notebook 06** teaches the U-Net where one cell ends and the next begins (per-cell
#   distance maps and a seeded watershed) and measures cell counts and confluence.
# * **Halos**: the bright rim around a cell is not cell; models trained briefly often include it.
# * **Thresholds** trade precision for recall; choose them on validation data, as done here.
#
# The seed's 92.19 % pixel accuracy on real LIVECell and the numbers above are not comparable
# one-to-one (synthetic sample, tiny model, minutes of CPU): rerun this notebook with
# `LIVECELL_KIT_DATA_ROOT` set and a model trained with the `seed` preset to compare.
#
# ## Summary
#
# * **Pixel accuracy flatters** when most pixels are background; IoU and Dice count only
#   cells, precision and recall say which way a model errs.
# * A model is only as good as its margin over **baselines** and its **worst cell type**.
# * The **threshold** trades precision for recall; choose it on validation data, never on test.
# * **AP50 / AP75 / AP** score individual cells: a cell is found when its IoU with an annotated
#   cell reaches 0.5 / 0.75 / each of 0.50…0.95. Touching cells that merge cost AP, not IoU.
# * The notebook's own counts, sweep and COCOeval give `evaluate_model`'s numbers: the kit
#   runs the same steps, streamed, on any split.
# * Scores on the synthetic sample teach the method; only real LIVECell frames say how good a
#   model is on LIVECell.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
