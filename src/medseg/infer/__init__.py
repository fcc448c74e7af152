"""Inference: load a run folder, predict label maps on the input's own grid."""

from medseg.infer.cohort import predict_paths
from medseg.infer.predict import (
    TrainedModel,
    find_input_cases,
    load_trained_model,
    predict_dicom_series,
    predict_image,
    predict_labels,
    predict_probabilities,
)

__all__ = [
    "TrainedModel",
    "find_input_cases",
    "load_trained_model",
    "predict_dicom_series",
    "predict_image",
    "predict_labels",
    "predict_paths",
    "predict_probabilities",
]
