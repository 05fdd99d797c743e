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
# at all already scores high. This notebook puts pixel accuracy next to metrics that only
# count cells — **IoU** (intersection over union) and **Dice** — next to trivial
# **baselines**, per **cell type**, and finally asks the question LIVECell was built for:
# how well are *individual cells* found (instance **AP**)?
#
# **After this notebook you can**
#
# * explain why pixel accuracy flatters, and read IoU, Dice, precision and recall instead;
# * compare a model with trivial baselines and per cell type;
# * choose a probability threshold on validation data, and see what it trades (experiment);
# * compute IoU by hand (exercise 5) and say what AP, AP50 and AP75 measure (exercise 5b);
# * browse a model's errors image by image: found, false positive, missed.

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup()
print(kit)

# %%
from livecell_kit import data, evaluate, exercises, figures, masks, predict

root, eval_split, source = kit.root, kit.eval_split, kit.label  # the data scored, its split, its label
train_root = kit.train_root           # where notebook 04 trained
run = course.quick_run(train_root)    # the model trained in notebook 04 (trained now if missing)

# %% [markdown]
# ## Metrics on the test split
#
# `evaluate.evaluate_model` predicts every test image, picks the probability threshold that
# maximises IoU on the **validation** split (never on test), and reports:
#
# * **pixel accuracy** — fraction of pixels right; **BCE** — the training loss;
# * **IoU** = TP / (TP + FP + FN) and **Dice** = 2·TP / (2·TP + FP + FN), for the cell class;
# * **precision** (of the pixels called cell, how many are) and **recall** (of the cell
#   pixels, how many were found);
# * the same for two **baselines**: *all background*, and *Otsu* thresholding of local
#   texture — the standard deviation of grey levels in a 7×7 window, since cells are both darker
#   and brighter than the flat background — with a morphological clean-up;
# * instance **AP** with LIVECell's COCO protocol (explained below, before its numbers).

# %%
# the threshold is chosen on the validation split of the data the model was trained on
results = evaluate.evaluate_model(run.model, root, split=eval_split, progress=False,
                                  threshold_data=train_root)

# %%
# NBVAL_CHECK_OUTPUT
print("keys:", sorted(results))
print("baselines:", sorted(results["baselines"]), "| instance:", sorted(k for k in results["instance"]))
print("U-Net beats both baselines on IoU:",
      all(results["iou"] > results["baselines"][b]["iou"] for b in results["baselines"]))

# %%
# NBVAL_CHECK_OUTPUT
table = {"U-Net (quick)": results, **{f"baseline: {k}": v for k, v in results["baselines"].items()}}
for name, r in table.items():
    print(f"{name:22s} accuracy {r['pixel_accuracy']:.3f}  IoU {r['iou']:.3f}  Dice {r['dice']:.3f}  "
          f"precision {r['precision']:.3f}  recall {r['recall']:.3f}")
fig = figures.metric_bars(table, metrics=("pixel_accuracy", "iou", "dice"), title=f"{eval_split} split ({source})")

# %% [markdown]
# Look at the all-background row: high accuracy, zero IoU. Pixel accuracy alone flatters.
#
# ## Per cell type
#
# Some cell types are much harder than others — small, crowded or low-contrast cells.

# %%
from IPython.display import display

display(evaluate.per_cell_type_table(results))  # a MetricsTable: Jupyter renders it as a table
fig = figures.metric_bars(results["per_cell_type"], metrics=("iou", "dice", "recall"),
                       title=f"U-Net per cell type ({source})")

# %% [markdown]
# ## Choosing the threshold
#
# The network outputs probabilities; a threshold turns them into a mask. 0.5 is a convention,
# not a law: the kit sweeps thresholds on the validation split and keeps the best IoU.
# Left: the trade-off — a higher threshold calls fewer pixels cell, so those it calls are
# more often right (precision rises) while more cells are missed (recall falls). Right: the
# overall scores, y axis zoomed, since near the best they change only in the second decimal.

# %%
fig = figures.threshold_sweep(results["threshold_sweep"], chosen=results["threshold"],
                           title=f"threshold sweep on the validation split ({course.data_label(train_root)})")
print(f"chosen threshold: {results['threshold']:.2f} ({results['threshold_source']})")

# %% [markdown]
# ### Exercise 5 — IoU by hand
#
# For the first test image, `truth` is the annotated mask and `prediction` the thresholded
# output (both 0/1 arrays). Compute the IoU of the cell class.

# %%
test_split = course.preset_split(root, eval_split)  # the images evaluate_model scored
first = test_split.images[0]
test_mask_dir = masks.build_mask_cache(test_split.subset([first["id"]]), kind="semantic", progress=False)
image = data.read_image(test_split.image_path(first))
truth = masks.load_mask(test_mask_dir, first["file_name"])
probability = predict.predict_image(run.model, image)
prediction = probability >= results["threshold"]

# %%
### BEGIN SOLUTION
intersection = (truth.astype(bool) & prediction).sum()
union = (truth.astype(bool) | prediction).sum()
answer = intersection / union
### END SOLUTION
exercises.check_iou(answer, truth, prediction)

# %% [markdown]
# ## Look at the errors
#
# Green: cell pixels the model found (true positives). Red: pixels called cell that are not
# (false positives). Blue: cell pixels the model missed (false negatives). In a live Jupyter
# session this is an interactive viewer — pick a cell type or an image, move the threshold,
# switch colours off, change the opacity; every change redraws — in a static rendering it
# shows the first image of each cell type.

# %%
shown = test_split.images[:24]  # each frame keeps its image, mask and probabilities in memory
test_mask_dir = masks.build_mask_cache(test_split.subset([img["id"] for img in shown]), progress=False)
images = [data.read_image(test_split.image_path(img)) for img in shown]
truths = [masks.load_mask(test_mask_dir, img["file_name"]) for img in shown]
probabilities = [predict.predict_image(run.model, im) for im in images]
viewer = figures.viewer(images, truths, probabilities, names=[img["file_name"] for img in shown],
                     cell_types=[test_split.cell_type(img) for img in shown], threshold=results["threshold"],
                     source=source)

# %% [markdown]
# ### Experiment — move the threshold and compare
#
# Set `threshold` below to 0.2, then to 0.9, and run the cell. Which colour grows, which
# shrinks, and what happens to IoU? Compare with the sweep above. (In the live viewer the
# threshold slider does the same.)

# %%
threshold = 0.2  # change this: try 0.2, 0.5, 0.9
for t in sorted({threshold, results["threshold"]}):
    scores = evaluate.pixel_metrics(probability, truth, t)
    print(f"threshold {t:.2f}: precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  IoU {scores['iou']:.3f}")
fig = figures.viewer([image], [truth], [probability], [first["file_name"]],
                  [test_split.cell_type(first)], threshold=threshold, static=True, source=source)

# %% [markdown]
# ## From pixels to cells: instance AP
#
# LIVECell is an *instance* benchmark: every cell must be found separately. We split the
# semantic output into cells (scikit-image's watershed on the distance transform), encode
# each as RLE and score them with `pycocotools`' COCOeval using LIVECell's protocol (up to
# 2000 detections per image; small < 324 px, medium 324–961 px, large > 961 px).
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

# %%
from livecell_kit import instances

found_cells = instances.semantic_to_instances(probability, results["threshold"])
annotated_cells = masks.instance_labels(test_split.annotations_for(first["id"]), *image.shape)
best_ious = instances.best_match_ious(found_cells, annotated_cells)
print(f"{len(best_ious)} predicted cells, {annotated_cells.max()} annotated cells")

# %%
### BEGIN SOLUTION
hits = {q: float((best_ious >= q).mean()) for q in (0.5, 0.75)}
### END SOLUTION
exercises.check_hit_fractions(hits, best_ious)

# %% [markdown]
# LIVECell's own anchor-free instance model reaches **47.8 mask AP** on LIVECell's real test
# images (from 23.9 on SH-SY5Y to 65.9 on SK-BR-3). Papers write AP × 100: 47.8 means 0.478
# on the 0–1 scale printed here. A semantic U-Net merges touching cells, so expect it to do
# worse on crowded types. Numbers measured on the **synthetic sample do not transfer** to
# real data in either direction: synthetic cells have cleaner edges and simpler shapes (a
# small U-Net can look good on its sparse frames), yet the sample's confluent sheets, where
# neighbours meet without a gap, are rarely cut as annotated by the watershed.

# %%
# NBVAL_CHECK_OUTPUT
instance = results["instance"]
print(f"AP {instance['AP']:.3f}   AP50 {instance['AP50']:.3f}   AP75 {instance['AP75']:.3f}   "
      f"(× 100: AP {100 * instance['AP']:.1f}, on {source} {eval_split} images; LIVECell's model: 47.8 on real test images)")
fig = figures.metric_bars(instance["per_cell_type"], metrics=("AP", "AP50", "AP75"),
                       title=f"instance AP per cell type ({source})")

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
# * Scores on the synthetic sample teach the method; only real LIVECell frames say how good a
#   model is on LIVECell.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
