"""Export a trained model as a BioImage Model Zoo package for Fiji/deepImageJ, QuPath, napari and Python.

:func:`livecell_kit.export.package.export_model` (``livecell-kit export``) writes it;
:mod:`~livecell_kit.export.weights` makes the three weight files,
:mod:`~livecell_kit.export.provenance` decides the licence from the training data and writes
the README. This ``__init__`` imports nothing, so the CLI reads the flags' choices from
``provenance`` without loading TensorFlow.
"""
