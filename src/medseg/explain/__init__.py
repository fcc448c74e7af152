"""Explanations: Grad-CAM maps and feature-map views (`medseg explain`)."""
