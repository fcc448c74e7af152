"""Augmentation settings: parameter syntax, validation, defaults and drawing."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from medseg.augment import AugmentationSettings, Distribution, draw
from medseg.augment.settings import bounds, split_uniform


def test_defaults_follow_nnunet_v2() -> None:
    s = AugmentationSettings()
    assert s.enabled
    assert (s.rotation.probability, s.rotation.angle_degrees) == (0.2, (-30.0, 30.0))
    assert (s.scaling.probability, s.scaling.factor) == (0.2, (0.7, 1.4))
    assert (s.noise.probability, s.noise.std) == (0.1, (0.0, 0.1))
    assert (s.blur.probability, s.blur.per_channel_probability, s.blur.sigma) == (
        0.2,
        0.5,
        (0.5, 1.0),
    )
    assert s.brightness.probability == s.contrast.probability == 0.15
    assert s.brightness.factor == split_uniform(0.75, 1.25)
    assert (s.low_resolution.probability, s.low_resolution.zoom) == (0.25, (0.5, 1.0))
    assert (s.gamma.probability, s.gamma.invert) == (0.3, False)
    assert (s.inverted_gamma.probability, s.inverted_gamma.invert) == (0.1, True)
    assert s.gamma.gamma == split_uniform(0.7, 1.5)
    assert s.mirror.probability == 0.5
    assert s.elastic.probability == 0.0 and s.translation.probability == 0.0


def test_json_round_trip_and_nested_overrides() -> None:
    s = AugmentationSettings()
    again = AugmentationSettings.model_validate(json.loads(s.model_dump_json()))
    assert again == s
    data = s.model_dump()
    data["enabled"] = False
    data["rotation"]["probability"] = 0.5
    data["rotation"]["angle_degrees"] = [-10, 10]
    data["noise"]["std"] = 0.05
    data["gamma"]["gamma"] = {"distribution": "log_uniform", "low": 0.5, "high": 2}
    changed = AugmentationSettings.model_validate(data)
    assert not changed.enabled
    assert changed.rotation.probability == 0.5
    assert changed.rotation.angle_degrees == (-10.0, 10.0)
    assert changed.noise.std == 0.05
    assert changed.gamma.gamma == Distribution(distribution="log_uniform", low=0.5, high=2)


@pytest.mark.parametrize(
    "data",
    [
        {"rotation": {"probability": 1.5}},
        {"rotation": {"angle_degrees": [30, -30]}},
        {"rotation": {"angle_degrees": [1, 2, 3]}},
        {"rotation": {"angel_degrees": [0, 1]}},  # a typo is not silently ignored
        {"noise": {"std": {"distribution": "normal", "mean": 0}}},
        {"noise": {"std": {"distribution": "normal", "mean": 0, "std": -1}}},
        {"gamma": {"gamma": {"distribution": "uniform", "low": 2, "high": 1}}},
        {"gamma": {"gamma": {"distribution": "log_uniform", "low": 0, "high": 1}}},
        {"gamma": {"gamma": {"distribution": "split_uniform", "low": 1.2, "high": 2}}},
        {"gamma": {"gamma": {"distribution": "cauchy", "low": 1, "high": 2}}},
        {"scaling": {"factor": "big"}},
        {"anisotropy_threshold": 1.0},
    ],
)
def test_invalid_settings_are_refused(data: dict) -> None:
    with pytest.raises(ValidationError):
        AugmentationSettings.model_validate(data)


def test_draw_fixed_range_and_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    n = (20000,)
    assert torch.equal(draw(0.5, n, g), torch.full(n, 0.5, dtype=torch.float64))
    uniform = draw((2.0, 4.0), n, g)
    assert uniform.min() >= 2 and uniform.max() <= 4 and abs(float(uniform.mean()) - 3) < 0.03

    normal = draw(Distribution(distribution="normal", mean=1, std=0.1), n, g)
    assert abs(float(normal.mean()) - 1) < 0.005 and abs(float(normal.std()) - 0.1) < 0.005
    clipped = draw(Distribution(distribution="normal", mean=0, std=1, low=-0.5, high=0.5), n, g)
    assert clipped.min() == -0.5 and clipped.max() == 0.5

    log = draw(Distribution(distribution="log_uniform", low=0.5, high=2), n, g)
    assert log.min() >= 0.5 and log.max() <= 2
    # log-uniform: as many draws below 1 as above
    assert abs(float((log < 1).double().mean()) - 0.5) < 0.02

    split = draw(split_uniform(0.7, 1.5), n, g)
    assert split.min() >= 0.7 and split.max() <= 1.5
    assert abs(float((split < 1).double().mean()) - 0.5) < 0.02  # plain uniform: 0.375


def test_bounds() -> None:
    assert bounds(2) == (2.0, 2.0)
    assert bounds(split_uniform(0.7, 1.5)) == (0.7, 1.5)
    assert bounds(Distribution(distribution="normal", mean=0, std=1, high=2)) == (-3.0, 2.0)


def test_plan_overrides_reach_the_augmentation_settings() -> None:
    """What ``medseg train ... --set augmentation.X=Y`` does to a plan."""
    from medseg.errors import ConfigError
    from medseg.train import apply_overrides, auto_config

    plan = auto_config(
        shapes=[(32, 32)], spacings=[(1, 1)], in_channels=1, label_values=[0, 1],
        label_names=["bg", "fg"], channel_names=["EM"], file_ending=".png",
    )  # fmt: skip
    changed = apply_overrides(
        plan,
        {
            "augmentation.enabled": False,
            "augmentation.rotation.probability": 0.5,
            "augmentation.rotation.angle_degrees": [-15, 15],
            "augmentation.gamma.gamma.low": 0.5,
            "augmentation.noise.std": {"distribution": "normal", "mean": 0.05, "std": 0.01},
        },
    )
    a = changed.augmentation
    assert not a.enabled and a.rotation.probability == 0.5
    assert a.rotation.angle_degrees == (-15.0, 15.0)
    assert a.gamma.gamma == split_uniform(0.5, 1.5)
    assert a.noise.std == Distribution(distribution="normal", mean=0.05, std=0.01)
    with pytest.raises(ConfigError, match="probability"):
        apply_overrides(plan, {"augmentation.rotation.probability": 2})
    with pytest.raises(ConfigError, match="no setting"):
        apply_overrides(plan, {"augmentation.rotation.chance": 0.5})
