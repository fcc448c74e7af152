"""The training recipe (optimiser, learning rate, augmentation) for the steps a budget affords."""

from __future__ import annotations

from medseg.runs import Decision, Plan, apply_overrides

#: nnU-Net's SGD (momentum 0.99) is made for ~250,000 steps on a GPU; below this many planned
#: steps medseg uses AdamW, which converged faster at 800 steps on Hippocampus (SGD cost 0.05
#: Dice there, bench/RESULTS.md). Where between 800 and 250,000 SGD starts to pay is not
#: measured; 10,000 (the 100-epoch default) is a guess. Augmentation is on at every length
#: (docs/augment.md#what-each-transform-costs-or-gains).
FULL_RECIPE_STEPS = 10_000


def recipe_for_steps(steps: int) -> tuple[dict[str, object], Decision]:
    """The optimiser for a training of ``steps`` steps, and why; augmentation stays on.

    Examples
    --------
    >>> recipe_for_steps(800)[0]
    {'optimizer': 'adamw', 'learning_rate': 0.003, 'augmentation': {'enabled': True}}
    >>> recipe_for_steps(25_000)[0]["optimizer"]
    'sgd'
    """
    augmentation = (
        "nnU-Net's augmentation, which gained 0.011 Dice with 40 Hippocampus cases in 1,000 "
        "steps and cost 0.004 (within seed noise) with 160, once mirroring spares axes along "
        "which labels keep their order "
        "(docs/augment.md#what-each-transform-costs-or-gains)"
    )
    if steps >= FULL_RECIPE_STEPS:
        update: dict[str, object] = {"optimizer": "sgd", "learning_rate": 1e-2}
        reason = f"{steps} planned steps (at least {FULL_RECIPE_STEPS}): nnU-Net's SGD with "
        reason += f"Nesterov momentum; {augmentation}"
    else:
        update = {"optimizer": "adamw", "learning_rate": 3e-3}
        reason = f"{steps} planned steps (under {FULL_RECIPE_STEPS}): AdamW, which converges "
        reason += f"faster in short trainings (docs/train.md); {augmentation}"
    update["augmentation"] = {"enabled": True}
    return update, Decision(setting="recipe", value=update, reason=reason)


def with_recipe(plan: Plan, steps: int, overrides: dict[str, object]) -> tuple[Plan, Decision]:
    """``plan`` with the recipe for ``steps`` steps, where the user did not choose."""
    recipe, decision = recipe_for_steps(steps)
    if overrides.get("optimizer") is not None:
        recipe.pop("optimizer"), recipe.pop("learning_rate")
    if overrides.get("learning_rate") is not None:
        recipe.pop("learning_rate", None)
    plan = apply_overrides(plan, {k: v for k, v in recipe.items() if k != "augmentation"})
    augmentation = plan.augmentation.model_copy(update=recipe["augmentation"])
    return plan.model_copy(update={"augmentation": augmentation}), decision
