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
# # 05 · Evaluation: how good is the model, really?
#
# The seed project reported **92.19 % test pixel accuracy** (BCE 0.2043). That sounds great —
# until you remember that most pixels are background (exercise 4): a model that finds no cell
# at all already scores high. This notebook puts pixel accuracy next to metrics that only
# count cells — **IoU** (intersection over union) and **Dice** — next to trivial
# **baselines**, per **cell type**, and finally asks the question LIVECell was built for:
# how well are *individual cells* found (instance **AP**)?

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
from livecell_kit import data, evaluate, masks, plot, predict, checks

root = course.data_root()              # the sample, or real LIVECell frames when configured
train_root = course.training_root()   # where notebook 04 trained
run = course.quick_run(train_root)    # the model trained in notebook 04 (trained now if missing)
eval_split = course.evaluation_split(root)

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
# * instance **AP** with LIVECell's COCO protocol.

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
fig = plot.metric_bars(table, metrics=("pixel_accuracy", "iou", "dice"), title=f"{eval_split} split")

# %% [markdown]
# Look at the all-background row: high accuracy, zero IoU. Pixel accuracy alone flatters.
#
# ## Per cell type
#
# Some cell types are much harder than others — small, crowded or low-contrast cells.

# %%
print(evaluate.per_cell_type_table(results).to_markdown())
fig = plot.metric_bars(results["per_cell_type"], metrics=("iou", "dice", "recall"), title="U-Net per cell type")

# %% [markdown]
# ## Choosing the threshold
#
# The network outputs probabilities; a threshold turns them into a mask. 0.5 is a convention,
# not a law: the kit sweeps thresholds on the validation split and keeps the best.

# %%
fig = plot.threshold_sweep(results["threshold_sweep"], chosen=results["threshold"])
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
prediction = predict.predict_image(run.model, image) >= results["threshold"]

# %%
### BEGIN SOLUTION
intersection = (truth.astype(bool) & prediction).sum()
union = (truth.astype(bool) | prediction).sum()
answer = intersection / union
### END SOLUTION
checks.check_iou(answer, truth, prediction)

# %% [markdown]
# ## Look at the errors
#
# Red: pixels called cell that are not (false positives). Blue: cell pixels the model missed
# (false negatives). In a live Jupyter session this is an interactive viewer (pick an image,
# filter by cell type, toggle overlays, change the opacity); in a static rendering it shows one
# image per cell type.

# %%
shown = test_split.images[:24]  # each frame keeps its image, mask and probabilities in memory
test_mask_dir = masks.build_mask_cache(test_split.subset([img["id"] for img in shown]), progress=False)
images = [data.read_image(test_split.image_path(img)) for img in shown]
truths = [masks.load_mask(test_mask_dir, img["file_name"]) for img in shown]
probabilities = [predict.predict_image(run.model, im) for im in images]
viewer = plot.viewer(images, truths, probabilities, names=[img["file_name"] for img in shown],
                     cell_types=[test_split.cell_type(img) for img in shown], threshold=results["threshold"])

# %% [markdown]
# ## From pixels to cells: instance AP
#
# LIVECell is an *instance* benchmark: every cell must be found separately. We split the
# semantic output into cells (scikit-image's watershed on the distance transform), encode
# each as RLE and score them with `pycocotools`' COCOeval using LIVECell's protocol (up to
# 2000 detections per image; small < 324 px, medium 324–961 px, large > 961 px). LIVECell's own anchor-free instance model
# reaches **47.8 mask AP** overall (from 23.9 on SH-SY5Y to 65.9 on SK-BR-3). A semantic
# U-Net merges touching cells, so expect it to do worse on crowded types — and on the sample's
# confluent sheets, where neighbouring cells meet without a gap, the watershed rarely cuts them
# as annotated: AP stays near zero here, as it does on real LIVECell frames for this model.

# %%
# NBVAL_CHECK_OUTPUT
instance = results["instance"]
print(f"AP {instance['AP']:.3f}   AP50 {instance['AP50']:.3f}   AP75 {instance['AP75']:.3f}")
fig = plot.metric_bars(instance["per_cell_type"], metrics=("AP", "AP50", "AP75"), title="instance AP per cell type")

# %% [markdown]
# ## Where the model fails, and what to try
#
# * **Touching cells** merge into one blob: pixel metrics barely notice, instance AP does.
#   A border output (`ModelConfig(outputs="semantic+border")`, notebook 02's border masks)
#   or a distance-map target helps split them.
# * **Halos**: the bright rim around a cell is not cell; models trained briefly often include it.
# * **Thresholds** trade precision for recall; choose them on validation data, as done here.
#
# The seed's 92.19 % pixel accuracy on real LIVECell and the numbers above are not comparable
# one-to-one (synthetic sample, tiny model, minutes of CPU): rerun this notebook with
# `LIVECELL_KIT_DATA_ROOT` set and a model trained with the `seed` preset to compare.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
