"""Transfer learning on real data: a network pretrained on the 2D phantom and fine-tuned on a
small Hippocampus set (2D, slices) converges faster than one trained from scratch."""

import json

import numpy as np
import pytest
import torch

from medseg.datasets.phantom import write_phantom_dataset
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


def _small_hippocampus(source, target, n_cases):
    (target / "imagesTr").mkdir(parents=True)
    (target / "labelsTr").mkdir()
    for label in sorted((source / "labelsTr").iterdir())[:n_cases]:
        case = label.name.removesuffix(".nii.gz")
        (target / "labelsTr" / label.name).symlink_to(label)
        image = f"{case}_0000.nii.gz"
        (target / "imagesTr" / image).symlink_to(source / "imagesTr" / image)
    spec = json.loads((source / "dataset.json").read_text())
    (target / "dataset.json").write_text(json.dumps({**spec, "numTraining": n_cases}))
    return target


def test_pretrained_on_the_phantom_converges_faster_on_real_data(
    hippocampus_dir, tmp_path, one_thread
):
    phantom = write_phantom_dataset(
        tmp_path / "phantom", n_train=30, n_test=1, dim=2, shape=(64, 64)
    )
    pretrained = tmp_path / "pretrained"
    train_run(
        phantom,
        pretrained,
        TrainOptions(epochs=4, iterations_per_epoch=25, patch_size=[64, 64], **SHORT),
    )
    real = _small_hippocampus(hippocampus_dir, tmp_path / "hippo_small", 12)

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
                # the 4-class phantom head does not fit the 3-class task: re-initialised
                assert any("head" in name for name in result.transfer.reinitialised)
                assert len(result.transfer.loaded) > 20
    # area under the validation-Dice curve and mean training loss, averaged over seeds
    dice = {arm: float(np.mean(c)) for arm, c in curves.items()}
    loss = {arm: float(np.mean(v)) for arm, v in losses.items()}
    assert dice["transfer"] > dice["scratch"] + 0.01, dice
    assert loss["transfer"] < loss["scratch"], loss
