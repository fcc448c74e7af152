"""Registration and atlas segmentation from files to files: what ``medseg register`` and
``medseg atlas-segment`` do, callable from Python with the same checks and outputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from medseg.device import resolve_device
from medseg.errors import ConfigError
from medseg.io import Image, read_image, write_image
from medseg.io.outputs import check_output_file, prepare_output_folder
from medseg.register.atlas import AtlasResult, Fusion, atlas_segment
from medseg.register.register import (
    Method,
    Registration,
    check_inputs,
    register_images,
    write_registration,
)


@dataclass(frozen=True)
class RegistrationOptions:
    """How `register_files` registers: the method, the similarity, labels to carry along and
    score, and for ``learned`` the model folder (from ``medseg train-registration``).

    Examples
    --------
    >>> RegistrationOptions(method="affine", metric="mi").smoothness
    0.3
    >>> RegistrationOptions(method="learned")
    Traceback (most recent call last):
    ...
    medseg.errors.ConfigError: --method learned needs --model RUN_DIR
    """

    method: Method = "deformable"
    #: ncc, lncc, mi or mse; None: ncc for rigid/affine, lncc for deformable.
    metric: str | None = None
    #: A label map on the moving image's grid, warped with it.
    moving_labels: Path | None = None
    #: A label map on the fixed image's grid, to score Dice/HD95 before and after.
    fixed_labels: Path | None = None
    #: Run the affine stage before a deformable or learned one.
    affine_first: bool = True
    #: Weight of the deformation's smoothness penalty.
    smoothness: float = 0.3
    device: str = "auto"
    #: For ``learned``: the model folder, and instance-optimisation steps after the network.
    model: Path | None = None
    refine: int = 0

    def __post_init__(self) -> None:
        if self.method == "learned" and self.model is None:
            raise ConfigError("--method learned needs --model RUN_DIR")
        if self.method != "learned" and (self.model is not None or self.refine):
            raise ConfigError("--model and --refine go with --method learned")


def register_files(
    fixed_path: str | Path,
    moving_path: str | Path,
    out_dir: str | Path,
    options: RegistrationOptions | None = None,
) -> tuple[Registration, list[Path]]:
    """Register the image file ``moving_path`` to ``fixed_path`` and write every result file
    into ``out_dir`` (`write_registration`); returns the registration and the files written.

    Examples
    --------
    >>> result, written = register_files("fixed.nii.gz", "moving.nii.gz", "reg")
    ... # doctest: +SKIP
    >>> result.metrics["similarity_after"]  # doctest: +SKIP
    """
    prepare_output_folder(out_dir)
    options = options or RegistrationOptions()
    fixed, moving = read_image(fixed_path), read_image(moving_path)
    moving_labels = fixed_labels = None
    labels: dict[str, tuple[Image, Image]] = {}
    if options.moving_labels:
        moving_labels = read_image(options.moving_labels)
        labels[str(options.moving_labels)] = (moving_labels, moving)
    if options.fixed_labels:
        fixed_labels = read_image(options.fixed_labels)
        labels[str(options.fixed_labels)] = (fixed_labels, fixed)
    check_inputs(fixed, moving, (str(fixed_path), str(moving_path)), labels)
    device = resolve_device(options.device)
    model = None
    if options.method == "learned":
        from medseg.register.learned import load_learned_model

        model = load_learned_model(options.model, device)  # type: ignore[arg-type]
    result = register_images(
        fixed,
        moving,
        options.method,
        options.metric,
        moving_labels,
        fixed_labels,
        affine_first=options.affine_first,
        smoothness=options.smoothness,
        device=device,
        model=model,
        refine_steps=options.refine,
    )
    written = write_registration(result, fixed, moving, out_dir, fixed_labels, moving_labels)
    return result, written


def atlas_segment_files(
    image_path: str | Path,
    atlases: Sequence[tuple[str | Path, str | Path]],
    out_file: str | Path,
    method: Method = "deformable",
    fusion: Fusion = "majority",
    device: str = "auto",
) -> AtlasResult:
    """Segment the image file ``image_path`` with labelled atlases given as (image file,
    label file) pairs (`atlas_segment`) and write the fused label map to ``out_file``.

    Examples
    --------
    >>> atlas_segment_files("t1.nii.gz", [("a1.nii.gz", "a1_seg.nii.gz")], "t1_seg.nii.gz")
    ... # doctest: +SKIP
    """
    check_output_file(out_file)
    image = read_image(image_path)
    pairs = []
    for atlas_path, labels_path in atlases:
        atlas_image, atlas_labels = read_image(atlas_path), read_image(labels_path)
        check_inputs(
            image,
            atlas_image,
            (str(image_path), str(atlas_path)),
            {str(labels_path): (atlas_labels, atlas_image)},
        )
        pairs.append((atlas_image, atlas_labels))
    result = atlas_segment(image, pairs, method, fusion, device=resolve_device(device))
    write_image(result.labels, out_file)
    return result
