"""Shared fixtures: real test data, tiny phantom datasets, run folders and a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from medseg.cli import main
from medseg.datasets.phantom import LABELS, write_phantom_dataset
from medseg.io import Image, spacing_affine, write_image

REPO_ROOT = Path(__file__).resolve().parents[1]
PHANTOM_SHAPE_3D = (24, 24, 8)
PHANTOM_SHAPE_2D = (32, 32)

CliRunner = Callable[[Sequence[object]], tuple[int, str, str]]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``./run test`` starts a worker per core), a worker computes on its
    share of the cores, and so do the commands it starts: the threads never outnumber them."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        from medseg.parallel import available_cores

        threads = max(1, available_cores() // int(workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real test data (``$MEDSEG_TEST_DATA``, default ``../shared/data``)."""
    root = Path(os.environ.get("MEDSEG_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not root.is_dir():
        pytest.skip(f"real test data not found at {root} (set MEDSEG_TEST_DATA)")
    return root


def _data_folder(shared_data: Path, name: str) -> Path:
    folder = shared_data / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


@pytest.fixture(scope="session")
def hippocampus_dir(shared_data: Path) -> Path:
    """The real MSD Hippocampus dataset (nnU-Net v2 raw layout, NIfTI)."""
    return _data_folder(shared_data, "Dataset004_Hippocampus")


@pytest.fixture(scope="session")
def isbi_dir(shared_data: Path) -> Path:
    """The real ISBI 2012 EM dataset (nnU-Net v2 raw layout, PNG)."""
    return _data_folder(shared_data, "Dataset001_ISBI2012EM")


@pytest.fixture(scope="session")
def dicom_seg_dir(shared_data: Path) -> Path:
    """Real DICOM-SEG and RTSTRUCT material with the series they reference (see its
    SOURCE.md): a 3-slice 512² CT with two dcmqi SEGs, a CT phantom with an RTSTRUCT, a
    16² CT series with highdicom SEGs."""
    return _data_folder(shared_data, "dicom_seg_rtstruct")


@pytest.fixture
def dicom_studies(dicom_seg_dir: Path, tmp_path: Path) -> Path:
    """A folder of two DICOM studies: "a", the dcmqi CT with its liver SEG beside the slices,
    and "b", the rt-utils CT phantom in the sub-folder "ct" with its RTSTRUCT one level up."""
    root = tmp_path / "studies"
    shutil.copytree(dicom_seg_dir / "dcmqi_ct3slice", root / "a")
    shutil.copy(dicom_seg_dir / "dcmqi_seg/liver.dcm", root / "a" / "liver.dcm")
    (root / "b" / "ct").mkdir(parents=True)
    for name in ("ct_1.dcm", "ct_2.dcm"):
        shutil.copy(dicom_seg_dir / "rtutils_ct_rtstruct" / name, root / "b" / "ct" / name)
    shutil.copy(dicom_seg_dir / "rtutils_ct_rtstruct/rt.dcm", root / "b" / "rt.dcm")
    return root


@pytest.fixture(scope="session")
def mni_dir(shared_data: Path) -> Path:
    """The MNI152 template folder (NIfTI)."""
    return _data_folder(shared_data, "mni152")


@pytest.fixture(scope="session")
def dicom_study_dir(shared_data: Path) -> Path:
    """The real PGBM-008 DICOM MR study: one subfolder per series (T1 pre/post, FLAIR, T2,
    tumour mask), 22 slices of 320 x 280 each."""
    root = _data_folder(shared_data, "dicom_mr_study")
    studies = sorted(p for p in root.glob("PGBM-008/*") if p.is_dir() and any(p.iterdir()))
    if not studies:
        pytest.skip(f"no study folder in {root}")
    return studies[0]


@pytest.fixture(scope="session")
def nrrd_dir(shared_data: Path) -> Path:
    """Real NRRD images and tumour masks (PyRadiomics test cases)."""
    folder = _data_folder(shared_data, "nrrd_mr_tumour") / "data"
    if not any(folder.glob("*.nrrd")):
        pytest.skip(f"no NRRD files in {folder}")
    return folder


@pytest.fixture
def phantom3d(tmp_path: Path) -> Path:
    """A tiny valid 3D phantom dataset: 3 training and 1 test case of 24x24x8 voxels."""
    return write_phantom_dataset(
        tmp_path / "Dataset900_Phantom3D", n_train=3, n_test=1, dim=3, shape=PHANTOM_SHAPE_3D
    )


@pytest.fixture
def phantom2d(tmp_path: Path) -> Path:
    """A tiny valid 2D phantom dataset (PNG): 3 training and 1 test case of 32x32 pixels."""
    return write_phantom_dataset(
        tmp_path / "Dataset901_Phantom2D", n_train=3, n_test=1, dim=2, shape=PHANTOM_SHAPE_2D
    )


def write_untrained_run(run_dir: Path, target_spacing: Sequence[float] | None = None) -> Path:
    """Write a run folder with a valid plan.json (for 3D phantom cases, ``.nii.gz``) and
    freshly initialised (untrained, seeded) weights for fold 0; return it. With
    ``target_spacing`` the plan resamples to it (z-score normalisation), else it predicts on
    each image's grid."""
    import torch

    from medseg.preprocess import ChannelNormalization, Preprocessing
    from medseg.train import BEST_WEIGHTS, auto_config, network_for, save_weights

    ZSCORE = ChannelNormalization(scheme="zscore")

    run_dir.mkdir(parents=True)
    config = auto_config(
        shapes=[PHANTOM_SHAPE_3D],
        spacings=[(0.8, 0.8, 2.5)],
        in_channels=1,
        label_values=sorted(LABELS.values()),
        label_names=sorted(LABELS, key=LABELS.__getitem__),
        channel_names=["CT"],
        file_ending=".nii.gz",
    )
    if target_spacing is not None:
        preprocessing = {"target_spacing": list(target_spacing), "normalization": [ZSCORE]}
        config = config.model_copy(update={"preprocessing": Preprocessing(**preprocessing)})
    config.save(run_dir)
    with torch.random.fork_rng():  # the same weights whatever ran before in this process
        torch.manual_seed(0)
        network = network_for(config)
    save_weights(network, run_dir / "fold_0" / BEST_WEIGHTS)
    return run_dir


@pytest.fixture
def untrained_run_dir(tmp_path: Path) -> Path:
    """A run folder with a valid plan.json and freshly initialised (untrained) weights.

    Nothing is trained: the network is built and its initial weights saved, which is all
    `load_trained_model` needs to get past its own checks.
    """
    return write_untrained_run(tmp_path / "run_with_weights")


@pytest.fixture(scope="session")
def untrained_run_writer() -> Callable[..., Path]:
    """`write_untrained_run`, for session-scoped fixtures."""
    return write_untrained_run


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Call ``medseg.cli.main(args)``; return ``(exit_code, stdout, stderr)``.

    argparse's own exits (``--help``, ``--version``, usage errors) raise SystemExit; they are
    turned into exit codes like the console script would.
    """

    def run(args: Sequence[object]) -> tuple[int, str, str]:
        capsys.readouterr()  # drop anything printed before the call
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium)")


@pytest.fixture
def render_in_chromium() -> Callable[..., dict]:
    """Open an HTML file in the system's headless Chromium (driven by Playwright); return
    ``{"errors": [...], "images": [[complete, naturalWidth, alt], ...], "title": str,
    "result": ...}``, where ``result`` is what the optional ``script`` (a JavaScript
    function body run in the loaded page) returns."""
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = _chromium()

    def render(path: Path, script: str | None = None) -> dict:
        errors: list[str] = []
        result = None
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
                page.goto(path.resolve().as_uri(), wait_until="load")
                images = page.evaluate(
                    "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
                )
                title = page.title()
                if script is not None:
                    result = page.evaluate(f"() => {{ {script} }}")
            finally:
                browser.close()
        return {"errors": errors, "images": images, "title": title, "result": result}

    return render


HIPPOCAMPUS_TRAIN = ["hippocampus_001", "hippocampus_004", "hippocampus_007", "hippocampus_008",
                     "hippocampus_011", "hippocampus_014"]  # fmt: skip
HIPPOCAMPUS_SCANS = ["hippocampus_015", "hippocampus_017", "hippocampus_019"]


@pytest.fixture(scope="session")
def hippocampus_mini_run(
    hippocampus_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A run trained for 20 steps on six real Hippocampus cases, and a folder of three others
    to predict."""
    from medseg.train import TrainOptions, train_run

    root = tmp_path_factory.mktemp("hippocampus_mini")
    data = root / "Dataset004_Hippocampus"
    for folder in ("imagesTr", "labelsTr", "scans"):
        (data / folder).mkdir(parents=True)
    for case in HIPPOCAMPUS_TRAIN:
        shutil.copy(hippocampus_dir / f"imagesTr/{case}_0000.nii.gz", data / "imagesTr")
        shutil.copy(hippocampus_dir / f"labelsTr/{case}.nii.gz", data / "labelsTr")
    for case in HIPPOCAMPUS_SCANS:
        shutil.copy(hippocampus_dir / f"imagesTr/{case}_0000.nii.gz", data / "scans")
    spec = json.loads((hippocampus_dir / "dataset.json").read_text())
    (data / "dataset.json").write_text(json.dumps({**spec, "numTraining": 6}))
    options = TrainOptions(epochs=2, iterations_per_epoch=10, quiet=True)
    train_run(data, root / "run", options, fold="all")
    return root / "run", data / "scans"


@pytest.fixture(scope="session")
def coarse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run whose plan works at 3 x 3 x 6.5 mm: predicting a whole MR series is quick."""
    from medseg.datasets.phantom import write_phantom_dataset
    from medseg.train import TrainOptions, train_run

    root = tmp_path_factory.mktemp("coarse")
    data = write_phantom_dataset(root / "ds", n_train=5, n_test=1, dim=3, shape=(32, 32, 10))
    settings = {"preprocessing.target_spacing": [3.0, 3.0, 6.5]}
    train_run(
        data,
        root / "run",
        TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True, settings=settings),
    )
    return root / "run"


SCORED_AFFINE = spacing_affine((1.0, 1.0, 2.0))


def write_scored_dataset(
    root: Path, cases: int = 7, missed: Callable[[int], int] = lambda k: k, name: str = "preds"
) -> tuple[Path, Path, Path]:
    """images, labels and a predictions folder ``name`` in the nnU-Net layout; case k's
    prediction of label 1 misses ``missed(k)`` voxel layers of the reference box (label 2
    is predicted exactly), so with the default the worst cases are the last ones."""
    images, labels, preds = root / "imagesTr", root / "labelsTr", root / name
    rng = np.random.default_rng(0)
    for k in range(cases):
        reference = np.zeros((20, 20, 6), np.uint8)
        reference[4:14, 4:14, 1:5] = 1
        reference[15:18, 15:18, 2:4] = 2
        prediction = reference.copy()
        prediction[4 : 4 + missed(k), 4:14, 1:5] = 0
        image = rng.normal(size=reference.shape).astype(np.float32) + 3 * reference
        write_image(Image(image[None], SCORED_AFFINE), images / f"case_{k}_0000.nii.gz")
        write_image(Image(reference[None], SCORED_AFFINE), labels / f"case_{k}.nii.gz")
        write_image(Image(prediction[None], SCORED_AFFINE), preds / f"case_{k}.nii.gz")
    return images, labels, preds


@pytest.fixture
def scored_dataset() -> Callable[..., tuple[Path, Path, Path]]:
    """`write_scored_dataset`."""
    return write_scored_dataset
