"""livecell-kit: teach and run U-Net segmentation of LIVECell phase-contrast images.

The tree reads as the course, then the tools that keep it safe. A stage with several jobs is a
subpackage that re-exports its public names (e.g. ``data.load_split``); import the one you need,
e.g. ``from livecell_kit import data``.

The course, in pipeline order:

* ``masks`` — annotations → semantic, instance and border masks, and their cache;
* ``model`` — the U-Net builder;
* ``train`` — input pipeline, losses and metrics, the resumable run;
* ``instances`` — probability map → cells;
* ``evaluate`` — pixel metrics, baselines, instance AP, the evaluation driver;
* ``measure`` — counts and confluence over a time lapse (``livecell-kit measure``);
* ``exercises`` — the exercises' checkers, one module per notebook.

The tools:

* ``data`` — LIVECell on disk: layout, images, annotation index, splits, subsets;
* ``download`` — fetching LIVECell: registry, cache, checks, range requests, extraction;
* ``sample`` (``sample.cells``, ``sample.optics``) — the offline, LIVECell-like sample;
* ``figures`` — every figure the notebooks draw (``masks.overlay`` colours masks without pyplot);
* ``predict`` — a saved model on any image, as files;
* ``cli`` — the ``livecell-kit`` command (``cli.launch``: the console script; ``cli.commands``;
  ``cli.errors``: its error messages and exit status);
* ``export`` — a BioImage Model Zoo package; ``pretrained`` — the small model trained on the sample;

and small modules: ``presets`` (every named setting), ``course`` (notebook helpers; ``kernels``:
the memory of a session's kernels), ``atomic`` (atomic writes, the JSON writer, done-stamps) and
``progress`` (progress bars that honour ``TQDM_DISABLE``).
"""
__version__ = "0.1.0"
