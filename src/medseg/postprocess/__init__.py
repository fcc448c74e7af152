"""Post-processing of predicted label maps: connected components, hole filling and
morphology, chosen per label from the cross-validation predictions of a run.

Operations, the selection rule and the file format: docs/postprocess.md. This package uses
numpy, scipy and connected-components-3d only (no torch).
"""

from medseg.postprocess.model import (
    POSTPROCESSING_FILE,
    ForegroundTrial,
    LabelChoice,
    LabelTrial,
    Operation,
    Postprocessing,
    apply_postprocessing,
    load_postprocessing,
    postprocessing_table,
    save_postprocessing,
)
from medseg.postprocess.operations import (
    closing,
    fill_holes,
    fill_holes_slicewise,
    keep_largest_component,
    keep_largest_foreground,
    opening,
    remove_small_components,
    smooth,
    structuring_element,
)
from medseg.postprocess.run_folder import auto_postprocess
from medseg.postprocess.selection import MIN_GAIN, choose_postprocessing

__all__ = [
    "MIN_GAIN",
    "POSTPROCESSING_FILE",
    "ForegroundTrial",
    "LabelChoice",
    "LabelTrial",
    "Operation",
    "Postprocessing",
    "apply_postprocessing",
    "auto_postprocess",
    "choose_postprocessing",
    "closing",
    "fill_holes",
    "fill_holes_slicewise",
    "keep_largest_component",
    "keep_largest_foreground",
    "load_postprocessing",
    "opening",
    "postprocessing_table",
    "remove_small_components",
    "save_postprocessing",
    "smooth",
    "structuring_element",
]
