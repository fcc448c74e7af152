"""``medseg explain``: Grad-CAM maps and feature-map views for a classifier or a segmenter run.

Per case, in the output folder:

- ``{case}_gradcam_{class or label}.nii.gz``: the map on the input's own grid (its shape and
  affine), scaled to [0, 1]; one per class of a classifier (the class's logit) and per
  foreground label of a segmenter (the label's logits summed over the image), averaged over
  the run's trained folds;
- ``{case}_gradcam_{...}.png``: the map over the image on the most relevant slices (the
  three with the largest map in 3D);
- ``{case}_features_{layer}.png``: the first 16 channels of the first and last encoder
  stages (the network's input after preprocessing, its most relevant slice).

The layer is the last encoder stage unless ``layer`` names another (``encoder.0`` …).
A segmenter is explained on its whole preprocessed image (no sliding window), which is
bounded by `MAX_VOXELS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from medseg.datasets import read_case_image
from medseg.device import resolve_device
from medseg.errors import ConfigError, located
from medseg.explain.gradcam import activations, find_layer, grad_cam, upsampled
from medseg.infer.classify import load_classifiers
from medseg.infer.predict import find_input_cases, load_trained_model
from medseg.io import Image, write_image
from medseg.io.outputs import prepare_output_folder
from medseg.preprocess import preprocess_image, restore_probabilities
from medseg.progress import make_progress
from medseg.runs.classifier_plan import ClassifierPlan, is_classifier_run, prepare_image

#: The largest preprocessed image a segmenter is explained on whole (a 256³ volume).
MAX_VOXELS = 256**3
#: Feature channels drawn per layer.
SHOWN_CHANNELS = 16


def explain_cases(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    layer: str | None = None,
    device: str = "auto",
    quiet: bool = False,
) -> list[Path]:
    """Write Grad-CAM maps and feature views of every case in ``inputs``; return the files.

    Examples
    --------
    >>> explain_cases("runs/pneumonia", ["Dataset201_Pneumonia/imagesTs"], "cams")
    ... # doctest: +SKIP
    """
    run_dir, out = Path(run_dir), Path(out_dir)
    torch_device = resolve_device(device)
    explainer = _Explainer.for_run(run_dir, torch_device, layer)
    cases = find_input_cases(inputs)
    prepare_output_folder(out)
    written: list[Path] = []
    with make_progress(quiet) as progress:
        for case in progress.track(cases, description="explaining"):
            image = read_case_image(case, explainer.channels)
            written += explainer.explain(case.case_id, image, case.image_paths[0], out)
    return written


class _Explainer:
    """The networks of a run and how an image becomes their input and a map comes back."""

    def __init__(self, networks, targets: dict[str, Callable], layer: str, device, prepare,
                 channels: int):  # fmt: skip
        self.networks, self.targets, self.layer, self.device = networks, targets, layer, device
        self.prepare = prepare  # image -> (input tensor (1, C, *s), map -> input grid)
        self.channels = channels  # the input channels the networks take
        for network in networks:
            find_layer(network, layer)

    @classmethod
    def for_run(cls, run_dir: Path, device: torch.device, layer: str | None) -> _Explainer:
        if is_classifier_run(run_dir):
            plan = ClassifierPlan.load(run_dir)
            networks = load_classifiers(run_dir, plan, device)
            targets = {n: _logit(k) for k, n in enumerate(plan.class_names)}
            default = f"encoder.{len(plan.features) - 1}"
            prepare = _classifier_input(plan)
            return cls(networks, targets, layer or default, device, prepare, plan.in_channels)
        model = load_trained_model(run_dir, str(device))
        plan = model.config
        if plan.regions:  # one output per region, none for background
            targets = {n: _summed(k) for k, n in enumerate(plan.output_names)}
        else:
            targets = {n: _summed(k) for k, n in enumerate(plan.label_names) if k > 0}
        default = f"encoder.{len(plan.features) - 1}"
        prepare = _segmenter_input(plan)
        return cls(model.networks, targets, layer or default, device, prepare, plan.in_channels)

    def explain(self, case: str, image: Image, source: Path, out: Path) -> list[Path]:
        inputs, back = self.prepare(image, source)
        inputs = inputs.to(self.device)
        written = []
        for name, target in self.targets.items():
            maps = [
                upsampled(grad_cam(n, find_layer(n, self.layer), inputs, target), inputs.shape[2:])
                for n in self.networks
            ]
            cam = back(torch.stack(maps).mean(0)[0].cpu().numpy())
            cam = (cam / cam.max() if cam.max() > 0 else cam).astype(np.float32)
            stem = out / f"{case}_gradcam_{_safe(name)}"
            write_image(Image(cam[None], image.affine), stem.with_suffix(".nii.gz"))
            _overlay_png(image.array[0], cam, f"{case}: {name}", stem.with_suffix(".png"))
            written += [stem.with_suffix(".nii.gz"), stem.with_suffix(".png")]
        first = self.networks[0]
        stages = sorted({"encoder.0", f"encoder.{len(first.encoder) - 1}"})
        for stage in stages:
            features = activations(first, find_layer(first, stage), inputs)[0].cpu().numpy()
            path = out / f"{case}_features_{stage.replace('.', '')}.png"
            _features_png(features, f"{case}: {stage}", path)
            written.append(path)
        return written


def _logit(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda logits: logits[:, k]


def _summed(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda logits: logits[:, k].flatten(1).sum(1)


def _classifier_input(plan: ClassifierPlan):
    def prepare(image: Image, source: Path):
        if image.array.ndim - 1 != plan.dim:
            problem = f"a {image.array.ndim - 1}D image for a {plan.dim}D classifier"
            raise ConfigError(located(source, problem))
        tensor = prepare_image(image.array, plan)[None]
        size = image.array.shape[1:]
        return tensor, lambda cam: upsampled(torch.from_numpy(cam)[None], size)[0].numpy()

    return prepare


def _segmenter_input(plan):
    def prepare(image: Image, source: Path):
        if plan.preprocessing is None:
            raise ConfigError(located(source, "the run has no preprocessing plan"))
        array, geometry = preprocess_image(image, plan.preprocessing, source)
        if array[0].size > MAX_VOXELS:
            problem = f"{array[0].size} voxels after preprocessing: too large to explain whole"
            raise ConfigError(located(source, problem))
        tensor = torch.from_numpy(array)[None]
        return tensor, lambda cam: restore_probabilities(cam[None], geometry)[0]

    return prepare


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "target"


def _relevant_slices(cam: np.ndarray, count: int = 3) -> list[int]:
    if cam.ndim == 2:
        return []
    weight = cam.reshape(-1, cam.shape[-1]).sum(0)
    return sorted(np.argsort(weight)[::-1][:count].tolist())


def _overlay_png(image: np.ndarray, cam: np.ndarray, title: str, path: Path) -> None:
    slices = _relevant_slices(cam)
    panels = [(image, cam)] if not slices else [(image[..., k], cam[..., k]) for k in slices]
    fig = Figure(figsize=(3 * len(panels), 3.2))
    for n, (picture, heat) in enumerate(panels, start=1):
        axes = fig.add_subplot(1, len(panels), n)
        axes.imshow(picture.T if picture.ndim == 2 and slices else picture, cmap="gray")
        axes.imshow(heat.T if slices else heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
        axes.set_title(f"slice {slices[n - 1]}" if slices else title, fontsize=8)
        axes.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)


def _features_png(features: np.ndarray, title: str, path: Path) -> None:
    shown = features[:SHOWN_CHANNELS]
    if shown.ndim == 4:  # (K, *3D): the slice where the features are strongest
        k = int(np.argmax(np.abs(shown).reshape(-1, shown.shape[-1]).sum(0)))
        shown = shown[..., k]
    columns = 8
    rows = -(-len(shown) // columns)
    fig = Figure(figsize=(columns * 1.2, rows * 1.2 + 0.4))
    for n, channel in enumerate(shown, start=1):
        axes = fig.add_subplot(rows, columns, n)
        axes.imshow(channel, cmap="viridis")
        axes.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=100)
