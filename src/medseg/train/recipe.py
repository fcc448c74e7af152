"""The training recipe (optimiser, learning rate, augmentation) for the steps a budget affords."""

from __future__ import annotations

from medseg.runs import Decision, Plan, apply_overrides

#: nnU-Net's recipe (SGD with momentum 0.99, mirroring, full rotation) is made for ~250,000
#: steps on a GPU. Below this many planned steps medseg uses its short recipe, which won or
#: tied at every length measured: nnU-Net's cost 0.05 Dice at 800 steps on Hippocampus, tied
#: at 10,000 on fold 0, and cost 0.035 and 0.016 (two seeds) at 16,000 on a 2D slices set
#: (docs/train.md#the-recipe). Where nnU-Net's recipe starts to pay is not measured: 50,000,
#: three times the longest measurement, is a guess that keeps it for trainings of its kind.
FULL_RECIPE_STEPS = 50_000
#: Short trainings rotate 2D images by at most this many degrees (nnU-Net: 180).
SHORT_IN_PLANE_DEGREES = 30.0
#: Short trainings deform this share of patches elastically (nnU-Net v2: never); measured in
#: docs/augment.md#elastic-in-short-trainings.
SHORT_ELASTIC_PROBABILITY = 0.2
#: Short trainings validate and save a moving average of the weights with this decay (its
#: ramp: medseg.train.averaging); measured in docs/train.md#weight-averaging.
SHORT_EMA_DECAY = 0.999

_AUGMENTATION = (
    "nnU-Net's augmentation, which gained 0.011 Dice with 40 Hippocampus cases in 1,000 steps "
    "and cost 0.004 (within seed noise) with 160 "
    "(docs/augment.md#what-each-transform-costs-or-gains)"
)
_SHORT_AUGMENTATION = (
    f"{_AUGMENTATION}, without mirroring and with 2D rotations within "
    f"{SHORT_IN_PLANE_DEGREES:g} degrees: medical images arrive the right way round, and "
    "learning every mirrored and upturned view too cost 0.035 Dice on Hippocampus (3D, 1,000 "
    "steps) and 0.16 on a 2D slices set (1,800 steps), where the short recipe scored 0.016 "
    "above no augmentation (one seed; docs/augment.md#short-trainings); elastic deformation "
    f"for {SHORT_ELASTIC_PROBABILITY:g} of the patches, which scored higher in each of 5 paired "
    "runs (same plan and seed; 40 Hippocampus cases at 5 and 30 minutes, ISBI at 30) by "
    "0.0003-0.0022: a small gain, but never a loss (docs/augment.md#elastic-in-short-trainings)"
)

_SHORT_AGAINST_FULL = (
    "at 16,000 steps on a 2D slices set this recipe scored 0.869-0.875 and nnU-Net's "
    "0.841-0.853 (two seeds; docs/train.md#the-recipe)"
)

_EMA = (
    "which on Hippocampus fold 0 (7,100 steps) validated at 0.886-0.888 from 4,000 steps where "
    "the weights themselves wavered at 0.880-0.887, and scored 0.002 higher at the end "
    "(docs/train.md#weight-averaging)"
)


def recipe_for_steps(steps: int) -> tuple[dict[str, object], Decision]:
    """The optimiser and augmentation for a training of ``steps`` steps, and why.

    Examples
    --------
    >>> short = recipe_for_steps(800)[0]
    >>> short["optimizer"], short["learning_rate"], short["augmentation"]["mirror"]
    ('adamw', 0.003, {'probability': 0.0})
    >>> short["ema_decay"]
    0.999
    >>> recipe_for_steps(60_000)[0]
    {'optimizer': 'sgd', 'learning_rate': 0.01, 'augmentation': {'enabled': True}}
    """
    if steps >= FULL_RECIPE_STEPS:
        update: dict[str, object] = {"optimizer": "sgd", "learning_rate": 1e-2}
        update["augmentation"] = {"enabled": True}
        reason = f"{steps} planned steps (at least {FULL_RECIPE_STEPS}): nnU-Net's SGD with "
        reason += f"Nesterov momentum; {_AUGMENTATION}, mirroring where labels allow"
    else:
        update = {"optimizer": "adamw", "learning_rate": 3e-3, "ema_decay": SHORT_EMA_DECAY}
        degrees = [-SHORT_IN_PLANE_DEGREES, SHORT_IN_PLANE_DEGREES]
        update["augmentation"] = {
            "enabled": True,
            "mirror": {"probability": 0.0},
            "rotation": {"in_plane_angle_degrees": degrees},
            "elastic": {"probability": SHORT_ELASTIC_PROBABILITY},
        }
        reason = f"{steps} planned steps (under {FULL_RECIPE_STEPS}): AdamW, which converges "
        reason += f"faster in short trainings (docs/train.md); {_SHORT_AUGMENTATION}; "
        reason += f"{_SHORT_AGAINST_FULL}; "
        reason += f"a moving average of the weights (decay up to {SHORT_EMA_DECAY}), {_EMA}"
    return update, Decision(setting="recipe", value=update, reason=reason)


def _dotted(settings: dict[str, object], prefix: str = "") -> dict[str, object]:
    """Nested settings as the dotted names `apply_overrides` takes.

    >>> _dotted({"optimizer": "sgd", "augmentation": {"mirror": {"probability": 0.0}}})
    {'optimizer': 'sgd', 'augmentation.mirror.probability': 0.0}
    """
    flat: dict[str, object] = {}
    for name, value in settings.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def with_recipe(plan: Plan, steps: int, overrides: dict[str, object]) -> tuple[Plan, Decision]:
    """``plan`` with the recipe for ``steps`` steps, where the user did not choose."""
    recipe, decision = recipe_for_steps(steps)
    if overrides.get("optimizer") is not None:
        recipe.pop("optimizer"), recipe.pop("learning_rate")
    if overrides.get("learning_rate") is not None:
        recipe.pop("learning_rate", None)
    return apply_overrides(plan, _dotted(recipe)), decision
