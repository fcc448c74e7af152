"""The demo: phantom dataset -> training -> predictions -> scores -> overlays, in minutes."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from medseg.datasets.phantom import write_phantom_dataset
from medseg.infer import predict_paths
from medseg.io import read_image
from medseg.io.outputs import prepare_output_folder
from medseg.metrics import Evaluation, evaluate_folders, write_evaluation
from medseg.progress import log_line
from medseg.report import save_overlay, write_report
from medseg.train import TrainOptions, TrainResult, train_run

DEMO_EPOCHS = {3: 3, 2: 2}
DEMO_TRAINING_CASES = {3: 20, 2: 60}


@dataclass
class DemoResult:
    """Where the demo put everything, and its scores."""

    dataset_dir: Path
    run_dir: Path
    predictions_dir: Path
    evaluation_dir: Path
    overlays: list[Path]
    training: TrainResult
    evaluation: Evaluation


def run_demo(
    out_dir: str | Path = "medseg_demo",
    dim: int = 3,
    options: TrainOptions | None = None,
    n_train: int | None = None,
    n_test: int = 4,
) -> DemoResult:
    """Write the phantom dataset, train fold 0, predict the test cases and score them.

    ``options`` are the training's (device, seed, budget ...); without a budget it trains
    3 epochs of 100 steps, about three minutes on two CPU cores in 3D. An epoch budget (not
    minutes) makes the scores repeatable for a seed.

    Examples
    --------
    >>> result = run_demo("medseg_demo", dim=2)  # doctest: +SKIP
    >>> result.evaluation.summary["mean_dice"]  # doctest: +SKIP
    """
    prepare_output_folder(out_dir)
    out_dir = Path(out_dir)
    options = options or TrainOptions()
    if options.epochs is None and options.minutes is None:
        options = replace(options, epochs=DEMO_EPOCHS[dim])
    if n_train is None:  # 2D cases are cheap and a 2D network needs more of them
        n_train = DEMO_TRAINING_CASES[dim]
    quiet, device = options.quiet, options.device
    log_line(f"writing the {dim}D phantom dataset", quiet)
    dataset = write_phantom_dataset(
        out_dir / "dataset", n_train, n_test, dim=dim, seed=options.seed
    )
    run_dir = out_dir / "run"
    if run_dir.exists():  # the demo's outputs are disposable; a stale config must not leak in
        shutil.rmtree(run_dir)
    training = train_run(dataset, run_dir, replace(options, dim=dim))
    predictions = out_dir / "predictions"
    predict_paths(run_dir, [dataset / "imagesTs"], predictions, device=device, quiet=quiet)
    evaluation_dir = out_dir / "evaluation"
    evaluation = evaluate_folders(predictions, dataset / "labelsTs", quiet=quiet)
    write_evaluation(evaluation, evaluation_dir)
    write_report(
        evaluation, evaluation_dir, dataset / "imagesTs", title="medseg demo: held-out cases"
    )
    overlays = []
    for reference_path in sorted((dataset / "labelsTs").iterdir()):
        case = reference_path.name.split(".")[0]
        image = read_image(next((dataset / "imagesTs").glob(f"{case}_0000.*")))
        reference = read_image(reference_path).array[0]
        prediction = read_image(predictions / reference_path.name).array[0]
        overlays.append(
            save_overlay(
                np.asarray(image.array[0], dtype=np.float32),
                reference,
                prediction,
                out_dir / "overlays" / f"{case}.png",
                title=f"{case}: reference (green), prediction (red)",
            )
        )
    return DemoResult(dataset, run_dir, predictions, evaluation_dir, overlays, training, evaluation)
