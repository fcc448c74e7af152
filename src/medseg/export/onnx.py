"""A run folder's networks as ONNX models that onnxruntime (or any ONNX runtime) runs.

`export_onnx` writes an *export folder*: one ``fold_K.onnx`` per trained fold, copies of the
run files inference needs (``plan.json``: spacing, normalisation, patch size, labels;
``dataset.json``; ``postprocessing.json`` and ``quality.json`` when present) and
``model.json``, which records the opset, the input and output, each file's checksum and how
far onnxruntime's logits are from PyTorch's. `medseg predict` takes the export folder like a
run folder and predicts with onnxruntime (`OnnxNetwork`) through the same pipeline.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medseg import __version__
from medseg.errors import ConfigError, RunFolderError, located
from medseg.io import atomic_path, read_json_file, write_text_atomic
from medseg.io.checksum import file_sha256
from medseg.io.outputs import prepare_output_folder
from medseg.nn.checkpoint import load_weights
from medseg.nn.onnx_file import export_module
from medseg.parallel import available_cores
from medseg.progress import log_line
from medseg.runs import PLAN_FILE, Plan, network_for, trained_weights

#: The export folder's description of its models.
SIDECAR = "model.json"
#: ``medseg export RUN`` writes here unless told otherwise; ``predict --engine onnxruntime``
#: looks here.
EXPORT_FOLDER = "onnx"
DEFAULT_OPSET = 18
#: The oldest opset the exporter supports (torch.onnx's dynamo exporter translates to 18
#: and converts down from there).
MIN_OPSET = 13
#: Files copied from the run folder when present.
RUN_FILES = (PLAN_FILE, "dataset.json", "postprocessing.json", "quality.json")
#: The name of a model file in an export folder: the only names model.json may give.
_MODEL_FILE = re.compile(r"fold_[A-Za-z0-9_]+\.onnx")
#: An exported model file larger than this is refused when loaded.
MAX_MODEL_BYTES = 4 * 2**30


def _onnxruntime():  # noqa: ANN202 - the optional module
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX needs onnx and onnxruntime: pip install 'medseg[onnx]'") from None
    return onnxruntime


class OnnxNetwork(nn.Module):
    """A network run by onnxruntime, callable like the PyTorch one: logits for a batch of
    windows ``(B, C, *patch)``. It has no parameters; ``eval()`` and ``to()`` change
    nothing."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        super().__init__()
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or available_cores()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise RunFolderError(located(path, f"not a usable ONNX model ({exc})")) from None
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        """The logits of ``windows`` (computed on the CPU, returned on their device)."""
        array = windows.detach().to("cpu", torch.float32).contiguous().numpy()
        logits = self.session.run(None, {self.input_name: array})[0]
        return torch.from_numpy(logits).to(windows.device)


def _dynamic_shapes(plan: Plan, spatial: bool) -> tuple[dict[int, object], ...]:
    """A dynamic batch axis; with ``spatial`` also spatial axes in multiples of the
    network's total stride."""
    shapes: dict[int, object] = {0: torch.export.Dim("batch", min=1, max=4096)}
    if spatial:
        for axis in range(plan.dim):
            stride = int(np.prod([s[axis] for s in plan.strides]))
            steps = torch.export.Dim(f"size{axis}", min=1, max=4096 // stride)
            shapes[2 + axis] = stride * steps
    return (shapes,)


def _export_fold(
    network: nn.Module, plan: Plan, path: Path, opset: int, dynamic_shapes: bool
) -> float:
    """Write one network as ONNX; returns the largest difference between onnxruntime's and
    PyTorch's logits on random windows (batches of 2 and 3)."""
    example = torch.randn(2, plan.in_channels, *plan.patch_size)
    export_module(network, (example,), path, opset, ["image"], ["logits"],
                  _dynamic_shapes(plan, dynamic_shapes))  # fmt: skip
    onnx_network = OnnxNetwork(path, threads=1)
    largest = 0.0
    with torch.no_grad():
        for batch in (2, 3):
            windows = torch.randn(batch, plan.in_channels, *plan.patch_size)
            difference = (onnx_network(windows) - network(windows)).abs().max()
            largest = max(largest, float(difference))
    return largest


def export_onnx(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_shapes: bool = False,
    quiet: bool = True,
) -> Path:
    """Export every trained fold of a run folder as ONNX into ``out_dir`` (default
    ``RUN_DIR/onnx``); returns the export folder. The batch axis is dynamic; with
    ``dynamic_shapes`` the spatial axes too (in multiples of the network's total stride), so
    a runtime may feed windows of other sizes.

    Examples
    --------
    >>> folder = export_onnx("runs/hippo")  # doctest: +SKIP
    """
    _onnxruntime()
    run_dir = Path(run_dir)
    if not MIN_OPSET <= opset <= 23:
        raise ConfigError(f"--opset {opset}: choose {MIN_OPSET} to 23")
    plan = Plan.load(run_dir)
    folds = [(d, trained_weights(d)) for d in sorted(run_dir.glob("fold_*")) if d.is_dir()]
    folds = [(d, w) for d, w in folds if w is not None]
    if not folds:
        raise RunFolderError(located(run_dir, "holds no trained model (no fold_*/*.safetensors)"))
    out = Path(out_dir) if out_dir is not None else run_dir / EXPORT_FOLDER
    prepare_output_folder(out)
    records = []
    for fold_dir, weights in folds:
        network = network_for(plan)
        load_weights(network, weights, torch.device("cpu"))
        network.eval()
        path = out / f"{fold_dir.name}.onnx"
        difference = _export_fold(network, plan, path, opset, dynamic_shapes)
        log_line(f"{path.name}: onnxruntime within {difference:.1e} of PyTorch", quiet)
        records.append(
            {"fold": fold_dir.name, "file": path.name, "weights": weights.name,
             "sha256": file_sha256(path), "max_abs_logit_difference": difference}
        )  # fmt: skip
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(run_dir / name, tmp)
    write_text_atomic(out / SIDECAR, json.dumps(_sidecar(plan, records, opset, dynamic_shapes),
                                                indent=2) + "\n")  # fmt: skip
    return out


def _sidecar(
    plan: Plan, records: list[dict[str, object]], opset: int, dynamic_shapes: bool
) -> dict[str, object]:
    import onnx
    import onnxruntime

    spatial = [f"size{a}" if dynamic_shapes else s for a, s in enumerate(plan.patch_size)]
    return {
        "format": "onnx",
        "opset": opset,
        "input": {"name": "image", "shape": ["batch", plan.in_channels, *spatial],
                  "meaning": "normalised image windows, as plan.json's preprocessing makes them"},
        "output": {"name": "logits", "shape": ["batch", plan.num_classes, *spatial],
                   "meaning": "class logits; softmax over axis 1, classes = plan label_values"},
        "folds": records,
        "versions": {"medseg": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__},
    }  # fmt: skip


def record_quantization(folder: Path, report: dict[str, object] | None = None) -> None:
    """Refresh the checksum model.json records for each model file (after a model was
    replaced by its quantised copy) and, when given, record the quantisation ``report``."""
    sidecar = read_json_file(folder / SIDECAR, RunFolderError, expect_object=True)
    for record in sidecar["folds"]:
        record["sha256"] = file_sha256(folder / str(record["file"]))
    if report is not None:
        sidecar["quantization"] = report
    write_text_atomic(folder / SIDECAR, json.dumps(sidecar, indent=2) + "\n")


def is_export_folder(folder: Path) -> bool:
    """Whether ``folder`` is an export folder (holds model.json)."""
    return (folder / SIDECAR).is_file()


def export_folder_of(run_dir: Path) -> Path:
    """The folder ``predict --engine onnxruntime`` reads: ``run_dir`` itself when it is an
    export folder, else ``run_dir/onnx``; `RunFolderError` when there is none."""
    if is_export_folder(run_dir):
        return run_dir
    if is_export_folder(run_dir / EXPORT_FOLDER):
        return run_dir / EXPORT_FOLDER
    raise RunFolderError(located(run_dir, "no ONNX export here: run 'medseg export RUN_DIR' first"))


def onnx_networks(folder: Path, folds: list[str] | None = None) -> list[nn.Module]:
    """The export folder's models (every fold, or those named ``fold_K``), each checked
    against the checksum model.json records."""
    sidecar = read_json_file(folder / SIDECAR, RunFolderError, expect_object=True)
    records = sidecar.get("folds")
    if sidecar.get("format") != "onnx" or not isinstance(records, list) or not records:
        raise RunFolderError(located(folder / SIDECAR, "not a medseg ONNX export (no folds)"))
    networks = []
    for record in records:
        name = str(record.get("file", "")) if isinstance(record, dict) else ""
        if not _MODEL_FILE.fullmatch(name):  # only plain names inside this folder
            raise RunFolderError(located(folder / SIDECAR, f"bad model file name {name!r}"))
        if folds is not None and name.removesuffix(".onnx") not in folds:
            continue
        path = folder / name
        if not path.is_file() or path.stat().st_size > MAX_MODEL_BYTES:
            raise RunFolderError(located(path, "missing, or larger than a model can be"))
        if file_sha256(path) != record.get("sha256"):
            raise RunFolderError(located(path, "differs from the model model.json describes"))
        networks.append(OnnxNetwork(path))
    if not networks:
        raise RunFolderError(located(folder, f"has none of the folds {folds}"))
    return networks
