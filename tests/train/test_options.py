import pytest

from medseg.errors import ConfigError
from medseg.runs import Plan
from medseg.train import PlanOptions, TrainOptions, configure_plan


def _plan() -> Plan:
    return Plan(
        in_channels=1, label_values=[0, 1], label_names=["bg", "fg"], channel_names=["CT"],
        file_ending=".nii.gz", data_dim=3, dim=3, median_spacing=[1.0, 1.0, 1.0],
        median_shape=[32, 32, 32], features=[16, 32], strides=[[1, 1, 1], [2, 2, 2]],
        kernel_sizes=[[3, 3, 3], [3, 3, 3]], patch_size=[32, 32, 32], batch_size=2,
        learning_rate=0.01, epochs=100,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"epochs": 2, "minutes": 1.0}, "either --epochs or --minutes"),
        ({"fine_tune_lr": 1e-3}, "--fine-tune-lr needs --init-from"),
        ({"freeze_encoder": True}, "--freeze-encoder needs --init-from"),
        ({"minutes": 1.0, "deterministic": True}, "--deterministic needs --epochs"),
    ],
)
def test_options_that_do_not_go_together_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        TrainOptions(**fields)


def test_overrides_hold_only_what_was_given():
    assert PlanOptions().overrides == {}
    options = TrainOptions(patch_size=(16, 24, 8), init_from="run", fine_tune_lr=1e-4)
    assert options.overrides == {"patch_size": [16, 24, 8], "learning_rate": 1e-4}


def test_configure_applies_budget_recipe_and_settings_once():
    options = TrainOptions(
        minutes=5, seed=3, optimizer="adamw", settings={"augmentation.enabled": False}
    )
    plan = configure_plan(_plan(), options)
    assert (plan.epochs, plan.minutes, plan.seed) == (None, 5, 3)
    # an optimiser without a learning rate brings its own default
    assert plan.optimizer == "adamw" and plan.learning_rate == pytest.approx(3e-3)
    assert plan.augmentation.enabled is False
    assert configure_plan(plan, options) == plan


def test_settings_win_over_options():
    options = PlanOptions(batch_size=4, settings={"batch_size": 6})
    assert configure_plan(_plan(), options).batch_size == 6
