"""Prediction with a classifier run: ``predictions.csv`` with each case's class and the
probability of every class (softmax, averaged over the run's trained folds)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import read_case_image
from medseg.device import resolve_device
from medseg.errors import ImageReadError, located
from medseg.infer.predict import find_input_cases
from medseg.io.atomic import write_text_atomic
from medseg.io.outputs import prepare_output_folder
from medseg.progress import make_progress
from medseg.runs import trained_networks
from medseg.runs.classifier_plan import ClassifierPlan, network_for_classifier, prepare_image

PREDICTIONS_FILE = "predictions.csv"


def load_classifiers(
    run_dir: Path, plan: ClassifierPlan, device: torch.device
) -> list[torch.nn.Module]:
    """The run's trained folds as networks in evaluation mode on ``device``."""
    fold_dirs = sorted(p for p in run_dir.glob("fold_*") if p.is_dir())
    return trained_networks(run_dir, fold_dirs, lambda: network_for_classifier(plan), device)


@torch.no_grad()
def class_probabilities(
    networks: Sequence[torch.nn.Module], image: torch.Tensor, device: torch.device
) -> np.ndarray:
    """The mean softmax of ``networks`` for one prepared image ``(C, *size)``."""
    batch = image[None].to(device)
    return torch.stack([torch.softmax(n(batch), 1)[0] for n in networks]).mean(0).cpu().numpy()


def predict_classes(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    device: str = "auto",
    quiet: bool = False,
) -> Path:
    """Classify every case of ``inputs`` (files or folders, grouped into cases as for
    segmentation) and write ``out_dir/predictions.csv``: ``case, class, p_{name}...``.

    Examples
    --------
    >>> predict_classes("runs/pneumonia", ["Dataset201_Pneumonia/imagesTs"], "preds")
    ... # doctest: +SKIP
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    plan = ClassifierPlan.load(run_dir)
    torch_device = resolve_device(device)
    networks = load_classifiers(run_dir, plan, torch_device)
    cases = find_input_cases(inputs)
    prepare_output_folder(out_dir)
    rows = []
    with make_progress(quiet) as progress:
        for case in progress.track(cases, description="classifying"):
            array = read_case_image(case, plan.in_channels).array
            if array.ndim - 1 != plan.dim:
                problem = f"a {array.ndim - 1}D image for a {plan.dim}D classifier"
                raise ImageReadError(located(case.image_paths[0], problem))
            probabilities = class_probabilities(networks, prepare_image(array, plan), torch_device)
            best = plan.class_names[int(np.argmax(probabilities))]
            rows.append([case.case_id, best, *(f"{p:.6f}" for p in probabilities)])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["case", "class", *(f"p_{name}" for name in plan.class_names)])
    writer.writerows(rows)
    target = out_dir / PREDICTIONS_FILE
    write_text_atomic(target, text.getvalue())
    return target
