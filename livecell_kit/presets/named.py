"""The named presets (see :mod:`livecell_kit.presets` for what each is) and how to change one."""
from __future__ import annotations

import dataclasses
import difflib

from livecell_kit.presets.configs import DataConfig, ModelConfig, Preset, TrainConfig

#: What the seed project reported on its 512 test images (Keras binary accuracy at 0.5, BCE).
SEED_REPORTED = {"pixel_accuracy": 0.9219, "bce": 0.2043}

_QUICK = Preset(
    name="quick",
    description=(
        "Laptop-CPU preset: batch-normalised U-Net (depth 3, 8 filters) on random "
        "128x128 crops with augmentation, BCE + Dice, a couple of minutes on 2 cores."
    ),
    model=ModelConfig(depth=3, base_filters=8, batch_norm=True, dropout=0.0,
                      upsampling="transpose", outputs="semantic"),
    train=TrainConfig(epochs=8, batch_size=8, learning_rate=3e-3, crop_size=128,
                      augment=True, loss="bce_dice", steps_per_epoch=30,
                      early_stopping_patience=None, lr_schedule="cosine"),
    # the sample's whole splits (8 cell types x 4 / 2 / 2 frames): asking for more would be a
    # promise the sample cannot keep; on LIVECell a stratified draw of as many
    data=DataConfig(train_images=32, val_images=16, test_images=16),
)

PRESETS: dict[str, Preset] = {
    "seed": Preset(
        name="seed",
        description=(
            "The seed student project, exactly: first 1024/256/512 images in file order, "
            "plain U-Net (16-32-64, 128 bottleneck, no BN, glorot init), BCE, full 520x704 "
            "frames, no augmentation, 50 epochs, batch 32, Adam 5e-5."
        ),
        model=ModelConfig(depth=3, base_filters=16, batch_norm=False, dropout=0.0,
                          upsampling="transpose", outputs="semantic",
                          kernel_initializer="glorot_uniform"),
        train=TrainConfig(epochs=50, batch_size=32, learning_rate=5e-5, crop_size=None,
                          augment=False, loss="bce", lr_schedule="constant"),
        data=DataConfig(train_images=1024, val_images=256, test_images=512, subset="first"),
    ),
    "kit": Preset(
        name="kit",
        description=(
            "The kit's settings at the seed's scale (GPU): stratified 1024/256/512 images, "
            "batch-normalised U-Net (depth 3, 32 filters, He init), augmentation, BCE + Dice, "
            "cosine decay, early stopping."
        ),
        model=ModelConfig(depth=3, base_filters=32, batch_norm=True, dropout=0.1,
                          upsampling="transpose", outputs="semantic"),
        train=TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3, crop_size=256,
                          augment=True, loss="bce_dice", early_stopping_patience=10,
                          lr_schedule="cosine"),
        data=DataConfig(train_images=1024, val_images=256, test_images=512, subset="stratified"),
    ),
    "quick": _QUICK,
    "borders": dataclasses.replace(
        _QUICK, name="borders",
        description=(
            "The quick preset with the U-Net paper's border-weighted BCE instead of BCE + Dice: "
            "gaps between touching cells weigh up to 11 times more (w0 10, sigma 5 px)."
        ),
        train=dataclasses.replace(_QUICK.train, loss="weighted_bce"),
    ),
}

# --- presets that split touching cells ----------------------------------------------------------
PRESETS["cells"] = Preset(
    name="cells",
    description=(
        "Laptop-CPU instance head: batch-normalised U-Net (depth 3, 16 filters) predicting cell, "
        "centre-distance and boundary-distance maps on random 128x128 crops with augmentation, "
        "BCE + Dice plus the distances' squared error, 20 epochs of 30 steps; under 5 min on 2 cores."
    ),
    # 16 filters and 20 epochs (quick: 8 and 8): on the sample's val split 8 filters x 12 epochs
    # left the distance maps blurred (MSE 0.032 vs 0.020 at 16 x 20).
    model=dataclasses.replace(_QUICK.model, outputs="cells", base_filters=16),
    train=dataclasses.replace(_QUICK.train, loss="cells_loss", epochs=20),
    data=_QUICK.data,
)
PRESETS["kit-cells"] = dataclasses.replace(
    PRESETS["kit"], name="kit-cells",
    description=(
        "The kit preset with the instance head (GPU): cell, centre-distance and boundary-distance "
        "maps, BCE + Dice plus the distances' squared error."
    ),
    model=dataclasses.replace(PRESETS["kit"].model, outputs="cells"),
    train=dataclasses.replace(PRESETS["kit"].train, loss="cells_loss"),
)
PRESETS["cells-border"] = dataclasses.replace(
    PRESETS["cells"], name="cells-border",
    description=(
        "The cells preset with the older way to split cells, for comparison (notebook 06): the same "
        "U-Net predicting cell and touching-border maps (notebook 02's border mask), BCE + Dice."
    ),
    model=dataclasses.replace(PRESETS["cells"].model, outputs="semantic+border"),
    train=dataclasses.replace(PRESETS["cells"].train, loss="bce_dice"),
)


def get_preset(name: str, **overrides) -> Preset:
    """Return preset ``name`` with fields replaced by ``overrides``.

    Overrides are matched by field name against the model, train and data
    configs, e.g. ``get_preset("seed", epochs=3, base_filters=8)``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}; "
                         f"choose one of {', '.join(PRESETS)} (see livecell_kit/presets/)")
    return override(PRESETS[name], **overrides)


def override(preset: Preset, **overrides) -> Preset:
    """``preset`` with the named fields of its model, train or data config replaced."""
    parts = {"model": preset.model, "train": preset.train, "data": preset.data}
    changes: dict[str, dict] = {k: {} for k in parts}
    for key, value in overrides.items():
        owners = [k for k, cfg in parts.items() if key in {f.name for f in dataclasses.fields(cfg)}]
        if not owners:
            known = [f.name for cfg in parts.values() for f in dataclasses.fields(cfg)]
            raise ValueError(f"{key!r} is not a setting of any config{_did_you_mean(key, known)}; "
                             "see livecell_kit/presets/ for the settings")
        changes[owners[0]][key] = value
    return dataclasses.replace(
        preset, **{k: dataclasses.replace(parts[k], **v) for k, v in changes.items() if v}
    )


def _did_you_mean(name, known) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve(preset, **overrides) -> Preset:
    """A preset given by name or as a :class:`Preset`, with ``overrides`` as in :func:`get_preset`."""
    if isinstance(preset, str):
        return get_preset(preset, **overrides)
    if isinstance(preset, Preset):
        return override(preset, **overrides)
    raise TypeError(f"preset must be a name ({', '.join(PRESETS)}) or a Preset, got {type(preset).__name__}")


