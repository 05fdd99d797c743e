"""The notebooks' exercises: one checker per exercise, one module per notebook.

``exercises.check_rle_area(rle_area, rle)`` shows **Correct!**, **Not yet** (what differs, never
the answer) or **Your turn** (the student copy's ``...`` is still there);
``exercises.check_rle_area.verdict(...)`` returns the :class:`~livecell_kit.exercises.core.Verdict`
without showing it (tests, grading).  The shared machinery is :mod:`livecell_kit.exercises.core`.
"""
from livecell_kit.exercises.cells import check_seeds
from livecell_kit.exercises.core import NotYet, Verdict, call_student, exercise, show
from livecell_kit.exercises.data import check_cells_per_type, check_outlines
from livecell_kit.exercises.evaluation import check_hit_fractions, check_iou_dice
from livecell_kit.exercises.masks import check_decode_rle, check_rle_area
from livecell_kit.exercises.model import check_conv_params, check_decoder_block, kit_decoder_block
from livecell_kit.exercises.training import check_background_accuracy, check_crops_seen, check_dice_loss

__all__ = ["NotYet", "Verdict", "call_student", "exercise", "show", "check_cells_per_type", "check_outlines",
           "check_rle_area", "check_decode_rle",
           "check_conv_params", "check_decoder_block", "kit_decoder_block", "check_crops_seen",
           "check_background_accuracy", "check_dice_loss", "check_iou_dice",
           "check_hit_fractions", "check_seeds"]
