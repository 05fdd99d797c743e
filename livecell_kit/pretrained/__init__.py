"""Small models shipped with the package, trained on the kit's synthetic sample only.

Each model is ``<name>.keras`` (float32 layers, not compiled: it runs on any CPU or GPU) with a
card ``<name>.json``: the command that made it, what it has seen, its licence, its SHA-256, and
its measured figures on real LIVECell frames and on the sample (``bench/make_pretrained.py``
writes both).  Trained on synthetic frames only, the weights carry none of LIVECell's
CC BY-NC 4.0 terms; read the card's figures before trusting its counts on real cells.

    from livecell_kit import pretrained
    model = pretrained.load_pretrained()          # presets.PRETRAINED_MODEL
    pretrained.model_card()["real_dev"]           # Dice, AP, count and confluence errors
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from livecell_kit.presets import PRETRAINED_MODEL
from livecell_kit.train import load_model

FOLDER = Path(__file__).resolve().parent
_REINSTALL = "reinstall the kit (pip install --force-reinstall livecell-kit, or git checkout the file)"


def available() -> list[str]:
    """Names of the shipped models (those with a card)."""
    return sorted(p.stem for p in FOLDER.glob("*.json"))


def model_card(name: str = PRETRAINED_MODEL) -> dict:
    """The card of model ``name``: ``made_by`` (command), ``trained_on``, ``licence``, ``sha256``,
    ``real_dev`` and ``sample_test`` (measured figures), ``preset``."""
    path = FOLDER / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no pretrained model named {name!r} in {FOLDER}; the kit ships "
                                f"{', '.join(available()) or 'none'}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError as err:
        raise ValueError(f"{path}: the pretrained model's card is not valid JSON ({err}); {_REINSTALL}") from err


def pretrained_path(name: str = PRETRAINED_MODEL) -> Path:
    """Path of the shipped ``<name>.keras``, checked against the SHA-256 on its card."""
    card = model_card(name)
    path = FOLDER / card["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the pretrained model is missing from this installation; {_REINSTALL}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != card["sha256"]:
        raise ValueError(f"{path}: the pretrained model's bytes differ from its card (SHA-256 {digest[:12]}…, "
                         f"card {card['sha256'][:12]}…), so it was changed or damaged; {_REINSTALL}")
    return path


def load_pretrained(name: str = PRETRAINED_MODEL):
    """The shipped model ``name`` as a Keras model (not compiled: for prediction)."""
    return load_model(pretrained_path(name), compile=False)


def describe(name: str = PRETRAINED_MODEL) -> str:
    """One line for a user: which model, what it has seen, and how far to trust it on real frames."""
    card = model_card(name)
    real = card.get("real_dev") or {}
    figures = (f"; on {real['frames']} annotated real LIVECell frames: Dice {real['dice']:.2f}, cell AP "
               f"{real['AP']:.2f}, counts off by a median {real['count_median_abs_error_pct']:.0f} %, confluence "
               f"by {real['confluence_mae_pp']:.1f} points" if real else "")
    return f"pretrained model {name!r} ({card['trained_on']}){figures}"
