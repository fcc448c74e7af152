"""Reports: overlay pictures (tables, plots and the HTML report come later)."""

from medseg.report.overlay import save_overlay

__all__ = ["save_overlay"]
