"""Predicting label maps for new images with a trained run folder."""

from __future__ import annotations

import functools
import itertools
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.datasets import Case, group_image_files
from medseg.device import resolve_device, resolve_precision
from medseg.errors import ConfigError, ImageReadError, RunFolderError, located
from medseg.export import is_export_folder, onnx_networks
from medseg.infer.outputs import DICOM_FORMATS, parse_formats, run_segments, write_prediction
from medseg.io import (
    Image,
    atomic_path,
    image_files,
    image_suffix,
    is_dicom_folder,
    read_dicom_series,
    write_image,
)
from medseg.io.limits import check_input_file
from medseg.nn import predict_volume, windows_per_pass
from medseg.postprocess import Postprocessing, apply_postprocessing, load_postprocessing
from medseg.preprocess import (
    CaseGeometry,
    preprocess_image,
    restore_channel,
    restore_classes,
    restore_labels,
    restore_probabilities,
    was_resampled,
    zscore,
)
from medseg.runs import Plan, network_for, trained_networks


@dataclass
class TrainedModel:
    """A run's configuration and one network per trained fold, ready on a device."""

    run_dir: Path
    config: Plan
    networks: list[nn.Module]
    device: torch.device
    dtype: torch.dtype = torch.float32  # what the networks compute in (under autocast)


def load_trained_model(
    run_dir: str | Path,
    device: str = "auto",
    folds: Sequence[int | str] | None = None,
    compile_networks: bool = False,
    precision: str = "auto",
) -> TrainedModel:
    """Load every fold of a run folder, or the ``folds`` listed (best weights, else latest).
    An export folder of `medseg.export.export_onnx` loads its ONNX models instead, run by
    onnxruntime on the CPU. ``compile_networks``: each network goes through ``torch.compile``
    (`compiled`). ``precision``: what the networks compute in, see
    `medseg.device.resolve_precision` (``auto``: bfloat16 on a CPU with native bfloat16,
    float16 on CUDA; docs/predict.md, `--precision`).

    Raises `RunFolderError` when the folder holds no configuration or no weights.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(located(run_dir, "run folder not found"))
    config = Plan.load(run_dir)
    if is_export_folder(run_dir):  # `medseg export`'s ONNX models, run by onnxruntime
        if compile_networks:
            raise ConfigError("--compile is for PyTorch's networks, not an ONNX export")
        if precision not in ("auto", "float32"):
            raise ConfigError(
                f"--precision {precision} is for PyTorch's networks; an ONNX export runs as "
                "exported (medseg export --quantize makes smaller ones)"
            )
        names = None if folds is None else [f"fold_{k}" for k in folds]
        return TrainedModel(run_dir, config, onnx_networks(run_dir, names), torch.device("cpu"))
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    fold_dirs = sorted(run_dir.glob("fold_*"))
    if folds is not None:
        fold_dirs = [run_dir / f"fold_{k}" for k in folds]
        missing = [d.name for d in fold_dirs if not d.is_dir()]
        if missing:
            raise RunFolderError(located(run_dir, f"has no {', '.join(missing)}"))
    networks = trained_networks(run_dir, fold_dirs, lambda: network_for(config), torch_device)
    if compile_networks:
        networks = [compiled(network, torch_device) for network in networks]
    return TrainedModel(run_dir, config, networks, torch_device, dtype)


def compiled(network: nn.Module, device: torch.device) -> nn.Module:
    """``torch.compile(network)`` for inference: the first windows of a shape wait for it to
    be compiled (about 20 s for a Hippocampus network here), later ones run about 1.25x
    faster on this CPU (bench/RESULTS.md) — worth it for large volumes and long cohorts.
    On the CPU it needs a C++ compiler; `ConfigError` up front when there is none."""
    compilers = ("c++", "g++", "clang++", "cl")
    if device.type == "cpu" and not any(shutil.which(name) for name in compilers):
        raise ConfigError("--compile needs a C++ compiler on the CPU (g++ or clang++)")
    return torch.compile(network, dynamic=False)  # type: ignore[return-value]


def mirror_axes(config: Plan) -> list[tuple[int, ...]]:
    """Every combination of the data's spatial axes to mirror for test-time augmentation,
    the empty one first: the axes the training augmentation mirrored, none if it did not
    (a network that never saw a mirrored image — e.g. one that tells anterior from posterior
    by position — is made worse by mirroring). A 2D network on 3D data is not mirrored
    across its slices.

    Examples
    --------
    >>> plan = Plan(in_channels=1, label_values=[0, 1], label_names=["bg", "fg"],
    ...     channel_names=["EM"], file_ending=".png", data_dim=2, dim=2,
    ...     median_spacing=[1.0, 1.0], median_shape=[64, 64], features=[16, 32],
    ...     strides=[[1, 1], [2, 2]], kernel_sizes=[[3, 3], [3, 3]], patch_size=[64, 64],
    ...     batch_size=2, learning_rate=0.01)
    >>> mirror_axes(plan)
    [(), (0,), (1,), (0, 1)]
    >>> off = plan.augmentation.model_copy(update={"enabled": False})
    >>> mirror_axes(plan.model_copy(update={"augmentation": off}))
    [()]
    """
    mirror = config.augmentation.mirror
    if not (config.augmentation.enabled and mirror.probability > 0):
        return [()]
    network_axes = [a for a in range(config.data_dim) if a != config.slice_axis]
    allowed = range(len(network_axes)) if mirror.axes is None else mirror.axes
    axes = [network_axes[a] for a in allowed]
    return [c for n in range(len(axes) + 1) for c in itertools.combinations(axes, n)]


def network_input(
    model: TrainedModel, image: Image, source: str | Path = "image"
) -> tuple[torch.Tensor, CaseGeometry | None]:
    """The preprocessed image ``(C, *shape)`` on the model's device and the geometry that
    maps the network's grid back to the image (None for a plan without preprocessing: the
    grids are the same). ``source`` names the image in errors."""
    c = model.config
    geometry = None
    if c.preprocessing is None:
        array = zscore(image.array)
    else:
        array, geometry = preprocess_image(image, c.preprocessing, source)
    return torch.from_numpy(array).to(model.device), geometry


def network_probabilities(
    model: TrainedModel,
    tensor: torch.Tensor,
    tta: bool = False,
    *,
    members: list[np.ndarray] | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Class probabilities ``(K, *shape)`` of a `network_input` on the network's grid,
    averaged over the folds (and, with ``tta``, over the mirrored copies of `mirror_axes`),
    one window at a time. ``reduce`` (voxel by voxel, channel-first) turns each finished
    stretch of probabilities into what is returned instead (`medseg.nn.predict_volume`).
    See `predict_probabilities` for ``members``."""
    c = model.config
    flips = mirror_axes(c) if tta else [()]
    per_pass = windows_per_pass(c.dim, c.batch_size, tensor.device)
    predict = functools.partial(
        predict_volume, image=tensor, patch_size=c.patch_size, sw_batch_size=per_pass,
        slice_axis=c.slice_axis, activation=c.activation, dtype=model.dtype,
    )  # fmt: skip
    if members is None:  # the whole ensemble in each window: one blended volume
        return predict(model.networks, mirror_axes=flips, reduce=reduce).cpu().numpy()
    total = None
    for network in model.networks:
        for axes in flips:
            probs = predict(network, mirror_axes=[axes])
            total = probs if total is None else total.add_(probs)
            members.append(probs.argmax(0).to(torch.uint8).cpu().numpy())
            del probs
    assert total is not None
    total.div_(len(model.networks) * len(flips))
    return (total if reduce is None else reduce(total)).cpu().numpy()


def predict_probabilities(
    model: TrainedModel,
    image: Image,
    tta: bool = False,
    *,
    source: str | Path = "image",
    members: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Class probabilities ``(K, *spatial)`` on the image's own grid, averaged over the folds
    (and, with ``tta``, over the mirrored copies of the image of `mirror_axes`).

    The image goes through the plan's preprocessing (reorientation, crop, resampling,
    normalisation); the probabilities come back through its inverse. ``source`` names the
    image in errors (a spacing far from the plan's, a resampled size over the voxel limit).
    ``members``, when given, receives each fold's and copy's class map (uint8, on the
    network's grid) for `medseg.infer.quality`.
    """
    tensor, geometry = network_input(model, image, source)
    probabilities = network_probabilities(model, tensor, tta, members=members)
    if geometry is None:
        return probabilities
    return restore_probabilities(probabilities, geometry, model.config.activation == "softmax")


def _labels_on_image_grid(
    config: Plan, probabilities: np.ndarray, geometry: CaseGeometry | None
) -> np.ndarray:
    """`Plan.labels_from_probabilities` of the probabilities restored to the image's grid,
    computed one channel at a time (two channels of the image's size in memory, not K)."""
    if geometry is None:
        return config.labels_from_probabilities(probabilities)
    if not config.regions:
        return config.labels_from_classes(restore_classes(probabilities, geometry))
    assert config.regions_class_order is not None
    dtype = np.uint8 if max(config.label_values) < 256 else np.uint16
    labels = np.zeros(geometry.original_shape, dtype)
    for channel, value in zip(probabilities, config.regions_class_order):
        labels[restore_channel(channel, geometry, 0.0) > 0.5] = value
    return labels


def predict_labels(
    model: TrainedModel,
    image: Image,
    tta: bool = False,
    postprocessing: Postprocessing | None = None,
    *,
    source: str | Path = "image",
    members: list[np.ndarray] | None = None,
    keep_probabilities: bool = True,
) -> tuple[Image, np.ndarray | None]:
    """The label map of ``image`` (same shape and affine, label values from dataset.json)
    and the class probabilities ``(K, *spatial)`` it was taken from (None without
    ``keep_probabilities``: then the image-sized K-channel array is never made, see
    `_labels_only`); ``postprocessing`` is applied to the labels; ``source`` names the
    image in errors; ``members`` as for `predict_probabilities`."""
    c = model.config
    if keep_probabilities:
        probabilities = predict_probabilities(model, image, tta, source=source, members=members)
        labels = c.labels_from_probabilities(probabilities)
    else:
        labels, probabilities = _labels_only(model, image, tta, source, members), None
    if postprocessing is not None:
        labels = apply_postprocessing(labels, postprocessing, image.spacing)
    return Image(labels[None], image.affine), probabilities


def _labels_only(
    model: TrainedModel,
    image: Image,
    tta: bool,
    source: str | Path,
    members: list[np.ndarray] | None,
) -> np.ndarray:
    """The label map on the image's grid with memory bounded by the network's grid: where
    that grid was not resampled, labels are taken from each finished stretch of windows
    and only they are kept (`medseg.nn.sliding_window_inference`); otherwise probabilities
    on the network's grid are restored one channel at a time."""
    c = model.config
    tensor, geometry = network_input(model, image, source)
    if geometry is not None and was_resampled(geometry):
        on_network = network_probabilities(model, tensor, tta, members=members)
        del tensor
        return _labels_on_image_grid(c, on_network, geometry)

    def labels(probabilities: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(c.labels_from_probabilities(probabilities.cpu().numpy()))[None]

    on_network = network_probabilities(model, tensor, tta, members=members, reduce=labels)
    if geometry is None:
        return on_network[0]
    return restore_labels(on_network[0], geometry, 0 if c.regions else c.label_values[0])


def predict_image(
    model: TrainedModel,
    image: Image,
    tta: bool = False,
    postprocessing: Postprocessing | None = None,
) -> Image:
    """The label map of ``image``: same shape and affine, label values from dataset.json.

    Examples
    --------
    >>> model = load_trained_model("runs/hippo")  # doctest: +SKIP
    >>> labels = predict_image(model, read_image("hippocampus_001_0000.nii.gz"))  # doctest: +SKIP
    """
    return predict_labels(model, image, tta, postprocessing, keep_probabilities=False)[0]


def write_probabilities(
    probabilities: np.ndarray, image: Image, config: Plan, path_stem: Path, file_format: str
) -> Path:
    """Write class probabilities: ``{stem}.npz`` (float16 ``probabilities`` (K, *spatial) and
    the ``label_values`` of its channels; for a region-based run one channel per region and
    ``regions``, the names) or ``{stem}_probabilities.nii.gz`` (3D images, float32, one
    volume per channel, on the image's grid)."""
    if file_format == "nifti":
        if image.ndim != 3:
            raise ConfigError("--save-probabilities nifti needs 3D images; use npz")
        path = path_stem.with_name(path_stem.name + "_probabilities.nii.gz")
        write_image(Image(probabilities.astype(np.float32), image.affine), path)
        return path
    path = path_stem.with_name(path_stem.name + ".npz")
    with atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            probabilities=probabilities.astype(np.float16),
            **(
                {"regions": np.asarray(config.region_names)}
                if config.regions
                else {"label_values": np.asarray(config.label_values)}
            ),
        )
    return path


def label_suffix(image_path: Path) -> str:
    """The file ending for a label map of this image: the image's own, except that JPEG
    (lossy, it would corrupt label values) becomes PNG.

    Examples
    --------
    >>> label_suffix(Path("scan_0000.nii.gz")), label_suffix(Path("photo.jpg"))
    ('.nii.gz', '.png')
    """
    suffix = image_suffix(image_path) or ".nii.gz"
    return ".png" if suffix in (".jpg", ".jpeg") else suffix


def find_input_cases(inputs: Sequence[str | Path]) -> list[Case]:
    """Image files and folders of image files, grouped into cases by ``_CCCC`` suffix; a
    folder of DICOM files is one case named after the folder."""
    files: list[Path] = []
    series_cases: list[Case] = []
    for item in map(Path, inputs):
        if item.is_dir() and is_dicom_folder(item):
            series_cases.append(Case(item.name, (item,)))
        elif item.is_dir():
            found = image_files(item)
            if not found:
                raise ImageReadError(located(item, "folder holds no supported image files"))
            files += found
        elif image_suffix(item) is None:
            check_input_file(item)  # names a missing file, a link loop, a FIFO as such
            raise ImageReadError(located(item, "unsupported file type"))
        else:
            files.append(check_input_file(item))
    if not files and not series_cases:
        raise ImageReadError("no input images given")
    return series_cases + (group_image_files(files) if files else [])


def check_fits_model(image: Image, config: Plan, path: Path) -> None:
    """The image must have the channels and dimensionality the model was trained on."""
    if image.channels != config.in_channels:
        expected = f"{config.in_channels} ({', '.join(config.channel_names)})"
        raise ConfigError(
            located(path, f"{image.channels} channel(s); the model expects {expected}")
        )
    if image.ndim != config.data_dim:
        raise ConfigError(
            located(
                path, f"a {image.ndim}D image; the model was trained on {config.data_dim}D images"
            )
        )


def predict_dicom_series(
    model: TrainedModel,
    folder: Path,
    out_dir: Path,
    formats: Sequence[str] = ("dicom-seg",),
    name: str | None = None,
    postprocess: bool = True,
) -> list[Path]:
    """Predict the DICOM series in ``folder`` with a loaded ``model`` and write it into
    ``out_dir`` as ``formats`` (files named after ``name``, default the folder's): what
    `predict_paths` does for one series, the run's post-processing included unless
    ``postprocess`` is false, for a caller that keeps the model loaded."""
    formats = parse_formats(formats)
    postprocessing = load_postprocessing(model.run_dir) if postprocess else None
    image = read_dicom_series(folder)
    check_fits_model(image, model.config, folder)
    labels, _ = predict_labels(
        model, image, postprocessing=postprocessing, source=folder, keep_probabilities=False
    )
    segments = run_segments(model.run_dir, model.config) if DICOM_FORMATS & set(formats) else []
    return write_prediction(
        labels, out_dir, name or folder.name, ".nii.gz", formats,
        dicom_series=folder, segments=segments, run_name=model.run_dir.name,
    )  # fmt: skip
