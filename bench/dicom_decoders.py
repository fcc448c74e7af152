"""Benchmark: which decoder medseg uses for compressed DICOM, by measurement.

Every compressed file among pydicom's bundled test files is decoded by each pydicom decoding
plugin installed (pylibjpeg with libjpeg/OpenJPEG/RLE, GDCM, pyjpegls, pydicom's own); per
file the table shows the median time of 5 decodes and whether the result equals the first
decoder's ("=") or by how much it differs ("dN": largest difference in grey values).
The summary counts the files each decoder reads and its total time.

Usage: python bench/dicom_decoders.py
"""

from __future__ import annotations

import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom

PLUGINS = ("pylibjpeg", "gdcm", "pyjpegls", "pydicom")
FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def decode(path: Path, plugin: str) -> tuple[np.ndarray | None, float]:
    """The pixel array by ``plugin`` and the median seconds of 5 decodes (None if it fails)."""
    times, array = [], None
    for _ in range(5):
        dataset = pydicom.dcmread(path)
        dataset.pixel_array_options(decoding_plugin=plugin)
        start = time.perf_counter()
        try:
            array = dataset.pixel_array
        except Exception:
            return None, float("nan")
        times.append(time.perf_counter() - start)
    return array, statistics.median(times)


def compressed_files() -> list[tuple[Path, str]]:
    found = []
    for path in sorted(FILES.glob("*.dcm")):
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        syntax = getattr(header.file_meta, "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed and "Rows" in header:
            found.append((path, syntax.name))
    return found


def main() -> None:
    warnings.simplefilter("ignore")
    totals = {p: [0, 0.0] for p in PLUGINS}
    print(f"{'file':36}{'transfer syntax':34}" + "".join(f"{p:>16}" for p in PLUGINS))
    for path, syntax in compressed_files():
        results = {p: decode(path, p) for p in PLUGINS}
        reference = next((a for a, _ in results.values() if a is not None), None)
        cells = []
        for plugin, (array, seconds) in results.items():
            if array is None:
                cells.append(f"{'-':>16}")
                continue
            totals[plugin][0] += 1
            totals[plugin][1] += seconds
            diff = np.abs(array.astype(np.float64) - reference).max()
            cells.append(f"{seconds * 1e3:10.2f} ms {'=' if diff == 0 else f'd{diff:g}':>3}")
        print(f"{path.name[:35]:36}{syntax[:33]:34}" + "".join(cells))
    count = len(compressed_files())
    print(f"\n{count} compressed files")
    for plugin, (decoded, seconds) in totals.items():
        print(f"{plugin:10} decodes {decoded:3d}, in {seconds * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
