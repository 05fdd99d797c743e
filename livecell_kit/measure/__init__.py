"""Growth curves from a folder of frames: ``livecell-kit measure`` and :func:`measure_frames`.

* :mod:`~livecell_kit.measure.names` — metadata (cell type, well, location, crop, hours) from file names.
* :mod:`~livecell_kit.measure.frames` — :func:`measure_frames`: cells, confluence and areas per frame.
* :mod:`~livecell_kit.measure.record` — the append-only record that lets a rerun resume.
* :mod:`~livecell_kit.measure.tables` — ``frames.csv`` and ``wells.csv`` (tidy, per well and time).
* :mod:`~livecell_kit.measure.curves` — growth-curve figures.
"""
from livecell_kit.measure.frames import MeasureResult, measure_frame, measure_frames
from livecell_kit.measure.names import FrameName, name_reader, timestamp_hours

__all__ = ["FrameName", "MeasureResult", "measure_frame", "measure_frames", "name_reader", "timestamp_hours"]
