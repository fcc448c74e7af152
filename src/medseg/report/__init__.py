"""Pictures and reports: overlays, plots and the HTML evaluation report."""

from medseg.report.evaluation import evaluate_and_report
from medseg.report.html import find_images_dir, write_report
from medseg.report.overlay import overlay_figure, save_overlay

__all__ = [
    "evaluate_and_report",
    "find_images_dir",
    "overlay_figure",
    "save_overlay",
    "write_report",
]
