"""Transfer learning on real data: a network pretrained on some Hippocampus subjects and
fine-tuned on a small set of others (2D, slices) converges faster than one trained from scratch.

Pretraining on the 2D phantom instead was measured not to help enough to assert (six seeds:
area under the validation-Dice curve 0.404 against 0.393 from scratch, worse for two seeds);
pretraining on related data is how the feature is used. A source whose head does not fit the
target's classes is tested in test_recipe.py."""

import json

import numpy as np
import pytest
import torch

from medseg.train import TrainOptions, train_run

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3)
SHORT = {"quiet": True, "optimizer": "adamw", "settings": {"augmentation.enabled": False}}


@pytest.fixture
def one_thread():
    # the comparison below was measured with one thread; fix it so the run repeats exactly
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _hippocampus_subset(source, target, labels):
    """A dataset folder of the given Hippocampus cases (symlinks)."""
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for label in labels:
        case = label.name.removesuffix(".nii.gz")
        (target / "labelsTr" / label.name).symlink_to(label)
        image = f"{case}_0000.nii.gz"
        (target / "imagesTr" / image).symlink_to(source / "imagesTr" / image)
    spec = json.loads((source / "dataset.json").read_text())
    (target / "dataset.json").write_text(json.dumps({**spec, "numTraining": len(labels)}))
    return target


def test_pretrained_on_other_subjects_converges_faster_on_a_small_set(
    hippocampus_dir, tmp_path, one_thread
):
    cases = sorted((hippocampus_dir / "labelsTr").iterdir())
    other = _hippocampus_subset(hippocampus_dir, tmp_path / "other", cases[12:52])
    pretrained = tmp_path / "pretrained"
    train_run(other, pretrained, TrainOptions(dim=2, epochs=4, iterations_per_epoch=25, **SHORT))
    real = _hippocampus_subset(hippocampus_dir, tmp_path / "hippo_small", cases[:12])

    curves = {"scratch": [], "transfer": []}
    losses = {"scratch": [], "transfer": []}
    for seed in SEEDS:
        for arm, source in (("scratch", None), ("transfer", pretrained)):
            options = TrainOptions(
                dim=2, epochs=3, iterations_per_epoch=10, init_from=source, seed=seed, **SHORT
            )
            result = train_run(real, tmp_path / f"{arm}{seed}", options)
            curves[arm].append([r.val_dice_mean for r in result.history])
            losses[arm].append([r.train_loss for r in result.history])
            if source is not None:
                assert len(result.transfer.loaded) > 20 and not result.transfer.reinitialised
    # area under the validation-Dice curve and mean training loss, averaged over seeds
    dice = {arm: float(np.mean(c)) for arm, c in curves.items()}
    loss = {arm: float(np.mean(v)) for arm, v in losses.items()}
    # measured over six seeds: 0.78 against 0.39; the margin asked here is half that gap
    assert dice["transfer"] > dice["scratch"] + 0.2, dice
    assert loss["transfer"] < loss["scratch"], loss
