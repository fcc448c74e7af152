"""Networks (U-Net, FCN) and losses."""

from medseg.nn.architecture import MODELS, build_network, stage_layout
from medseg.nn.fcn import FCN
from medseg.nn.losses import DeepSupervisionLoss, DiceCELoss, deep_supervision_weights
from medseg.nn.sliding_window import predict_volume, sliding_window_inference
from medseg.nn.unet import UNet

__all__ = [
    "FCN",
    "MODELS",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "UNet",
    "build_network",
    "deep_supervision_weights",
    "predict_volume",
    "sliding_window_inference",
    "stage_layout",
]
