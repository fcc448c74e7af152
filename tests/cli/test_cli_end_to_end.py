"""The command line end to end on tiny phantoms: train -> predict -> evaluate, and the demo."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.demo import run_demo
from medseg.io import read_image, write_image
from medseg.train import TrainOptions

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("dim", "shape", "ending"), [(3, (32, 32, 10), ".nii.gz"), (2, (40, 48), ".png")]
)
def test_train_predict_evaluate(run_cli, tmp_path: Path, dim, shape, ending):
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=2, dim=dim, shape=shape)
    run = tmp_path / "run"
    code, out, err = run_cli(
        ["--quiet", "train", data, "--out", run, "--fold", "0", "--epochs", "1",
         "--iterations-per-epoch", "3"]
    )  # fmt: skip
    assert code == 0, err
    assert "best smoothed validation Dice" in out
    assert (run / "plan.json").is_file() and (run / "fold_0" / "log.csv").is_file()

    preds = tmp_path / "preds"
    code, out, err = run_cli(["--quiet", "predict", run, data / "imagesTs", "--out", preds])
    assert code == 0, err
    names = sorted(p.name for p in preds.iterdir() if p.name != "predictions.json")
    assert names == [f"phantom_005{ending}", f"phantom_006{ending}"]
    record = json.loads((preds / "predictions.json").read_text())
    assert [record["cases"][c]["status"] for c in ("phantom_005", "phantom_006")] == ["done"] * 2
    for name in names:
        prediction = read_image(preds / name)
        reference = read_image(data / "labelsTs" / name)
        assert prediction.spatial_shape == reference.spatial_shape
        np.testing.assert_allclose(prediction.affine, reference.affine, atol=1e-6)

    scores = tmp_path / "scores"
    code, out, err = run_cli(["evaluate", preds, data / "labelsTs", "--out", scores])
    assert code == 0, err
    assert "liver" in out and "kidney" in out
    summary = json.loads((scores / "summary.json").read_text())
    assert summary["cases"] == 2
    assert set(summary["labels"]) == {"liver", "spleen", "kidney"}
    rows = (scores / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("case,label,label_name,dice,iou,") and len(rows) == 1 + 2 * 3


def test_demo_writes_everything_it_promises(tmp_path: Path):
    result = run_demo(
        tmp_path / "demo",
        options=TrainOptions(epochs=1, quiet=True, iterations_per_epoch=2),
        dim=2,
        n_train=5,
        n_test=2,
    )
    assert len(list(result.predictions_dir.glob("phantom_*"))) == 2
    assert (result.evaluation_dir / "metrics.csv").is_file()
    assert (result.evaluation_dir / "summary.json").is_file()
    assert (result.evaluation_dir / "report.html").stat().st_size > 10_000
    assert [p.name for p in result.overlays] == ["phantom_005.png", "phantom_006.png"]
    assert all(p.stat().st_size > 1000 for p in result.overlays)
    assert result.evaluation.summary["cases"] == 2


def test_demo_command_prints_table_and_paths(run_cli, tmp_path: Path, monkeypatch):
    # The full demo trains for minutes; here the command line is checked with a tiny budget.
    import medseg.demo

    original = medseg.demo.run_demo

    def tiny_demo(out_dir, dim, options):
        options = replace(options, iterations_per_epoch=2)
        return original(out_dir, dim, options, n_train=5, n_test=1)

    monkeypatch.setattr(medseg.demo, "run_demo", tiny_demo)
    code, out, err = run_cli(
        ["--quiet", "demo", "--out", tmp_path / "d", "--dim", "2d", "--epochs", "1"]
    )
    assert code == 0, err
    for word in ("Scores over 1 case(s)", "predictions", "overlays", "run folder"):
        assert word in out


def test_train_without_fold_learns_from_every_case(run_cli, tmp_path: Path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(40, 40))
    run = tmp_path / "run"
    code, out, err = run_cli(
        ["--quiet", "train", data, "--out", run, "--epochs", "1", "--iterations-per-epoch", "2"]
    )
    assert code == 0, err
    assert sorted(p.name for p in run.glob("fold_*")) == ["fold_all"]
    assert "validation" not in out and "fold_all" in out
    manifest = json.loads((run / "manifest.json").read_text())
    assert set(manifest["folds"]) == {"all"}
    code, out, err = run_cli(["--quiet", "train", data, "--out", tmp_path / "r2", "--fold", "all",
                              "--epochs", "1", "--iterations-per-epoch", "2"])  # fmt: skip
    assert code == 0 and "--cross-validation" in err
    preds = tmp_path / "preds"
    code, _, err = run_cli(["--quiet", "predict", run, data / "imagesTs", "--out", preds,
                            "--fold", "all"])  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in preds.iterdir()) == ["phantom_005.png", "predictions.json"]


def test_sigint_during_training_leaves_a_usable_run(tmp_path: Path):
    """A real Ctrl-C (SIGINT) to a training process: exit 130, weights intact, no temp files."""
    import signal
    import subprocess
    import sys
    import time

    from medseg.infer import load_trained_model

    data = write_phantom_dataset(tmp_path / "ds", n_train=5, n_test=1, dim=2, shape=(40, 40))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "medseg", "--quiet", "train", str(data), "--out", str(run),
               "--fold", "0"]  # fmt: skip
    process = subprocess.Popen(
        [*command, "--epochs", "10000", "--iterations-per-epoch", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (run / "fold_0" / "log.csv").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    time.sleep(0.5)  # somewhere inside a later epoch
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert not list((run / "fold_0").glob(".*")), "a temporary file was left behind"
    model = load_trained_model(run, device="cpu")
    assert len(model.networks) == 1


def test_evaluate_real_hippocampus_writes_its_files_and_a_report_chromium_shows(
    run_cli, tmp_path: Path, hippocampus_dir: Path, render_in_chromium
) -> None:
    # Predictions: four real label maps, each shifted by one voxel with one slice erased,
    # on the reference's exact grid; scored against the whole labelsTr.
    preds = tmp_path / "preds"
    references = sorted((hippocampus_dir / "labelsTr").glob("*.nii.gz"))[:4]
    for path in references:
        reference = read_image(path)
        labels = np.roll(reference.array[0], 1, axis=0)
        labels[:, :, labels.shape[2] // 2] = 0
        write_image(reference.with_array(labels[None]), preds / path.name)
    out = tmp_path / "scores"
    code, stdout, err = run_cli(
        ["--quiet", "evaluate", preds, hippocampus_dir / "labelsTr", "--only-predicted",
         "--out", out]
    )  # fmt: skip
    assert code == 0, err
    assert "Anterior" in stdout and "Posterior" in stdout
    written = [
        "figures",
        "lesions.csv",
        "metrics.csv",
        "report.html",
        "summary.csv",
        "summary.json",
    ]
    assert sorted(p.name for p in out.iterdir()) == written
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 4
    hd95 = summary["labels"]["Anterior"]["metrics"]["hd95"]
    assert hd95["n"] == 4 and hd95["mean"] >= 1.0  # shifted by at least one 1 mm voxel
    rendered = render_in_chromium(out / "report.html")
    assert rendered["errors"] == []
    # 9 metric plots and the 4 cases (at most 5 worst), drawn on the MRI
    assert len(rendered["images"]) == 9 + 4
    assert all(complete and width > 100 for complete, width, _ in rendered["images"])
