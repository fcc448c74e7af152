"""Run as a script by tests/train/test_distributed.py, alone or under torchrun: train a tiny
U-Net on synthetic blobs for a few steps and save each rank's weights and epoch losses to
OUT/rank{R}.safetensors and OUT/rank{R}.json. With ``members`` first, instead: decide with
`medseg.train.ensemble.train_members` which further models the time left allows, each rank
believing in a different time left, and save the models each rank trained to
OUT/members{R}.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(out: Path) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from medseg.train.auto_config import auto_config
    from medseg.train.distributed import distributed_training
    from medseg.train.sampler import TrainingCase
    from medseg.train.trainer import Trainer

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cases = []
    for k in range(4):
        image = rng.normal(size=(1, 20, 20, 20)).astype(np.float32)
        target = np.zeros((20, 20, 20), np.uint8)
        target[4 + k : 12 + k, 5:13, 6:14] = 1
        image[0][target > 0] += 2.0
        cases.append(TrainingCase(f"case_{k}", image, target))
    plan = auto_config(shapes=[(20, 20, 20)], spacings=[(1.0, 1.0, 1.0)], in_channels=1,
                       label_values=[0, 1], label_names=["background", "blob"],
                       channel_names=["x"], file_ending=".nii.gz")  # fmt: skip
    settings = {"patch_size": [16, 16, 16], "features": [4, 8], "strides": [[1, 1, 1], [2, 2, 2]],
                "kernel_sizes": [[3, 3, 3], [3, 3, 3]], "batch_size": 4, "epochs": 3,
                "iterations_per_epoch": 4, "deep_supervision": False}  # fmt: skip
    settings["augmentation"] = plan.augmentation.model_copy(update={"enabled": False})
    plan = plan.model_copy(update=settings)
    with distributed_training(torch.device("cpu")) as ranks:
        trainer = Trainer(plan, cases, [], out / f"fold_{ranks.rank}", torch.device("cpu"), True)
        result = trainer.fit()
        weights = {k: v.contiguous() for k, v in trainer.network.state_dict().items()}
        save_file(weights, str(out / f"rank{ranks.rank}.safetensors"))
        losses = [record.train_loss for record in result.history]
        (out / f"rank{ranks.rank}.json").write_text(json.dumps({"losses": losses}))


def members(out: Path) -> None:
    import torch

    from medseg.train import ensemble
    from medseg.train.auto_config import auto_config
    from medseg.train.distributed import distributed_training

    plan = auto_config(shapes=[(20, 20, 20)], spacings=[(1.0, 1.0, 1.0)], in_channels=1,
                       label_values=[0, 1], label_names=["background", "blob"],
                       channel_names=["x"], file_ending=".nii.gz")  # fmt: skip
    plan = plan.model_copy(update={"max_members": 4})
    with distributed_training(torch.device("cpu")) as ranks:
        trained: list[str] = []
        # rank 0 has time for every model, rank 1 (its clock a little behind) for none
        left = 100.0 if ranks.rank == 0 else 5.0
        ensemble.train_members(
            lambda p, d: trained.append(d.name), plan, out / "fold_all", 10.0, left
        )
        (out / f"members{ranks.rank}.json").write_text(json.dumps(trained))


if __name__ == "__main__":
    if sys.argv[1] == "members":
        members(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1]))
