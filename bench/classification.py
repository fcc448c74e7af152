"""Benchmark: image classification per CPU-minute — medseg's classifier against a MONAI ResNet-18
on the same MedMNIST split, trained for the same minutes in one process, scored on the test set
by the same code (`medseg.metrics.classification`).

- medseg: ``medseg convert medmnist`` then ``train_classifier(dataset, run, minutes=M)`` with
  every default (fold 0 = the official train/val split; best weights by validation AUC), then
  ``predict_classes`` on imagesTs (``medseg predict``).
- MONAI baseline: ``monai.networks.nets.resnet18`` (``spatial_dims`` of the data, one input
  channel), cross-entropy, Adam (1e-3), batch 64 in 2D and 8 in 3D, images scaled to [0, 1],
  no augmentation (MedMNIST v2's own ResNet baselines train without), validated every 100
  steps on the val split with the best weights by validation AUC kept.

Both are scored with the probability of the positive class (AUC) and argmax (accuracy).
MedMNIST v2's published ResNet-18 (28) figures are printed beside them for reference
(PneumoniaMNIST at 28 px: AUC 0.944, accuracy 0.854, as the open issue quotes them; none is
printed for AdrenalMNIST3D, whose file here is the 64³ version) — they come from 100 epochs
on a GPU, not from this run.

Usage: python bench/classification.py [--set pneumonia|adrenal] [--minutes 5 15] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(os.environ.get("MEDSEG_TEST_DATA", Path(__file__).resolve().parents[2] / "shared/data"))
SETS = {
    "pneumonia": ("PneumoniaMNIST/pneumoniamnist.npz", ["normal", "pneumonia"], (0.944, 0.854)),
    "adrenal": ("AdrenalMNIST3D/adrenalmnist3d_64.npz", ["normal", "hyperplasia"], None),
}


def scores(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    from medseg.metrics.classification import accuracy, multiclass_auc

    return {
        "auc": round(multiclass_auc(truth, probabilities), 4),
        "accuracy": round(accuracy(truth, probabilities.argmax(1)), 4),
    }


def run_medseg(npz: Path, names: list[str], minutes: float, work: Path) -> dict:
    from medseg.datasets.from_medmnist import convert_medmnist
    from medseg.infer.classify import predict_classes
    from medseg.train.classifier import train_classifier

    dataset = work / "Dataset900_Bench"
    if not dataset.exists():
        convert_medmnist(npz, dataset, names, quiet=True)
    run = work / f"medseg_{minutes:g}min"
    start = time.perf_counter()
    result = train_classifier(dataset, run, minutes=minutes, quiet=True)
    seconds = time.perf_counter() - start
    table = predict_classes(run, [dataset / "imagesTs"], run / "test", quiet=True)
    rows = [line.split(",") for line in table.read_text().splitlines()[1:]]
    truth = np.load(npz)["test_labels"][:, 0]
    order = np.argsort([row[0] for row in rows])  # test_00000 ... in file order
    probabilities = np.array([[float(v) for v in rows[k][2:]] for k in order])
    plan = json.loads((run / "plan.json").read_text())
    return {
        **scores(truth, probabilities),
        "steps": result.steps,
        "training_seconds": round(seconds, 1),
        "network": plan["features"],
        "best_validation": result.best,
    }


def run_monai(npz: Path, minutes: float, seed: int = 0) -> dict:
    from monai.networks.nets import resnet18

    from medseg.metrics.classification import multiclass_auc

    torch.manual_seed(seed)
    data = np.load(npz)
    split = {s: (torch.tensor(data[f"{s}_images"] / 255.0, dtype=torch.float32).unsqueeze(1),
                 torch.tensor(data[f"{s}_labels"][:, 0], dtype=torch.int64))
             for s in ("train", "val", "test")}  # fmt: skip
    dim = split["train"][0].ndim - 2
    classes = int(split["train"][1].max()) + 1
    network = resnet18(spatial_dims=dim, n_input_channels=1, num_classes=classes)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    batch = 64 if dim == 2 else 8
    rng = np.random.default_rng(seed)
    best, best_auc, steps = None, -1.0, 0
    start = time.perf_counter()
    images, labels = split["train"]
    while time.perf_counter() - start < minutes * 60:
        network.train()
        index = rng.integers(0, len(images), batch)
        loss = torch.nn.functional.cross_entropy(network(images[index]), labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
        if steps % 100 == 0:
            auc = multiclass_auc(split["val"][1].numpy(), _probabilities(network, split["val"][0]))
            if auc > best_auc:
                best, best_auc = copy.deepcopy(network.state_dict()), auc
    if best is not None:
        network.load_state_dict(best)
    probabilities = _probabilities(network, split["test"][0])
    return {**scores(split["test"][1].numpy(), probabilities), "steps": steps,
            "best_validation_auc": round(best_auc, 4)}  # fmt: skip


@torch.no_grad()
def _probabilities(network, images: torch.Tensor) -> np.ndarray:
    network.eval()
    chunks = [network(images[k : k + 64]) for k in range(0, len(images), 64)]
    return torch.softmax(torch.cat(chunks), 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(SETS), default="pneumonia")
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 15.0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    relative, names, published = SETS[args.set]
    npz = DATA / "classification" / relative
    work = args.out or Path(tempfile.mkdtemp(prefix="medseg-classification-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{args.set}: {npz.name}, load average before {os.getloadavg()[0]:.2f}")
    results = []
    for minutes in args.minutes:
        medseg = run_medseg(npz, names, minutes, work)
        monai = run_monai(npz, minutes)
        results.append({"minutes": minutes, "medseg": medseg, "monai_resnet18": monai})
        print(f"\n{minutes:g} CPU-minutes        test AUC  accuracy  steps")
        for name, row in (("medseg", medseg), ("MONAI ResNet-18", monai)):
            print(f"{name:22s} {row['auc']:.4f}    {row['accuracy']:.4f}  {row['steps']}")
        if published:
            auc, accuracy = published
            print(f"MedMNIST v2 ResNet-18  {auc:.3f}     {accuracy:.3f}    (published)")
        print(f"medseg network {medseg['network']}; best validation {medseg['best_validation']}")
    print(f"load average after {os.getloadavg()[0]:.2f}")
    (work / "classification.json").write_text(json.dumps(results, indent=1))
    print(f"results in {work / 'classification.json'}")


if __name__ == "__main__":
    main()
