"""Preprocessing: the dataset fingerprint, reorientation, cropping, resampling,
normalisation, classic filters, the preprocessed cache, and the way back to the input's
grid for predictions."""

from medseg.preprocess.cache import CachedCase, cache_is_current, preprocess_dataset
from medseg.preprocess.fingerprint import Fingerprint, compute_fingerprint, fingerprint_dataset
from medseg.preprocess.normalize import ChannelNormalization, normalize_channel, zscore
from medseg.preprocess.pipeline import (
    CaseGeometry,
    Preprocessing,
    preprocess_image,
    preprocess_label,
    restore_channel,
    restore_classes,
    restore_labels,
    restore_probabilities,
    was_resampled,
)

__all__ = [
    "CachedCase",
    "CaseGeometry",
    "ChannelNormalization",
    "Fingerprint",
    "Preprocessing",
    "cache_is_current",
    "compute_fingerprint",
    "fingerprint_dataset",
    "normalize_channel",
    "preprocess_dataset",
    "preprocess_image",
    "preprocess_label",
    "restore_channel",
    "restore_classes",
    "restore_labels",
    "was_resampled",
    "restore_probabilities",
    "zscore",
]
