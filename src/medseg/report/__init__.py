"""Pictures and reports: overlays, plots, the HTML evaluation and comparison reports."""

from medseg.report.comparison import compare_and_report
from medseg.report.evaluation import evaluate_and_report
from medseg.report.html import find_images_dir, write_report
from medseg.report.overlay import overlay_figure, planes_figure, save_overlay

__all__ = [
    "compare_and_report",
    "evaluate_and_report",
    "find_images_dir",
    "overlay_figure",
    "planes_figure",
    "save_overlay",
    "write_report",
]
