"""The LIVECell files the kit downloads: pooch registry (name -> hash) and their URLs.

In the style of scikit-image's ``skimage/data/_registry.py``: names are paths under
:data:`BASE_URL`, the official server's ``LIVECell_dataset_2021/`` folder, and
:data:`REGISTRY` maps each to ``"sha256:<hex>"`` where the hash is known, else None.

No trusted hash exists to commit: Sartorius publishes no checksums, and this registry was
written without network access, so a value copied from a download here would vouch only for
that one download.  Every hash is therefore None.  :func:`livecell_kit.download.cache.fetch`
then trusts a file's first download — but only once it passed the checks of
:mod:`~livecell_kit.download.checks` (not a web page, complete, a JSON that parses, a
safe and plausible zip) — and records its sha256 in ``<cache>/registry-recorded.json``
(:data:`RECORDED_HASHES`); later runs are checked against that record.  To pin a file for
everybody once a trusted copy is at hand, copy its recorded ``"sha256:..."`` here.

Sizes on the official server (for planning disk and time): images.zip 1.24 GB (flat
folders ``images/livecell_{train_val,test}_images/``, 5,239 frames); livecell_coco_train.json
525.6 MiB, _val 92.8 MiB, _test 248.7 MiB.  What the smaller files hold (COCO JSONs like the
main three, cut from them): ``LIVECell_single_cells/<type>/{split}.json`` — one
cell type's part of each split, so the eight of a split add up to about that split's size;
``LIVECell_dataset_size_split/<n>_train<p>percent.json`` — the paper's training-set-size
study, p % of the train split's images (so roughly p % of its bytes), no val or test.
``download --subset course`` uses the 2 % file for train
(:mod:`~livecell_kit.download.course_subset`).
"""
from __future__ import annotations

from livecell_kit.data.layout import SPLITS

BASE_URL = "http://livecell-dataset.s3.eu-central-1.amazonaws.com/LIVECell_dataset_2021/"
RECORDED_HASHES = "registry-recorded.json"

#: Cell type -> its sub-folder of ``annotations/LIVECell_single_cells/``.
SINGLE_CELL_DIRS = {"A172": "a172", "BT474": "bt474", "BV2": "bv2", "Huh7": "huh7",
                    "MCF7": "mcf7", "SHSY5Y": "shsy5y", "SkBr3": "skbr3", "SKOV3": "skov3"}
#: The training-set-size experiments of the LIVECell paper (2 % ... 50 % of train).
SIZE_SPLITS = ("0_train2percent", "1_train4percent", "2_train5percent",
               "3_train25percent", "4_train50percent")


def annotation_name(split: str) -> str:
    """Registry name of the official annotation JSON of ``split``."""
    return f"annotations/LIVECell/livecell_coco_{split}.json"


def single_cell_name(cell_type_dir: str, split: str) -> str:
    """Registry name of one cell type's annotation JSON (``cell_type_dir`` as in SINGLE_CELL_DIRS)."""
    return f"annotations/LIVECell_single_cells/{cell_type_dir}/{split}.json"


def size_split_name(stem: str) -> str:
    """Registry name of one training-set-size subset (``stem`` from SIZE_SPLITS)."""
    return f"annotations/LIVECell_dataset_size_split/{stem}.json"


REGISTRY: dict[str, str | None] = {"images.zip": None}
REGISTRY.update({annotation_name(s): None for s in SPLITS})
REGISTRY.update({single_cell_name(d, s): None for d in SINGLE_CELL_DIRS.values() for s in SPLITS})
REGISTRY.update({size_split_name(n): None for n in SIZE_SPLITS})

#: Name -> URL on the official server (a mirror given as ``base_url`` replaces BASE_URL).
REGISTRY_URLS = {name: BASE_URL + name for name in REGISTRY}
