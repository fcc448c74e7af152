"""Preprocessing: intensity normalisation (resampling, cropping and planning come later)."""

from medseg.preprocess.normalize import zscore

__all__ = ["zscore"]
