"""Networks (U-Net, FCN, the registration U-Net), losses and safetensors weights."""

from medseg.nn.architecture import MODELS, build_network, stage_layout
from medseg.nn.checkpoint import load_weights, save_weights
from medseg.nn.fcn import FCN
from medseg.nn.losses import DeepSupervisionLoss, DiceCELoss, deep_supervision_weights
from medseg.nn.registration import REGISTRATION_FEATURES, registration_unet
from medseg.nn.sliding_window import predict_volume, sliding_window_inference, windows_per_pass
from medseg.nn.unet import UNet

__all__ = [
    "FCN",
    "MODELS",
    "REGISTRATION_FEATURES",
    "DeepSupervisionLoss",
    "DiceCELoss",
    "UNet",
    "build_network",
    "deep_supervision_weights",
    "load_weights",
    "predict_volume",
    "registration_unet",
    "save_weights",
    "sliding_window_inference",
    "windows_per_pass",
    "stage_layout",
]
