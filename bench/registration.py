"""Benchmark: medseg's registration against SimpleITK (and ANTsPy when installed), one process,
same inputs, times and ratios printed.

Parts (``--part``, several allowed; default: mni hippocampus):

- ``affine``: the MNI152 T1 at 2 mm moved by a known affine (rotations of 4-6 degrees, 3-6 mm,
  scaling of 2-4 %); medseg's `register_images(method="affine")` against SimpleITK's
  `ImageRegistrationMethod` (affine, moments initialiser, correlation, 20 % sampling,
  regular-step gradient descent, shrink 4/2/1, smoothing 2/1/0 voxels). Error: the largest
  distance (mm) between where the found and the true transform send 1,000 brain points.
- ``mni``: the MNI152 T1 at 2 mm with grey/white-matter labels (probability > 50 %) moved by
  ``--cases`` random known transforms, each a smooth displacement (Gaussian-filtered noise,
  up to 7 mm) followed by a random affine (rotations up to 5 degrees, scaling up to 4 %,
  shifts up to 6 mm). Registered back by medseg (affine + deformable, the defaults), by
  SimpleITK (the same affine as above, then diffeomorphic demons on the affinely resampled
  image: 100 iterations, field smoothing 1.5 voxels, histogram matching) and, when ``ants``
  imports, by ANTsPy's ``SyN`` (its defaults, affine included). Scored by the same code
  (`medseg.metrics.score_label`): GM/WM Dice and HD95 after, % of voxels with a non-positive
  Jacobian determinant, and the time of the registration with the warping of the image.
- ``hippocampus``: Dataset004_Hippocampus inter-subject pairs of fold 0's validation cases
  (``--pairs``, each case once), never seen in training. Dice of labels 1 and 2 before (the
  image centres aligned, the starting point of every method), after medseg's classical
  registration (affine + deformable) and after the learned model (trained here on fold 0's
  training pairs for ``--train-minutes``, or given with ``--model``), with and without an
  affine stage first and with 20 refinement steps; time per pair.

Usage: python bench/registration.py [--part affine mni hippocampus] [--cases 10] [--pairs 20]
       [--model RUN_DIR | --train-minutes 10] [--data DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage

from medseg.io import Image, read_image
from medseg.metrics import score_label
from medseg.register import Transform, affine_from_parameters, warp_image, warp_labels
from medseg.register.learned import centre_alignment, load_learned_model
from medseg.register.register import register_images

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MNI_T1 = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk(image: Image) -> sitk.Image:
    out = sitk.GetImageFromArray(np.transpose(image.array[0], (2, 1, 0)).astype(np.float32))
    lps = FLIP @ image.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    out.SetSpacing(tuple(float(s) for s in spacing))
    out.SetDirection(tuple((lps[:3, :3] / spacing).flatten()))
    out.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
    return out


def sitk_affine(fixed: Image, moving: Image) -> np.ndarray:
    """SimpleITK's result as a 4x4 RAS world affine (fixed -> moving points)."""
    f, m = to_sitk(fixed), to_sitk(moving)
    initial = sitk.CenteredTransformInitializer(
        f, m, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsCorrelation()
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, seed=0)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(1.0, 1e-4, 200)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SetInitialTransform(initial, inPlace=False)
    found = sitk.AffineTransform(method.Execute(f, m).GetNthTransform(0))
    matrix = np.array(found.GetMatrix()).reshape(3, 3)
    centre, translation = np.array(found.GetCenter()), np.array(found.GetTranslation())
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + centre - matrix @ centre
    return FLIP @ lps @ FLIP


def mni_2mm(data_dir: Path) -> tuple[Image, Image]:
    """The MNI T1 at 2 mm and its labels (1 grey, 2 white matter: probability > 50 %)."""
    mni = data_dir / "mni152"
    t1 = read_image(mni / MNI_T1)

    def half(name: str) -> np.ndarray:
        return ndimage.zoom(read_image(mni / name).array[0].astype(np.float32), 0.5, order=1)

    labels = np.zeros(half(MNI_T1).shape, np.uint8)
    labels[half(MNI_T1.replace("_t1_", "_gm_")) > 128] = 1
    labels[half(MNI_T1.replace("_t1_", "_wm_")) > 128] = 2
    affine = t1.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = t1.affine[:3, :3] @ np.full(3, 0.5) + t1.affine[:3, 3]
    return Image(half(MNI_T1)[None], affine), Image(labels[None], affine)


def affine_part(data_dir: Path) -> None:
    fixed, _ = mni_2mm(data_dir)
    data, affine = fixed.array[0], fixed.affine
    centre = affine[:3, :3] @ (np.array(data.shape) / 2) + affine[:3, 3]
    truth = affine_from_parameters(
        np.radians([6.0, -4.0, 5.0]), np.array([6.0, -4.0, 3.0]),
        np.array([1.04, 0.97, 1.02]), centre_mm=centre,
    )  # fmt: skip
    moving = warp_image(fixed, fixed, Transform(np.linalg.inv(truth)))
    brain = np.argwhere(data > np.percentile(data, 60))
    picks = brain[np.random.default_rng(0).choice(len(brain), 1000, replace=False)]
    points = picks @ affine[:3, :3].T + affine[:3, 3]

    def error(found: np.ndarray) -> float:
        a = points @ found[:3, :3].T + found[:3, 3]
        b = points @ truth[:3, :3].T + truth[:3, 3]
        return float(np.linalg.norm(a - b, axis=1).max())

    start = time.perf_counter()
    register_images(fixed, moving, method="affine")
    t_cold = time.perf_counter() - start  # the first call also imports torch's optimiser stack
    start = time.perf_counter()
    ours = register_images(fixed, moving, method="affine").transform.affine
    t_ours = time.perf_counter() - start
    start = time.perf_counter()
    theirs = sitk_affine(fixed, moving)
    t_sitk = time.perf_counter() - start
    print(f"MNI T1 at 2 mm {data.shape}, known affine; SimpleITK {sitk.Version_VersionString()}")
    print(f"  medseg affine     {t_ours:6.2f} s   max error {error(ours):6.3f} mm"
          f"   (first call in the process {t_cold:.2f} s)")  # fmt: skip
    print(f"  SimpleITK affine  {t_sitk:6.2f} s   max error {error(theirs):6.3f} mm")
    print(f"  ratio SimpleITK / medseg time {t_sitk / t_ours:5.2f} x")


def random_case(fixed: Image, labels: Image, seed: int) -> tuple[Image, Image]:
    """The template moved by a known smooth displacement and a random affine."""
    rng = np.random.default_rng(seed)
    shape = fixed.spatial_shape
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), 6) for _ in range(3)])
    field *= 7.0 / np.abs(field).max()  # up to 7 mm
    centre = fixed.affine[:3, :3] @ (np.array(shape) / 2) + fixed.affine[:3, 3]
    matrix = affine_from_parameters(
        np.radians(rng.uniform(-5, 5, 3)), rng.uniform(-6, 6, 3), 1 + rng.uniform(-0.04, 0.04, 3),
        centre_mm=centre,
    )  # fmt: skip
    truth = Transform(matrix, field, fixed.affine)
    return warp_image(fixed, fixed, truth), warp_labels(labels, fixed, truth, "nearest")


def scores(reference: Image, warped: Image) -> list[tuple[float, float]]:
    """(Dice, HD95 mm) of labels 1 and 2."""
    out = []
    for value in (1, 2):
        found, _ = score_label(
            reference.array[0] == value, warped.array[0] == value, reference.spacing
        )
        out.append((float(found["dice"]), float(found["hd95"])))
    return out


def sitk_demons(fixed: Image, moving: Image, moving_labels: Image) -> tuple[Image, Image, float]:
    """SimpleITK: affine, then diffeomorphic demons; the warped image and labels, folding %."""
    matrix = sitk_affine(fixed, moving)
    lps = FLIP @ matrix @ FLIP
    affine_tx = sitk.AffineTransform(3)
    affine_tx.SetMatrix(tuple(lps[:3, :3].flatten()))
    affine_tx.SetTranslation(tuple(lps[:3, 3]))
    f, m = to_sitk(fixed), to_sitk(moving)
    resampled = sitk.Resample(m, f, affine_tx, sitk.sitkLinear, 0.0)
    matched = sitk.HistogramMatching(resampled, f, 256, 7, True)
    demons = sitk.DiffeomorphicDemonsRegistrationFilter()
    demons.SetNumberOfIterations(100)
    demons.SetSmoothDisplacementField(True)
    demons.SetStandardDeviations(1.5)
    field = demons.Execute(f, matched)
    jacobian = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field))
    composite = sitk.CompositeTransform([affine_tx, sitk.DisplacementFieldTransform(field)])
    warped = sitk.Resample(m, f, composite, sitk.sitkLinear, 0.0)
    labels = sitk.Resample(to_sitk(moving_labels), f, composite, sitk.sitkNearestNeighbor, 0.0)
    return (
        from_sitk(warped, fixed),
        from_sitk(labels, fixed),
        100 * float(np.mean(jacobian <= 0)),
    )


def from_sitk(image: sitk.Image, grid: Image) -> Image:
    return Image(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))[None], grid.affine)


def ants_syn(fixed: Image, moving: Image, moving_labels: Image, ants) -> tuple[Image, Image, float]:
    """ANTsPy SyN (its defaults, affine stage included); warped image and labels, folding %."""

    def to_ants(image: Image):
        lps = FLIP @ image.affine
        spacing = np.linalg.norm(lps[:3, :3], axis=0)
        return ants.from_numpy(
            np.asarray(image.array[0], np.float32),
            origin=tuple(lps[:3, 3]),
            spacing=tuple(spacing),
            direction=lps[:3, :3] / spacing,
        )

    f, m = to_ants(fixed), to_ants(moving)
    found = ants.registration(f, m, type_of_transform="SyN")
    warped = found["warpedmovout"].numpy()
    labels = ants.apply_transforms(
        f, to_ants(moving_labels), found["fwdtransforms"], interpolator="nearestNeighbor"
    ).numpy()
    jacobian = ants.create_jacobian_determinant_image(f, found["fwdtransforms"][0]).numpy()
    return (
        Image(warped[None], fixed.affine),
        Image(np.rint(labels).astype(np.uint8)[None], fixed.affine),
        100 * float(np.mean(jacobian <= 0)),
    )


def mni_part(data_dir: Path, cases: int) -> None:
    fixed, labels = mni_2mm(data_dir)
    try:
        import ants
    except ImportError:
        ants = None
        print("ANTsPy (antspyx) is not installed: SyN is left out")
    rows: dict[str, list[tuple[float, float, float, float, float, float]]] = {}

    def record(name: str, seconds: float, warped_labels: Image, folding: float) -> None:
        (gm, gm_hd), (wm, wm_hd) = scores(labels, warped_labels)
        rows.setdefault(name, []).append((gm, wm, gm_hd, wm_hd, folding, seconds))

    register_images(fixed, fixed, "affine")  # the process's one-time torch imports
    for seed in range(cases):
        moving, moving_labels = random_case(fixed, labels, seed)
        record("before", 0.0, moving_labels, 0.0)
        start = time.perf_counter()
        ours = register_images(fixed, moving, "deformable", moving_labels=moving_labels)
        assert ours.warped_labels is not None
        record("medseg affine + deformable", time.perf_counter() - start, ours.warped_labels,
               float(ours.metrics["folding_percent"]))  # fmt: skip
        start = time.perf_counter()
        _, warped_labels, folding = sitk_demons(fixed, moving, moving_labels)
        record("SimpleITK affine + demons", time.perf_counter() - start, warped_labels, folding)
        if ants is not None:
            start = time.perf_counter()
            _, warped_labels, folding = ants_syn(fixed, moving, moving_labels, ants)
            record("ANTsPy SyN", time.perf_counter() - start, warped_labels, folding)
        print(f"case {seed}: " + ", ".join(
            f"{name} GM/WM {r[-1][0]:.3f}/{r[-1][1]:.3f}" for name, r in rows.items()
        ), flush=True)  # fmt: skip
    print(f"\nMNI T1 at 2 mm {fixed.spatial_shape}, {cases} random smooth + affine deformations")
    print(f"{'method':28s} {'GM Dice':>8s} {'WM Dice':>8s} {'GM HD95':>8s} {'WM HD95':>8s}"
          f" {'folding %':>10s} {'seconds':>8s}")  # fmt: skip
    for name, values in rows.items():
        m = np.mean(values, axis=0)
        print(
            f"{name:28s} {m[0]:8.3f} {m[1]:8.3f} {m[2]:8.2f} {m[3]:8.2f} {m[4]:10.4f} {m[5]:8.2f}"
        )
    ours_time = np.mean([r[-1] for r in rows["medseg affine + deformable"]])
    for name in rows:
        if name not in ("before", "medseg affine + deformable"):
            peer = np.mean([r[-1] for r in rows[name]])
            print(f"time ratio {name} / medseg: {peer / ours_time:.2f} x")


def hippocampus_part(data_dir: Path, pairs: int, model_dir: Path | None, minutes: float) -> None:
    from medseg.datasets import open_dataset, read_case_image, read_label, train_val_split
    from medseg.register.training import RegistrationTrainingOptions, train_registration

    root = data_dir / "Dataset004_Hippocampus"
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp()) / "model"
        start = time.perf_counter()
        options = RegistrationTrainingOptions(minutes=minutes, quiet=True)
        train_registration(root, model_dir, options)
        seconds = time.perf_counter() - start
        print(f"learned model trained on fold 0's training pairs in {seconds:.0f} s")
    model = load_learned_model(model_dir)
    dataset = open_dataset(root)
    _, val_ids = train_val_split([c.case_id for c in dataset.training], 0)
    ids = val_ids[: 2 * pairs]

    def case(case_id: str) -> tuple[Image, Image]:
        c = dataset.case(case_id)
        image = read_case_image(c)
        label = read_label(c.label_path, image, dataset.spec.label_values)
        return image, Image(label[None], image.affine)

    methods = {
        "classical (affine + deformable)": dict(method="deformable"),
        "learned": dict(method="learned", affine_first=False, model=model),
        "learned + 20 refinement steps": dict(
            method="learned", affine_first=False, model=model, refine_steps=20
        ),
        "affine + learned": dict(method="learned", model=model),
    }
    rows: dict[str, list[tuple[float, float, float]]] = {}
    register_images(case(ids[0])[0], case(ids[1])[0], "affine")  # the one-time torch imports
    for k in range(0, len(ids) - 1, 2):
        (fixed, fixed_labels), (moving, moving_labels) = case(ids[k]), case(ids[k + 1])
        centred = warp_labels(moving_labels, fixed, Transform(centre_alignment(fixed, moving)))
        (d1, _), (d2, _) = scores(fixed_labels, centred)
        rows.setdefault("before (centres aligned)", []).append((d1, d2, 0.0))
        for name, options in methods.items():
            start = time.perf_counter()
            result = register_images(fixed, moving, moving_labels=moving_labels, **options)
            seconds = time.perf_counter() - start
            assert result.warped_labels is not None
            (d1, _), (d2, _) = scores(fixed_labels, result.warped_labels)
            rows.setdefault(name, []).append((d1, d2, seconds))
    print(f"\nDataset004_Hippocampus, {len(ids) // 2} pairs of fold 0's validation cases")
    print(f"{'method':34s} {'Dice 1':>7s} {'Dice 2':>7s} {'s/pair':>7s}")
    for name, values in rows.items():
        m = np.mean(values, axis=0)
        print(f"{name:34s} {m[0]:7.3f} {m[1]:7.3f} {m[2]:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", nargs="+", choices=["affine", "mni", "hippocampus"],
        default=["mni", "hippocampus"],
    )  # fmt: skip
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--model", type=Path, help="a trained registration model folder")
    parser.add_argument("--train-minutes", type=float, default=10.0)
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, SimpleITK {sitk.Version_VersionString()}")
    if "affine" in args.part:
        affine_part(args.data)
    if "mni" in args.part:
        mni_part(args.data, args.cases)
    if "hippocampus" in args.part:
        hippocampus_part(args.data, args.pairs, args.model, args.train_minutes)


if __name__ == "__main__":
    main()
