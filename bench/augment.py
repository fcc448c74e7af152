"""Benchmark: medseg's batched augmentation against TorchIO's and MONAI's, patches per second.

Data: single-channel 128^3 float32 patches (smooth random intensities, z-scored) with int64
labels (three classes by threshold), made once and shared by every library in this process.
Output size = input size (128^3) everywhere.

"all on": rotation (±30° about each axis), scaling (0.7-1.4), Gaussian noise (std drawn in
[0, 0.1]), gamma (0.7-1.5, mean and std kept where the library can) and mirroring (each
axis with probability 0.5), every transform applied to every patch (probability 1); labels
by nearest neighbour, zero fill outside.
- medseg: `Augmenter` on batches of --batch patches (one resampling per batch);
- TorchIO: Compose(RandomAffine(isotropic scaling, pad 0), RandomNoise, RandomGamma,
  RandomFlip) on a Subject per patch (SimpleITK resampling, its own threads); also once
  without the label, for reference (it then has half the resampling to do);
- MONAI: Compose(RandAffined(cache_grid), RandGaussianNoised, RandAdjustContrastd
  (retain_stats), RandFlipd per axis) on a dict per patch. MONAI draws the scale per axis.

"default recipe": medseg's defaults (nnU-Net v2's probabilities, blur, brightness, contrast,
low resolution and inverted gamma included), and MONAI's closest chain (rotation and zoom as
two resamplings, each with probability 0.2, as MONAI has no joint per-transform
probabilities). TorchIO lacks multiplicative brightness and contrast, so has no such row.

Also: medseg from the larger patch the trainer draws (`padded_patch_size`: 179^3) to 128^3.

Each figure is the median of --repeats rounds over --patches patches (after one warm-up
batch); the rounds interleave the libraries. The 1-minute load average before and after is printed:
other work on the machine skews the figures.

Usage: python bench/augment.py [--patches 16] [--batch 2] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

SIZE = 128


def make_patches(count: int, size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, s, s, s)`` smooth z-scored images and ``(N, s, s, s)`` labels 0, 1, 2."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(count, 1, 12, 12, 12, generator=g)
    image = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)
    image = (image - image.mean()) / image.std()
    label = (image[:, 0] > 0.3).long() + (image[:, 0] > 1.2).long()
    return image.contiguous(), label.contiguous()


def all_on_settings():
    from medseg.augment import AugmentationSettings

    data = AugmentationSettings().model_dump()
    for value in data.values():
        if isinstance(value, dict) and "probability" in value:
            value["probability"] = 0.0
    for name in ("rotation", "scaling", "noise", "gamma"):
        data[name]["probability"] = 1.0
    data["mirror"]["probability"] = 0.5
    return AugmentationSettings.model_validate(data)


def medseg_runner(settings, image, label, batch):
    from medseg.augment import Augmenter

    augment = Augmenter(settings, dim=3, seed=0)
    out_size = (SIZE,) * 3

    def run(indices: list[int]) -> None:
        # indices are consecutive: slices are views, so no copy is timed
        for start in range(indices[0], indices[-1] + 1, batch):
            end = min(start + batch, indices[-1] + 1)
            augment(image[start:end], label[start:end], output_size=out_size)

    return run


def per_patch(image: torch.Tensor, label: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each patch as its own tensors, ``(1, s, s, s)`` image and label. (TorchIO deep-copies
    its inputs, and a deep copy of a view copies the whole tensor it views.)"""
    return [(image[i].clone(), label[i][None].clone()) for i in range(image.shape[0])]


def torchio_runner(image, label, with_label: bool = True):
    import torchio as tio

    patches = per_patch(image, label)

    transform = tio.Compose(
        [
            tio.RandomAffine(scales=(0.7, 1.4), degrees=30, isotropic=True, default_pad_value=0),
            tio.RandomNoise(std=(0, 0.1)),
            tio.RandomGamma(log_gamma=(math.log(0.7), math.log(1.5))),
            tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5),
        ]
    )

    def run(indices: list[int]) -> None:
        for i in indices:
            one, one_label = patches[i]
            images = {"image": tio.ScalarImage(tensor=one)}
            if with_label:
                images["label"] = tio.LabelMap(tensor=one_label)
            transform(tio.Subject(**images))

    return run


def monai_runner(image, label, recipe: str):
    import monai.transforms as mt

    patches = per_patch(image, label)
    keys, both = ["image"], ["image", "label"]
    affine = dict(mode=("bilinear", "nearest"), padding_mode="zeros")
    flips = [mt.RandFlipd(both, prob=0.5, spatial_axis=a) for a in range(3)]
    turn = (-math.pi / 6, math.pi / 6)
    if recipe == "all on":
        chain = [
            mt.RandAffined(both, spatial_size=(SIZE,) * 3, prob=1.0, rotate_range=(turn,) * 3,
                           scale_range=((-0.3, 0.4),) * 3, cache_grid=True, **affine),
            mt.RandGaussianNoised(keys, prob=1.0, std=0.1),
            mt.RandAdjustContrastd(keys, prob=1.0, gamma=(0.7, 1.5), retain_stats=True),
            *flips,
        ]  # fmt: skip
    else:  # medseg's default recipe, transform by transform
        chain = [
            mt.RandRotated(both, range_x=turn, range_y=turn, range_z=turn, prob=0.2,
                           mode=("bilinear", "nearest"), padding_mode="zeros"),
            mt.RandZoomd(both, prob=0.2, min_zoom=1 / 1.4, max_zoom=1 / 0.7,
                         mode=("trilinear", "nearest"), padding_mode="constant"),
            mt.RandGaussianNoised(keys, prob=0.1, std=0.1),
            mt.RandGaussianSmoothd(keys, sigma_x=(0.5, 1), sigma_y=(0.5, 1), sigma_z=(0.5, 1),
                                   prob=0.2 * 0.5),
            mt.RandScaleIntensityd(keys, factors=0.25, prob=0.15),
            mt.RandScaleIntensityFixedMeand(keys, factors=0.25, preserve_range=True, prob=0.15),
            mt.RandSimulateLowResolutiond(keys, prob=0.25 * 0.5, zoom_range=(0.5, 1.0)),
            mt.RandAdjustContrastd(keys, prob=0.1, gamma=(0.7, 1.5), invert_image=True,
                                   retain_stats=True),
            mt.RandAdjustContrastd(keys, prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
            *flips,
        ]  # fmt: skip
    transform = mt.Compose(chain)
    transform.set_random_state(seed=0)

    def run(indices: list[int]) -> None:
        for i in indices:
            one, one_label = patches[i]
            transform({"image": one, "label": one_label})

    return run


def timed(run, count: int) -> float:
    """Seconds for one pass over ``count`` patches."""
    start = time.perf_counter()
    run(list(range(count)))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-peers", action="store_true", help="time medseg only")
    parser.add_argument(
        "--threads", type=int, help="threads for torch and SimpleITK (default: torch's default)"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        import SimpleITK as sitk

        torch.set_num_threads(args.threads)
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)

    import monai
    import torchio

    import medseg
    from medseg.augment import AugmentationSettings, padded_patch_size

    load_before = os.getloadavg()[0]
    image, label = make_patches(args.patches, SIZE)
    print(f"{args.patches} patches of {SIZE}^3, 1 channel, labels 0-2; medseg batches of "
          f"{args.batch}; median of {args.repeats} rounds")  # fmt: skip
    print(f"medseg {medseg.__version__}, TorchIO {torchio.__version__}, MONAI "
          f"{monai.__version__}, torch {torch.__version__}, torch threads "
          f"{torch.get_num_threads()}, load average {load_before:.2f}")  # fmt: skip
    n, r, b = args.patches, args.repeats, args.batch

    padded = padded_patch_size([SIZE] * 3, AugmentationSettings())
    big_image, big_label = make_patches(max(b, 4), padded[0], seed=1)
    big_name = f"medseg all on, from {padded[0]}^3"
    runs = {  # name: (runner, patches per pass, warm-up patches)
        "medseg all on": (medseg_runner(all_on_settings(), image, label, b), n, b),
        "medseg default": (medseg_runner(AugmentationSettings(), image, label, b), n, b),
        big_name: (medseg_runner(all_on_settings(), big_image, big_label, b), len(big_image), b),
    }
    if not args.skip_peers:
        runs["TorchIO all on"] = (torchio_runner(image, label), n, 1)
        runs["TorchIO all on, image only"] = (torchio_runner(image, label, False), n, 1)
        runs["MONAI all on"] = (monai_runner(image, label, "all on"), n, 1)
        runs["MONAI default"] = (monai_runner(image, label, "default"), n, 1)
    for run, _, warm_up in runs.values():
        run(list(range(warm_up)))
    # Rounds interleave the libraries, so that other work on the machine, if any, slows
    # them alike. The median round counts: with the default recipe's probabilities each
    # round draws different work, and the best round would be the luckiest.
    seconds = {name: [] for name in runs}
    for _ in range(r):
        for name, (run, count, _) in runs.items():
            seconds[name].append(timed(run, count) / count)
    rates = {name: 1 / statistics.median(times) for name, times in seconds.items()}

    print("\npatches per second (median round; slowest and fastest round):")
    for name, rate in rates.items():
        low, high = 1 / max(seconds[name]), 1 / min(seconds[name])
        print(f"  {name:32s} {rate:7.2f}   ({low:.2f}-{high:.2f})")
    if not args.skip_peers:
        peer = max(rates["TorchIO all on"], rates["MONAI all on"])
        print(f"\nall on: medseg / faster peer = {rates['medseg all on'] / peer:.1f}x "
              f"(TorchIO {rates['medseg all on'] / rates['TorchIO all on']:.1f}x, MONAI "
              f"{rates['medseg all on'] / rates['MONAI all on']:.1f}x)")  # fmt: skip
        print(f"default recipe: medseg / MONAI = "
              f"{rates['medseg default'] / rates['MONAI default']:.1f}x")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
