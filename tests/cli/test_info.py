"""``medseg info``: the installation described, as text and as JSON."""

from __future__ import annotations

import json

import torch

from medseg import __version__


def test_info_json_lists_versions_devices_formats_and_commands(run_cli):
    code, out, err = run_cli(["info", "--json"])
    assert code == 0, err
    info = json.loads(out)
    assert info["medseg"] == __version__ and info["packages"]["torch"] == torch.__version__
    assert info["devices"]["cpu"]["cores"] >= 1 and info["devices"]["auto"] in ("cpu", "cuda")
    assert len(info["devices"]["cuda"]) == (
        torch.cuda.device_count() if torch.cuda.is_available() else 0
    )
    from medseg.device import resolve_device, resolve_precision

    expected = resolve_precision("auto", resolve_device("auto"))
    assert info["devices"]["auto_precision"] == str(expected).removeprefix("torch.")
    assert ".nii.gz" in info["formats"]["read"] and "DICOM-SEG" in info["formats"]["write"]
    assert {"predict", "serve", "info", "train"} <= set(info["commands"])
    assert set(info["extras"]) == {"serve", "tensorboard"}
    code, out, _ = run_cli(["info"])
    assert code == 0 and f"medseg {__version__}" in out and "--device auto uses" in out
    assert f"computes in {info['devices']['auto_precision']}" in out
