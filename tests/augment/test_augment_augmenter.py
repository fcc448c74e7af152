"""The Augmenter: shapes, seeding, resuming, the disabled switch and bad input."""

from __future__ import annotations

import io

import pytest
import torch

from medseg.augment import AugmentationSettings, Augmenter


def everything_likely() -> AugmentationSettings:
    """Every transform on with probability 1 (elastic and translation too)."""
    data = AugmentationSettings().model_dump()
    for value in data.values():
        if isinstance(value, dict) and "probability" in value:
            value["probability"] = 1.0
    return AugmentationSettings.model_validate(data)


def batch(dim: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = (30, 28, 12) if dim == 3 else (40, 36)
    return torch.rand(3, 2, *size, generator=g), torch.randint(0, 3, (3, *size), generator=g)


@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("settings", [AugmentationSettings(), everything_likely()])
def test_shapes_types_and_untouched_inputs(dim: int, settings: AugmentationSettings) -> None:
    image, target = batch(dim)
    before = image.clone(), target.clone()
    out_size = (24, 20, 8) if dim == 3 else (32, 30)
    augment = Augmenter(settings, dim=dim, seed=0)
    for _ in range(2):
        out, out_target = augment(image, target, output_size=out_size)
        assert out.shape == (3, 2, *out_size) and out.dtype == torch.float32
        assert out_target.shape == (3, *out_size) and out_target.dtype == torch.int64
        assert bool(torch.isfinite(out).all())
    assert torch.equal(image, before[0]) and torch.equal(target, before[1])
    same, same_target = augment(image, target)  # no output size: the input's
    assert same.shape == image.shape and same_target.shape == target.shape


@pytest.mark.parametrize("dim", [2, 3])
def test_same_seed_same_output_other_seed_other_output(dim: int) -> None:
    image, target = batch(dim)
    settings = everything_likely()
    first = Augmenter(settings, dim=dim, seed=7)(image, target)
    second = Augmenter(settings, dim=dim, seed=7)(image, target)
    other = Augmenter(settings, dim=dim, seed=8)(image, target)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])


def test_state_dict_round_trip_continues_the_sequence() -> None:
    image, target = batch(3)
    settings = everything_likely()
    augment = Augmenter(settings, dim=3, seed=5)
    augment(image, target)
    buffer = io.BytesIO()
    torch.save(augment.state_dict(), buffer)
    expected = [augment(image, target) for _ in range(2)]

    buffer.seek(0)
    resumed = Augmenter(settings, dim=3, seed=999)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for want in expected:
        got = resumed(image, target)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_state_of_another_version_is_refused() -> None:
    augment = Augmenter(AugmentationSettings(), dim=2)
    with pytest.raises(ValueError, match="version"):
        augment.load_state_dict({"version": 99, "generator": torch.Generator().get_state()})


@pytest.mark.parametrize("dim", [2, 3])
def test_disabled_is_a_central_crop(dim: int) -> None:
    image, target = batch(dim)
    settings = everything_likely().model_copy(update={"enabled": False})
    out_size = (24, 20, 8) if dim == 3 else (32, 30)
    out, out_target = Augmenter(settings, dim=dim, seed=0)(image, target, out_size)
    crop = tuple(slice((s - o) // 2, (s - o) // 2 + o) for s, o in zip(image.shape[2:], out_size))
    assert torch.equal(out, image[(..., *crop)]) and torch.equal(out_target, target[(..., *crop)])
    out, out_target = Augmenter(settings, dim=dim)(image, target)
    assert torch.equal(out, image) and torch.equal(out_target, target)
    out.add_(1)  # a copy, not the caller's tensor
    assert not torch.equal(out, image)


def test_every_probability_zero_is_a_central_crop_too() -> None:
    data = AugmentationSettings().model_dump()
    for value in data.values():
        if isinstance(value, dict) and "probability" in value:
            value["probability"] = 0.0
    image, target = batch(3)
    out, out_target = Augmenter(AugmentationSettings.model_validate(data), dim=3)(
        image, target, (20, 20, 10)
    )
    assert torch.equal(out, image[:, :, 5:25, 4:24, 1:11])
    assert torch.equal(out_target, target[:, 5:25, 4:24, 1:11])


def test_bad_input_is_refused() -> None:
    augment = Augmenter(AugmentationSettings(), dim=3)
    image, target = batch(3)
    with pytest.raises(ValueError, match="3D"):
        augment(image[:, 0], target)
    with pytest.raises(ValueError, match="target shape"):
        augment(image, target[:, :-1])
    with pytest.raises(ValueError, match="does not fit"):
        augment(image, target, (40, 20, 8))
    with pytest.raises(ValueError, match="spacing"):
        Augmenter(AugmentationSettings(), dim=3, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="mirror axes"):
        settings = AugmentationSettings.model_validate({"mirror": {"axes": [0, 3]}})
        Augmenter(settings, dim=3)
