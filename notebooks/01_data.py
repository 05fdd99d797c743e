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
# # 01 · LIVECell: the data
#
# **LIVECell** (Edlund et al., *Nature Methods* 2021) is a large, expert-annotated set of
# label-free **phase-contrast** images of live cells: 5,239 images of 520×704 pixels, eight
# cell lines and about 1.6 million outlined cells. Phase contrast needs no stain, so cells
# can be followed for days — but they are hard to see: a flat grey background, dark cell
# bodies with bright "halos" around them, and many cells touching each other.
#
# In this course we teach a **U-Net** to answer, for every pixel, *cell or not cell?*
# (semantic segmentation). This notebook looks at the data: the files, the annotation
# format, the eight cell types and the subset the *seed project* — the student project this
# kit grew from — trained on.
#
# **In this notebook you will**
#
# * find your way around LIVECell's folders and its COCO annotation files;
# * read how one cell is described (a polygon, its area and bounding box), and write the
#   function that reads an image's outlines so you can draw them (exercise 1);
# * compare the eight cell types: how crowded their images are and how large their cells;
# * compute a per-type statistic yourself (exercise 1b) and see why the choice of a training
#   subset matters (experiment).
#
# *Licence:* LIVECell's images and annotations are CC BY-NC 4.0 (non-commercial, cite the paper).

# %%
# Colab only (elsewhere this line does nothing): install the kit, keeping Colab's own packages.
# !test -e /content && pip list --format=freeze > /tmp/colab-packages.txt && pip install -q -c /tmp/colab-packages.txt "livecell-kit @ git+https://github.com/livecell-kit/livecell-kit"
from livecell_kit import course

kit = course.setup(tensorflow=False)  # no model here: TensorFlow (~0.5 GB) stays unloaded
print(kit)

# %% [markdown]
# ## The first cell
#
# Every notebook of the course opens with this same cell. Its shell line (`!`) acts only on
# **Colab**, where each notebook starts on a fresh machine without the kit: it installs the kit
# and holds every package Colab already has at its version, so Colab's own TensorFlow, numpy
# and widgets stay as they are. `course.setup()` then prepares the notebook and returns `kit`,
# which says what the notebook works on — the one line above prints it:
#
# * `kit.root`: the data's folder, and `kit.label`: **"synthetic sample"** or **"real LIVECell"**
#   (every figure's title says which, so the sample is never taken for microscopy);
# * `kit.split`: the split we explore (`train`); `kit.train_root` and `kit.preset`: where and
#   with which settings notebook 04 trains; `kit.eval_split` and `kit.run_dir`: what 05 and 06
#   score and the run they reload.
#
# `setup()` also warns when notebooks you opened earlier still hold memory: on Binder all your
# notebooks share 2 GB, so shut down the ones you are done with.
#
# ## Where the data comes from
#
# By default the notebooks use the kit's **sample**: a small synthetic data set generated on
# your machine in seconds, in exactly LIVECell's layout and JSON format, so the course runs
# offline on a laptop. To use the **real LIVECell**, download it once
# (`livecell-kit download --out ~/livecell`) and set the environment variable
# `LIVECELL_KIT_DATA_ROOT=~/livecell` before starting Jupyter: every notebook then reads it.
#
# **One word, three meanings: "seed".** You will meet it three times in this course.
# (1) The **seed project**: the student project this kit grew from; the `seed` preset repeats
# its settings. (2) A **random seed**: the number that makes a "random" draw repeatable — same
# seed, same draw (`seed=0` below). (3) The sample's **generation seed**: the random seed the
# synthetic sample was drawn with, hence its folder name `sample-seed0`.

# %%
import matplotlib.pyplot as plt
import numpy as np

from livecell_kit import data, exercises, figures

root = kit.root  # the sample, or real LIVECell when configured
splits = {name: data.load_split(root, name) for name in data.available_splits(root)}

# %% [markdown]
# **The sample is synthetic.** Its frames are drawn by the kit's code from random numbers —
# cell shapes, halos, texture and noise modelled on real LIVECell frames, but not photographs
# of cells (LIVECell's licence does not let the kit ship its images). It is a stand-in for
# learning the steps; notebook 05 shows how a model trained on it does on real frames. With
# real LIVECell configured, the next cell shows a real frame beside a synthetic one of the same type.

# %%
if course.using_real_data():
    real = next(iter(splits.values()))
    synthetic = data.load_split(course.sample_root(), "train")
    cell_type = real.cell_type(real.images[0])
    twin = next(img for img in synthetic.images if synthetic.cell_type(img) == cell_type)
    fig = figures.show_images([data.read_image(real.image_path(real.images[0])), data.read_image(synthetic.image_path(twin))],
                           titles=[f"real LIVECell ({cell_type})", f"synthetic sample ({cell_type})"], ncols=2, size=5)
else:
    print(f"Data: the kit's SYNTHETIC sample in {root.name}/ (set LIVECELL_KIT_DATA_ROOT for real LIVECell)")

# %%
# NBVAL_CHECK_OUTPUT
for name, split in splits.items():
    n_cells = int(split.cell_counts().sum())
    print(f"{name:5s}: {len(split.images):4d} images, {n_cells:6d} annotated cells")

# %% [markdown]
# The folder looks like LIVECell's own `images.zip`: one flat image folder per split (train and
# val share one), one COCO JSON per split. (LIVECell's other archive, `images_per_celltype.zip`,
# adds a `<CellType>/` sub-folder; the kit reads both.)

# %%
# NBVAL_CHECK_OUTPUT
for path in sorted(root.glob("*/*"))[:6]:
    print(path.relative_to(root))
print(data.split_image_dir(root, "test").relative_to(root))
print(data.annotation_path(root, "val").relative_to(root))

# %% [markdown]
# ## The annotation format
#
# Annotations follow Microsoft's **COCO** format: a list of `images`, a list of `categories`
# (here just one, "cell") and the `annotations`, one per cell. Each cell is a **polygon**,
# a flat list of pixel coordinates `[x0, y0, x1, y1, …]` (x = column, y = row), with its
# `area` in pixels and its bounding box `bbox = [x, y, width, height]`.
#
# The official files store `annotations` as a list, as COCO does; some re-uploads (the Kaggle
# copies) store a *dictionary keyed by id*, on which `pycocotools.coco.COCO` fails with "string
# indices must be integers". The kit reads both forms.
#
# LIVECell's training JSON is 525 MB: `json.load` would turn it into 56 million Python numbers
# (over 4 GB of memory). So the kit reads each file **once**, streaming, into a compact
# *index* in the work folder (`data.open_index`), and serves the cells of each image from it.
# While reading, it also noted the file's structure, shown here without reading the JSON again.

# %%
# NBVAL_CHECK_OUTPUT
explored = course.explored_split(root)
train = splits[explored]
structure = train.index.summary
print("top-level keys:", structure["top_level_keys"])
print("annotations stored as a", structure["annotations_form"])
print("records:", {k: structure["counts"][k] for k in ("images", "annotations", "categories")})
first_cell = structure["first_annotation"]
print("keys of one cell:", sorted(first_cell))
print("polygon points:", len(first_cell["segmentation"][0]) // 2, "| area:", first_cell["area"], "px")

# %% [markdown]
# ## Eight cell types
#
# LIVECell's cell lines differ a lot in size and shape: small round microglia (BV2),
# neuroblastoma cells with neurites (SH-SY5Y), large flat cells (Huh7, A172), spindles
# (SK-OV-3) and cells that grow in tight clusters (MCF7, BT-474, SK-BR-3).
# The file name starts with the cell type: `A172_Phase_C7_1_00d00h00m_1.tif`.

# %%
fig = figures.gallery(train, per_type=1, suptitle=f"{course.data_label()}: one image per cell type")

# %% [markdown]
# ### Exercise 1 — one image's outlines
#
# To draw a frame's cells we need their outlines as points. Complete `outlines(split, image_id)`:
# it returns a list with one array of shape (N, 2) per polygon — one row (x, y) per corner — for
# every cell of image `image_id`, in the order `split.annotations_for(image_id)` lists them.
# A cell's `segmentation` is a *list* of polygons (one per cell in LIVECell, but COCO allows
# several), each polygon the flat list `[x0, y0, x1, y1, …]`. The checker tries your function
# on other images of `train` and on a small made-up split.
#
# *Hint:* loop over the annotations and over each one's polygons; `np.reshape(polygon, (-1, 2))`
# turns a flat list into rows of (x, y).

# %%
### BEGIN SOLUTION
def outlines(split, image_id):
    """Every cell polygon of image ``image_id``: a list of (N, 2) arrays of x, y in pixels."""
    polygons = []
    for annotation in split.annotations_for(image_id):
        for flat in annotation["segmentation"]:  # a list of polygons
            polygons.append(np.reshape(flat, (-1, 2)))
    return polygons
### END SOLUTION
exercises.check_outlines(outlines, train)

# %% [markdown]
# Now draw them over the first image. Until your function is right, the cell uses the kit's own
# `data.cell_outlines`, which does the same.

# %%
image_record = train.images[0]
image = data.read_image(train.image_path(image_record))
yours = exercises.check_outlines.verdict(outlines, train).ok
drawn = (outlines if yours else data.cell_outlines)(train, image_record["id"])
fig, ax = plt.subplots(figsize=(9, 6.6))
ax.imshow(image, cmap="gray")
for xy in drawn:  # a closed Polygon joins the last corner back to the first
    ax.add_patch(plt.Polygon(xy, closed=True, fill=False, edgecolor=figures.COLOURS["truth"], linewidth=1))
ax.set(xlabel="x (column, px)", ylabel="y (row, px)",
       title=f"{image_record['file_name']}: {len(drawn)} outlines, {'yours' if yours else 'the kit’s'} "
             f"({course.data_label()})");

# %%
# NBVAL_CHECK_OUTPUT
print(image.dtype, image.shape, "grey levels", image.min(), "to", image.max())

# %% [markdown]
# ## How crowded, how large?
#
# The number of cells per image (confluence) and the cell areas vary by cell type. The dotted
# lines mark LIVECell's size classes used for instance evaluation (notebook 05): small
# < 324 px, medium 324–961 px, large > 961 px. The area axis is logarithmic: each step of the
# grid is ten times larger.

# %%
fig = figures.annotation_stats(train, suptitle=f"{course.data_label()}: {explored} split")

# %% [markdown]
# ### Exercise 1b — cells per image
#
# Replace the `...` in the next cell with code that builds a dictionary `answer`: one key per
# cell type that occurs in `train` (the name `train.cell_type(image)` returns, e.g. `"A172"`),
# and as its value the **mean number of annotated cells per image** of that type — the total
# number of cells over that type's images divided by how many images it has.
# You need `train.images` (a list of image records), `train.cell_type(image)` and
# `len(train.annotations_for(image["id"]))` (the cells of one image).
#
# *Hint:* collect the counts in a dict of lists, `{cell type: [cells of each image]}`, then
# average each list.

# %%
### BEGIN SOLUTION
cells_per_image = {}
for image_record in train.images:
    cell_type = train.cell_type(image_record)
    cells_per_image.setdefault(cell_type, []).append(len(train.annotations_for(image_record["id"])))
answer = {cell_type: sum(counts) / len(counts) for cell_type, counts in cells_per_image.items()}
### END SOLUTION
exercises.check_cells_per_type(answer, train)

# %% [markdown]
# ## LIVECell's quirks
#
# Real data sets have flaws, and LIVECell documents some of its own. A few files are listed
# twice under different ids (65 in the train JSON; some test images were annotated twice):
# the kit keeps the **first** record of each file. Some images appear in both train and val:
# the kit drops them from train, so the model is never validated on an image it trained on.
# And a few images have almost no outlines although they are full of cells — training on
# them teaches the network that cells are background. The kit flags images with fewer
# than 10 outlined cells; look at them before you trust them.

# %%
for name, split in splits.items():
    flagged = data.nearly_unannotated(split)
    left_out = split.val_overlap_dropped  # set for train only
    print(f"{name:5s}: {len(split.duplicate_records)} duplicate records dropped, "
          + (f"{left_out} val images left out, " if left_out is not None else "")
          + f"{len(flagged)} nearly unannotated")
    for entry in flagged[:5]:
        print(f"       {entry['file_name']}: {entry['n_cells']} cells outlined")

# %% [markdown]
# ## The seed subset
#
# The student project this course grew out of trained on **1024 training, 256 validation and
# 512 test images** from LIVECell's own splits: simply the *first* ones listed in each JSON
# (`data.select_subset(..., rule="first")`, what the `seed` preset uses). The first images of a
# file are not a fair sample — the JSON is not shuffled, so some cell types may be missing.
# The kit's default rule draws a subset reproducibly (same seed → same images), stratified so
# each cell type keeps its share, and `data.write_manifest` saves it so a whole class can
# share the exact same images.
# On the small sample we ask for fewer images.

# %%
from livecell_kit import presets

seed_sizes = presets.get_preset("seed").data
print("seed project:", seed_sizes.train_images, "train /", seed_sizes.val_images, "val /",
      seed_sizes.test_images, "test images")
seed_sizes_by_split = {"train": 1024, "val": 256, "test": 512}
sizes = {"train": 16, "val": 8, "test": 8} if not course.using_real_data() else seed_sizes_by_split
subset = data.select_subset(root, sizes={s: n for s, n in sizes.items() if s in splits}, seed=0)
manifest = data.write_manifest(subset, course.workdir() / "subset_manifest.json")

# %%
# NBVAL_CHECK_OUTPUT
from collections import Counter

counts = Counter((entry["split"], entry["cell_type"]) for entry in subset)
for split_name in data.SPLITS:
    row = " ".join(f"{t}:{counts[(split_name, t)]}" for t in data.CELL_TYPES)
    print(f"{split_name:5s} {row}")

# %% [markdown]
# ### Experiment — how you choose the subset matters
#
# `RULE` below is the subset rule. Run the cell as it is, then change `RULE` to `"first"` (the
# seed project's rule: the first images in file order) and run it again. Look at which cell
# types get images, and how many: a model trained on a subset that misses some cell types has
# never seen them.

# %%
RULE = "stratified"  # ← change to "first" and run again
tried = data.select_subset(root, sizes={s: n for s, n in sizes.items() if s in splits}, seed=0, rule=RULE)
print(RULE, "→ train images per cell type:", dict(Counter(e["cell_type"] for e in tried if e["split"] == "train")))

# %% [markdown]
# ## What you learned
#
# * LIVECell is phase-contrast images of eight cell lines, one COCO JSON per split; each cell is
#   a polygon (a flat list of x, y) with its area and bounding box, and the kit reads even the
#   525 MB file lightly. Reshaped to (N, 2) rows of x, y, the polygons draw straight onto the image.
# * The cell types differ a lot: BV2 and MCF7 images are crowded with small cells, A172, Huh7
#   and SK-OV-3 have fewer, larger ones — a single model has to handle all of them.
# * Real annotation files have flaws (duplicates, overlaps between splits, nearly empty images),
#   and a subset taken in file order can miss whole cell types; a seeded, stratified draw cannot.
#
# **Next:** notebook 02 turns these polygons into the pixel masks a U-Net learns from.

# %% [markdown]
# **Done here? Shut this notebook's kernel down:** *Kernel → Shut Down Kernel* in JupyterLab
# (on Colab: *Runtime → Disconnect and delete runtime*). Closing the tab does not stop a kernel:
# it keeps its memory (up to ~1 GB once TensorFlow is loaded), and Binder restarts your whole
# session when all kernels together pass 2 GB. What this notebook made stays in the work folder,
# so the next notebook picks it up.
