"""Networks (U-Net, FCN) and losses."""

from medseg.nn.architecture import MODELS, build_network, stage_layout
from medseg.nn.fcn import FCN
from medseg.nn.losses import DiceCELoss
from medseg.nn.sliding_window import predict_volume, sliding_window_inference
from medseg.nn.unet import UNet

__all__ = [
    "FCN",
    "MODELS",
    "DiceCELoss",
    "UNet",
    "build_network",
    "predict_volume",
    "sliding_window_inference",
    "stage_layout",
]
