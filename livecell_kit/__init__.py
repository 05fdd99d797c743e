"""livecell-kit: teach and run U-Net segmentation of LIVECell phase-contrast images.

The package reads as the pipeline, one job per module (a stage with several jobs
is a subpackage that re-exports its public names, e.g. ``data.load_split``):

* ``data`` — LIVECell on disk: download, layout, images, annotations, subsets;
  ``sample`` (``sample.cells``, ``sample.optics``) — the offline, LIVECell-like sample;
* ``masks`` — annotations → semantic, instance and border masks, and their cache;
* ``model`` — the U-Net builder;
* ``train`` — input pipeline, losses and metrics, the resumable run;
* ``predict`` — a saved model on any image; ``instances`` — probability map → cells;
* ``evaluate`` — pixel metrics, baselines, instance AP, the evaluation driver;

plus ``figures`` (every figure; ``masks.overlay`` colours masks without pyplot), ``presets``
(every named setting), ``exercises`` (the exercises' checkers, one module per notebook), ``course`` (notebook
helpers; ``kernels``: the memory of a session's kernels), ``atomic`` (atomic writes, the JSON writer, done-stamps) and ``cli``
(the ``livecell-kit`` command; ``cli.errors``: its error messages and exit status). Import the stage you need, e.g.
``from livecell_kit import data``.
"""
__version__ = "0.1.0"
