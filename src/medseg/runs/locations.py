"""Where run folders live: given paths, or under ``$MEDSEG_RESULTS`` / ``$nnUNet_results``
as nnU-Net keeps its trained models."""

from __future__ import annotations

import os
from pathlib import Path

from medseg.errors import ConfigError

#: Environment variables naming the folder of run folders, looked in in this order.
RESULTS_VARIABLES = ("MEDSEG_RESULTS", "nnUNet_results")
#: A run folder's name under ``RESULTS/DATASET/`` when ``--out`` is not given.
DEFAULT_RUN_NAME = "medseg"


def results_root() -> Path | None:
    """The first of ``$MEDSEG_RESULTS`` and ``$nnUNet_results`` that is set, if any."""
    for variable in RESULTS_VARIABLES:
        if os.environ.get(variable):
            return Path(os.environ[variable])
    return None


def default_run_folder(dataset_folder: str | Path, name: str = DEFAULT_RUN_NAME) -> Path:
    """``RESULTS/DatasetNNN_Name/medseg`` for a dataset folder (resolve an ID or a name with
    `medseg.datasets.folder.find_dataset_folder` first), where RESULTS is `results_root`;
    `ConfigError` when neither variable is set.

    Examples
    --------
    >>> os.environ["MEDSEG_RESULTS"] = "/data/results"
    >>> default_run_folder("/data/raw/Dataset004_Hippocampus")
    PosixPath('/data/results/Dataset004_Hippocampus/medseg')
    >>> del os.environ["MEDSEG_RESULTS"]
    """
    root = results_root()
    if root is None:
        raise ConfigError(
            "no run folder: give --out RUN_DIR, or set MEDSEG_RESULTS (or nnUNet_results) to "
            "keep runs in RESULTS/DATASET/medseg"
        )
    return root / Path(dataset_folder).resolve().name / name


def find_run_folder(run: str | Path) -> Path:
    """The run folder ``run`` means: a path as given when it exists, else the same relative
    path under `results_root` (``Dataset004_Hippocampus/medseg``) when that exists there;
    otherwise ``run`` as given (the caller says it is not found).

    Examples
    --------
    >>> find_run_folder("no/such/run")
    PosixPath('no/such/run')
    """
    path = Path(run)
    root = results_root()
    if path.exists() or path.is_absolute() or root is None or ".." in path.parts:
        return path
    return root / path if (root / path).is_dir() else path
