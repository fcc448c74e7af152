"""Registration: transforms between a fixed and a moving image, warping, and result files.

A registration result maps FIXED-world points to MOVING-world points (pull-back, as in ITK and
ANTs): ``T(x) = A @ (x + u(x))`` in RAS+ millimetres, with ``A`` a 4x4 affine and ``u`` an
optional displacement field on the fixed grid. The warped moving image at ``x`` is
``moving(T(x))``. See docs/register.md.
"""

from __future__ import annotations

from medseg.register.affine_algebra import (
    AffineParameters,
    affine_from_parameters,
    compose_affines,
    invert_affine,
    parameters_from_affine,
)
from medseg.register.files import RegistrationOptions, atlas_segment_files, register_files
from medseg.register.itk_files import (
    RAS_TO_LPS,
    TransformFileError,
    read_affine_text,
    read_displacement,
    write_affine_text,
    write_displacement,
    write_jacobian,
)
from medseg.register.jacobian import folding_percent, jacobian_determinant
from medseg.register.register import (
    Registration,
    RegistrationError,
    check_inputs,
    register_images,
    write_registration,
)
from medseg.register.training import (
    RegistrationTraining,
    RegistrationTrainingOptions,
    train_registration,
)
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image, warp_labels

__all__ = [
    "RAS_TO_LPS",
    "AffineParameters",
    "Registration",
    "RegistrationOptions",
    "RegistrationError",
    "RegistrationTraining",
    "RegistrationTrainingOptions",
    "Transform",
    "TransformFileError",
    "affine_from_parameters",
    "atlas_segment_files",
    "check_inputs",
    "compose_affines",
    "folding_percent",
    "invert_affine",
    "jacobian_determinant",
    "parameters_from_affine",
    "read_affine_text",
    "read_displacement",
    "register_files",
    "register_images",
    "train_registration",
    "warp_image",
    "warp_labels",
    "write_affine_text",
    "write_displacement",
    "write_jacobian",
    "write_registration",
]
