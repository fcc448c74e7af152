"""Benchmark: medseg's affine registration against SimpleITK's on the same known-affine task.

The MNI152 T1 template at 2 mm is moved by a known affine (rotations of 4-6 degrees, 3-6 mm,
scaling of 2-4 %); each library registers it back, in one process, on the same arrays:
- medseg: `register_images(method="affine")` (NCC, levels of 8, 4, 2 mm, PyTorch);
- SimpleITK: `ImageRegistrationMethod` with an `AffineTransform` initialised at the centres of
  mass (`CenteredTransformInitializer`, MOMENTS), correlation metric, 20 % random sampling,
  regular-step gradient descent with physical-shift scaling, shrink factors 4, 2, 1 and
  smoothing sigmas 2, 1, 0 voxels.
Error: the largest distance (mm) between where the found and the true transform send 1,000
random points inside the brain. Prints both times and the ratio; medseg's is its second call
(the first also pays a one-time import of torch's optimiser machinery, printed too).

Usage: python bench/register.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from medseg.io import Image, read_image
from medseg.register import Transform, affine_from_parameters, warp_image
from medseg.register.register import register_images

MNI = Path(__file__).resolve().parents[2] / "shared" / "data" / "mni152"
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


def main() -> None:
    t1 = read_image(MNI / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    data = ndimage.zoom(t1.array[0].astype(np.float32), 0.5, order=1)
    affine = t1.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
    fixed = Image(data[None], affine)
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


if __name__ == "__main__":
    main()
