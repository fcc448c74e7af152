"""Where run folders live: given paths, or under ``$MEDSEG_RESULTS`` / ``$nnUNet_results``
as nnU-Net keeps its trained models."""

from __future__ import annotations

import os
from pathlib import Path

from medseg.datasets.folder import find_dataset_folder
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


def default_run_folder(dataset: str | Path, name: str = DEFAULT_RUN_NAME) -> Path:
    """``RESULTS/DatasetNNN_Name/medseg`` for a dataset (a path, ID or name), where RESULTS
    is `results_root`; `ConfigError` when neither variable is set.

    Examples
    --------
    >>> import tempfile
    >>> os.environ["MEDSEG_RESULTS"] = "/data/results"
    >>> default_run_folder(tempfile.mkdtemp(prefix="Dataset004_")).parent.name.startswith(
    ...     "Dataset004_")
    True
    >>> del os.environ["MEDSEG_RESULTS"]
    """
    root = results_root()
    if root is None:
        raise ConfigError(
            "no run folder: give --out RUN_DIR, or set MEDSEG_RESULTS (or nnUNet_results) to "
            "keep runs in RESULTS/DATASET/medseg"
        )
    return root / find_dataset_folder(dataset).resolve().name / name


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
