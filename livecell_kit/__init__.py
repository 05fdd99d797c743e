"""livecell-kit: teach and run U-Net segmentation of LIVECell phase-contrast images.

One module per pipeline stage — ``data``, ``sample``, ``masks``, ``model``,
``train``, ``evaluate``, ``predict``, ``plot`` — plus ``presets`` (all named
settings), ``checks`` (exercise checkers) and ``cli`` (the ``livecell-kit``
command). Import the stage you need, e.g. ``from livecell_kit import data``.
"""
__version__ = "0.1.0"
