"""Predicting label maps for new images with a trained run folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg.datasets import Case, group_image_files, read_case_image
from medseg.errors import ConfigError, ImageReadError, RunFolderError, located
from medseg.io import (
    Image,
    image_files,
    image_suffix,
    is_dicom_folder,
    read_dicom_series,
    write_image,
)
from medseg.nn import predict_volume
from medseg.preprocess import preprocess_image, restore_probabilities, zscore
from medseg.progress import log_line, make_progress
from medseg.train import (
    BEST_WEIGHTS,
    LATEST_WEIGHTS,
    Plan,
    load_weights,
    network_for,
    resolve_device,
)


@dataclass
class TrainedModel:
    """A run's configuration and one network per trained fold, ready on a device."""

    run_dir: Path
    config: Plan
    networks: list[nn.Module]
    device: torch.device


def load_trained_model(run_dir: str | Path, device: str = "auto") -> TrainedModel:
    """Load every fold of a run folder (best weights, else latest).

    Raises `RunFolderError` when the folder holds no configuration or no weights.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(located(run_dir, "run folder not found"))
    config = Plan.load(run_dir)
    torch_device = resolve_device(device)
    networks = []
    for fold_dir in sorted(run_dir.glob("fold_*")):
        weights = fold_dir / BEST_WEIGHTS
        if not weights.is_file():
            weights = fold_dir / LATEST_WEIGHTS
        if not weights.is_file():
            continue
        network = network_for(config)
        load_weights(network, weights, torch_device)
        networks.append(network.to(torch_device).eval())
    if not networks:
        raise RunFolderError(located(run_dir, "holds no trained model (no fold_*/*.safetensors)"))
    return TrainedModel(run_dir, config, networks, torch_device)


def predict_probabilities(model: TrainedModel, image: Image) -> np.ndarray:
    """Class probabilities ``(K, *spatial)`` on the image's own grid, averaged over the folds.

    The image goes through the plan's preprocessing (reorientation, crop, resampling,
    normalisation); the probabilities come back through its inverse.
    """
    c = model.config
    geometry = None
    if c.preprocessing is None:
        array = zscore(image.array)
    else:
        array, geometry = preprocess_image(image, c.preprocessing)
    tensor = torch.from_numpy(array).to(model.device)
    total = None
    for network in model.networks:
        probs = predict_volume(network, tensor, c.patch_size, 2 * c.batch_size, c.slice_axis)
        total = probs if total is None else total + probs
    assert total is not None
    probabilities = (total / len(model.networks)).cpu().numpy()
    if geometry is not None:
        probabilities = restore_probabilities(probabilities, geometry)
    return probabilities


def predict_image(model: TrainedModel, image: Image) -> Image:
    """The label map of ``image``: same shape and affine, label values from dataset.json.

    Examples
    --------
    >>> model = load_trained_model("runs/hippo")  # doctest: +SKIP
    >>> labels = predict_image(model, read_image("hippocampus_001_0000.nii.gz"))  # doctest: +SKIP
    """
    labels = model.config.labels_from_classes(predict_probabilities(model, image).argmax(0))
    return Image(labels[None], image.affine)


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
        elif item.is_file():
            if image_suffix(item) is None:
                raise ImageReadError(located(item, "unsupported file type"))
            files.append(item)
        else:
            raise ImageReadError(located(item, "no such file or folder"))
    if not files and not series_cases:
        raise ImageReadError("no input images given")
    return series_cases + (group_image_files(files) if files else [])


def _check_fits_model(image: Image, config: Plan, path: Path) -> None:
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


def predict_paths(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    device: str = "auto",
    quiet: bool = False,
    series: str | None = None,
) -> list[Path]:
    """Predict every case among ``inputs`` and write ``{case}{ending}`` into ``out_dir``.

    Returns the written paths. Each label map has exactly its input's shape and affine; a
    DICOM series folder gives ``{folder}.nii.gz`` (``series`` picks one of several series
    in a folder, by UID or description).
    """
    cases = find_input_cases(inputs)
    model = load_trained_model(run_dir, device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with make_progress(quiet) as progress:
        for case in progress.track(cases, description="predicting"):
            source = case.image_paths[0]
            if source.is_dir():
                image = read_dicom_series(source, series)
                target = out_dir / f"{case.case_id}.nii.gz"
            else:
                image = read_case_image(case)
                target = out_dir / f"{case.case_id}{label_suffix(source)}"
            _check_fits_model(image, model.config, source)
            write_image(predict_image(model, image), target)
            written.append(target)
            log_line(f"wrote {target}", quiet)
    return written
