"""Which axes augmentation may mirror, decided from where the labels lie.

Mirroring along an axis teaches the network that the image may come either way round along
it. That is true of a single structure (a lesion, a cell) and of left/right where labels do
not depend on the side, but false where two labels keep an order along the axis: the
Hippocampus dataset's anterior label lies behind the posterior one along axis 1 in every case.
Mirrored there, a patch shows the anterior part where the posterior one belongs, and the
network learns to tell them apart by shape alone: at 1,000 steps on Hippocampus, mirroring
alone cost 0.04 mean Dice (docs/augment.md).
"""

from __future__ import annotations

import itertools

import numpy as np

from medseg.preprocess import Fingerprint
from medseg.runs import Decision

#: Two labels keep an order along an axis when one's centre lies on the same side of the
#: other's in at least this share of the cases that hold both ...
ORDER_AGREEMENT = 0.9
#: ... by at least this share of the foreground's extent on average.
ORDER_GAP = 0.05
#: Fewer cases holding both labels than this decide nothing.
MIN_CASES = 3


def ordered_axes(fingerprint: Fingerprint) -> dict[int, tuple[str, str, float, int]]:
    """The data axes along which two labels keep their order: axis -> (label a, label b,
    share of cases with a's centre after b's, cases that hold both).

    Examples
    --------
    >>> from medseg.preprocess.fingerprint import CaseFingerprint
    >>> def case(a, b):
    ...     return CaseFingerprint(case_id="c", shape=[9, 9], spacing=[1, 1], orientation="RA",
    ...         cropped_shape=[9, 9], foreground=[None], class_voxels={}, class_volume_ml={},
    ...         class_centroids={"1": a, "2": b})
    >>> cases = [case([0.5, 0.2], [0.45, 0.8]), case([0.4, 0.3], [0.5, 0.7]),
    ...          case([0.6, 0.1], [0.5, 0.9]), case([0.5, 0.2], [0.55, 0.6])]
    >>> fp = Fingerprint.model_construct(data_dim=2, cases=cases)
    >>> ordered_axes(fp)
    {1: ('1', '2', 0.0, 4)}
    """
    labels = sorted({v for c in fingerprint.cases for v in c.class_centroids}, key=int)
    found: dict[int, tuple[str, str, float, int]] = {}
    for a, b in itertools.combinations(labels, 2):
        both = [c.class_centroids for c in fingerprint.cases if {a, b} <= set(c.class_centroids)]
        if len(both) < MIN_CASES:
            continue
        difference = np.asarray([np.subtract(c[a], c[b]) for c in both])
        after = (difference > 0).mean(axis=0)
        gap = np.abs(difference).mean(axis=0)
        for axis in range(fingerprint.data_dim):
            agreed = max(after[axis], 1 - after[axis]) >= ORDER_AGREEMENT
            if agreed and gap[axis] >= ORDER_GAP and axis not in found:
                found[axis] = (a, b, round(float(after[axis]), 3), len(both))
    return found


def mirror_decision(fingerprint: Fingerprint, slice_axis: int | None) -> tuple[list[int], Decision]:
    """The network axes augmentation may mirror (and test-time augmentation with it), and the
    decision that says why: every axis but those along which two labels keep an order (a 2D
    network on 3D data: its two axes, numbered without ``slice_axis``)."""
    ordered = ordered_axes(fingerprint)
    network_axes = [a for a in range(fingerprint.data_dim) if a != slice_axis]
    allowed = [n for n, a in enumerate(network_axes) if a not in ordered]
    if not ordered:
        reason = "no two labels keep an order along any axis: every axis may be mirrored"
    else:
        kept = "; ".join(
            f"axis {axis}: label {a} on the same side of label {b} in "
            f"{max(share, 1 - share):.0%} of {n} cases"
            for axis, (a, b, share, n) in sorted(ordered.items())
        )
        rest = "only the other axes are mirrored" if allowed else "no axis is mirrored"
        reason = f"labels keep their order ({kept}); mirroring there would swap them, so {rest}"
    return allowed, Decision(setting="augmentation.mirror.axes", value=allowed, reason=reason)
