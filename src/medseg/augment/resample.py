"""Resampling of image and label batches through per-sample affine maps.

Every function here maps output voxel indices ``q`` to input voxel indices ``p = A q + c``
(``A`` of shape ``(B, d, d)``, ``c`` of shape ``(B, d)``, float64 on the CPU), optionally after
an elastic displacement of ``q``. Images are interpolated linearly, labels take the value of
the nearest voxel; outside the input both are 0. Labels come in as integers and go out as
int64 (or ``label_dtype``).

In 3D, PyTorch's ``grid_sample`` is about ten times slower per voxel than in 2D on a CPU, so
`resample_separable` splits a 3D affine resampling into two 2D ``grid_sample`` calls: first
along the input's first axis (at each input column, to the output slice planes), then in the
plane of each output slice. It is exact for linear intensity profiles like trilinear
interpolation, just with the linear steps taken along other directions; the label of each
output voxel is still one of the input voxels the image interpolates between.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from medseg.augment.workspace import Workspace


def affine_points(
    matrix: torch.Tensor,
    offset: torch.Tensor,
    out_size: Sequence[int],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Input positions ``A q + c`` of every output voxel: ``(B, *out_size, d)`` float32.

    Examples
    --------
    >>> A = torch.eye(2, dtype=torch.float64)[None] * 2
    >>> affine_points(A, torch.tensor([[1.0, 0.0]], dtype=torch.float64), (2, 2))[0, 1, 1]
    tensor([3., 2.])
    """
    batch, dim = matrix.shape[0], len(out_size)
    column = [1] * dim
    points = offset.to(device, torch.float32).view(batch, *column, dim)
    for j, size in enumerate(out_size):
        shape = [1] * (dim + 2)
        shape[1 + j] = size
        q = torch.arange(size, dtype=torch.float32, device=device).view(shape)
        points = points + q * matrix[:, :, j].to(device, torch.float32).view(batch, *column, dim)
    return points


def _to_grid(
    matrix: torch.Tensor, offset: torch.Tensor, in_size: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The map to ``grid_sample``'s coordinates instead of voxel indices: normalised for
    align_corners=False (``(2p + 1) / size - 1``) and in its order, last axis first."""
    size = torch.tensor([float(s) for s in in_size], dtype=torch.float64)
    matrix = matrix * (2 / size)[None, :, None]
    offset = (2 * offset + 1) / size - 1
    return matrix.flip(1), offset.flip(1)


def resample_direct(
    image: torch.Tensor,
    label: torch.Tensor,
    matrix: torch.Tensor,
    offset: torch.Tensor,
    out_size: Sequence[int],
    displacement: torch.Tensor | None = None,
    label_dtype: torch.dtype = torch.int64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample with one ``grid_sample`` call each for images and labels (2D or 3D).

    ``displacement`` ``(B, d, *out_size)``, in output voxels, moves each ``q`` before the
    affine map: ``p = A (q + u(q)) + c``.

    Examples
    --------
    >>> image = torch.arange(16.0).view(1, 1, 4, 4)
    >>> label = torch.arange(16).view(1, 4, 4)
    >>> A = torch.eye(2, dtype=torch.float64)[None]
    >>> c = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    >>> out, lab = resample_direct(image, label, A, c, (2, 2))
    >>> out[0, 0].tolist(), lab[0].tolist()
    ([[5.0, 6.0], [9.0, 10.0]], [[5, 6], [9, 10]])
    """
    matrix, offset = _to_grid(matrix, offset, image.shape[2:])
    grid = affine_points(matrix, offset, out_size, image.device)
    if displacement is not None:
        moved = torch.einsum("bij,bj...->b...i", matrix.to(displacement), displacement)
        grid += moved
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(
        label[:, None].to(torch.float32), grid, mode="nearest", align_corners=False
    )
    return out, labels[:, 0].to(label_dtype)


def separable_quality(matrix: torch.Tensor, axis: int) -> torch.Tensor:
    """How well sweeping ``axis`` first suits each map, in [0, 1]: the in-plane block's
    determinant over the product of its columns' full lengths (for a rotation with zoom, the
    cosine of the angle between output and input ``axis``). Near 0 the output slices stand
    nearly upright in the input, where `resample_separable` would be inaccurate.

    Examples
    --------
    >>> separable_quality(torch.eye(3, dtype=torch.float64)[None] * 2, 0).tolist()
    [1.0]
    """
    others = [i for i in range(matrix.shape[-1]) if i != axis]
    block = matrix[:, others][:, :, others]
    lengths = torch.linalg.vector_norm(matrix[:, :, others], dim=1).prod(1).clamp_min(1e-12)
    return (torch.linalg.det(block).abs() / lengths).clamp(max=1.0)


def resample_separable(
    image: torch.Tensor,
    label: torch.Tensor,
    matrix: torch.Tensor,
    offset: torch.Tensor,
    out_size: Sequence[int],
    axis: int = 0,
    workspace: Workspace | None = None,
    label_dtype: torch.dtype = torch.int64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """3D affine resampling in two 2D passes, sweeping input ``axis`` first (see the module
    docstring). Use it where `separable_quality` is well above 0 (above 0.5, say). Scratch
    grids and buffers come from ``workspace`` (kept by the caller from batch to batch).

    Examples
    --------
    >>> image = torch.rand(1, 1, 6, 6, 6)
    >>> label = (image[:, 0] > 0.5).long()
    >>> A = torch.eye(3, dtype=torch.float64)[None]
    >>> c = torch.ones(1, 3, dtype=torch.float64)
    >>> out, lab = resample_separable(image, label, A, c, (4, 4, 4))
    >>> bool(torch.allclose(out, image[:, :, 1:5, 1:5, 1:5], atol=1e-5))
    True
    >>> bool(torch.equal(lab, label[:, 1:5, 1:5, 1:5]))
    True
    """
    if axis != 0:
        order = [axis] + [i for i in range(3) if i != axis]
        out, lab = resample_separable(
            image.movedim(2 + axis, 2),
            label.movedim(1 + axis, 1),
            matrix[:, order][:, :, order],
            offset[:, order],
            [out_size[i] for i in order],
            workspace=workspace,
            label_dtype=label_dtype,
        )
        return out.movedim(2, 2 + axis).contiguous(), lab.movedim(1, 1 + axis).contiguous()

    batch, channels = image.shape[:2]
    o0, o1, o2 = (int(s) for s in out_size)
    space = Workspace() if workspace is None else workspace
    r, slope = _column_crossings(matrix)
    box = _input_box(matrix, offset, (o0, o1, o2), image.shape[2:], r)
    if box is None:  # the output lies wholly outside the input
        return (
            torch.zeros(batch, channels, o0, o1, o2, device=image.device),
            torch.zeros(batch, o0, o1, o2, dtype=label_dtype, device=image.device),
        )
    image, label = image[(slice(None), slice(None), *box)], label[(slice(None), *box)]
    # positions within the box from here on
    offset = offset - torch.tensor([s.start for s in box], dtype=torch.float64)
    stack, label_stack = _first_pass(image, label, offset, r, slope, o0, space)
    return _second_pass(stack, label_stack, matrix, offset, (o0, o1, o2), space, label_dtype)


def _column_crossings(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where output slice ``q0`` crosses the input column ``(y, x)``: along axis 0 at
    ``slope * q0 + r . (y, x) + start`` (`_first_pass` works out ``start``); returns
    ``(r, slope)``, ``(B, 2)`` and ``(B,)``.

    Solving the in-plane rows of ``p = A q + c`` for ``(q1, q2)`` given ``(y, x)`` and putting
    them into the first row gives these coefficients.
    """
    inverse = torch.linalg.inv(matrix[:, 1:, 1:])
    r = torch.einsum("bi,bij->bj", matrix[:, 0, 1:], inverse)
    slope = matrix[:, 0, 0] - (r * matrix[:, 1:, 0]).sum(1)
    return r, slope


def _input_box(
    matrix: torch.Tensor,
    offset: torch.Tensor,
    out_size: tuple[int, int, int],
    in_size: Sequence[int],
    r: torch.Tensor,
) -> tuple[slice, slice, slice] | None:
    """The box of the input that the output reaches, with one voxel of margin in-plane; along
    axis 0 also as far as pass 1 reads for the in-plane neighbours (at least two voxels unless
    empty, as pass 1 needs). None when the output lies wholly outside the input."""
    o0, o1, o2 = out_size
    corners = torch.tensor(
        [[i, j, k] for i in (0, o0 - 1) for j in (0, o1 - 1) for k in (0, o2 - 1)],
        dtype=torch.float64,
    )
    reach = torch.einsum("bij,nj->bni", matrix, corners) + offset[:, None]
    margin = [1 + math.ceil(float(r.abs().sum(1).max())), 1, 1]
    low = [max(0, math.floor(reach[..., i].min()) - margin[i]) for i in range(3)]
    high = [min(in_size[i] - 1, math.ceil(reach[..., i].max()) + margin[i]) for i in range(3)]
    if any(h < lo for lo, h in zip(low, high)):
        return None
    return slice(low[0], high[0] + 1), slice(low[1], high[1] + 1), slice(low[2], high[2] + 1)


def _first_pass(
    image: torch.Tensor,
    label: torch.Tensor,
    offset: torch.Tensor,
    r: torch.Tensor,
    slope: torch.Tensor,
    o0: int,
    space: Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 1 of `resample_separable` on the box: ``U[q0, y, x] = input[p0(q0, y, x), y, x]``
    for every column ``(y, x)``, ``(B, C, O0, Y, X)`` images and ``(B, O0, Y, X)`` float
    labels (``offset`` relative to the box)."""
    start = offset[:, 0] - (r * offset[:, 1:]).sum(1)
    if bool((r.abs() < 1e-12).all()) and _integral(slope.abs(), start):
        # Output slices lie in input slices: pass 1 is a choice of slices.
        rows_of = (slope[:, None] * torch.arange(o0, dtype=torch.float64) + start[:, None]).round()
        return _pick_slices(image, label, rows_of.long())
    return _sweep_first_axis(image, label, slope, r, start, o0, space)


def _second_pass(
    stack: torch.Tensor,
    label_stack: torch.Tensor,
    matrix: torch.Tensor,
    offset: torch.Tensor,
    out_size: tuple[int, int, int],
    space: Workspace,
    label_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 2 of `resample_separable`: in the plane of each output slice, the pass-1 stack
    ``U`` at ``(p1, p2)``; one 2D ``grid_sample`` over all slices of all samples."""
    batch, channels, _, rows, cols = stack.shape
    o0, o1, o2 = out_size
    device = stack.device
    scale = torch.tensor([2 / rows, 2 / cols], dtype=torch.float64)
    shift = (offset[:, 1:] + 0.5) * scale - 1
    step = [(matrix[:, 1:, j] * scale).to(torch.float32).flip(-1).to(device) for j in range(3)]
    per_slice = step[0].view(batch, 1, 1, 1, 2) * torch.arange(o0, device=device).view(
        1, o0, 1, 1, 1
    )
    in_plane = (
        step[1].view(batch, 1, 1, 2) * torch.arange(o1, device=device).view(1, o1, 1, 1)
        + step[2].view(batch, 1, 1, 2) * torch.arange(o2, device=device).view(1, 1, o2, 1)
        + shift.to(torch.float32).flip(-1).to(device).view(batch, 1, 1, 2)
    )
    grid, _ = space.get("slice grid", (batch, o0, o1, o2, 2), torch.float32, device)
    torch.add(per_slice, in_plane[:, None], out=grid)
    grid = grid.view(batch * o0, o1, o2, 2)
    planes = stack.transpose(1, 2).reshape(batch * o0, channels, rows, cols)
    out = F.grid_sample(planes, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out.view(batch, o0, channels, o1, o2).transpose(1, 2).contiguous()
    labels = F.grid_sample(
        label_stack.view(batch * o0, 1, rows, cols), grid, mode="nearest", align_corners=False
    )
    return out, labels.view(batch, o0, o1, o2).to(label_dtype)


def _integral(*values: torch.Tensor) -> bool:
    return all(bool(((v - v.round()).abs() < 1e-9).all()) for v in values)


def _pick_slices(
    image: torch.Tensor, label: torch.Tensor, rows_of: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slices ``rows_of[b]`` of each sample (zeros where out of range): ``(B, C, O0, Y, X)``
    images and ``(B, O0, Y, X)`` float labels."""
    batch, channels, depth, rows, cols = image.shape
    o0 = rows_of.shape[1]
    stack = image.new_zeros(batch, channels, o0, rows, cols)
    label_stack = torch.zeros(batch, o0, rows, cols, device=image.device)
    for b in range(batch):
        inside = (rows_of[b] >= 0) & (rows_of[b] < depth)
        where = inside.nonzero()[:, 0].to(image.device)
        source = rows_of[b][inside].to(image.device)
        stack[b].index_copy_(1, where, image[b].index_select(1, source))
        label_stack[b].index_copy_(0, where, label[b].index_select(0, source).to(torch.float32))
    return stack, label_stack


def _sweep_first_axis(
    image: torch.Tensor,
    label: torch.Tensor,
    slope: torch.Tensor,
    r: torch.Tensor,
    start: torch.Tensor,
    o0: int,
    space: Workspace,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 1 of `resample_separable` on the box ``image (B, C, D, Y, X)``: at column
    ``(y, x)``, sample axis 0 at ``slope * q0 + r . (y, x) + start`` for ``q0 < o0``.

    The box's columns are laid side by side as one 2D image of ``D`` rows, so that one 2D
    ``grid_sample`` interpolates along the rows. Its width is padded to ``2^m + 1`` so that,
    with align_corners=True, every column coordinate is exact in float32 and no column
    leaks into its neighbour.
    """
    batch, channels, depth, rows, cols = image.shape
    device = image.device
    width = rows * cols
    padded = 2 ** max(0, math.ceil(math.log2(max(width - 1, 1)))) + 1
    # Columns beyond the box are never sampled with a weight above 0, but 0 * NaN is NaN.
    flat, fresh = space.get("columns", (batch, channels, depth, padded), image.dtype, device, width)
    flat[..., :width].unflatten(-1, (rows, cols)).copy_(image)
    if fresh:
        flat[..., width:].zero_()
    flat_label, fresh = space.get(
        "label columns", (batch, 1, depth, padded), torch.float32, device, width
    )
    flat_label[:, 0, :, :width].unflatten(-1, (rows, cols)).copy_(label)
    if fresh:
        flat_label[..., width:].zero_()

    grid, fresh = space.get("column grid", (batch, o0, width, 2), torch.float32, device)
    if fresh:  # the column coordinates depend on the shapes only
        step = 2 / (padded - 1)
        grid[..., 0] = torch.arange(width, dtype=torch.float32, device=device) * step - 1
    to_norm = 2 / max(depth - 1, 1)
    y = torch.arange(rows, device=device).view(1, 1, rows, 1)
    x = torch.arange(cols, device=device).view(1, 1, 1, cols)
    q0 = torch.arange(o0, device=device).view(1, o0, 1, 1)

    def coefficient(values: torch.Tensor) -> torch.Tensor:
        return (values * to_norm).to(torch.float32).to(device).view(batch, 1, 1, 1)

    plane = coefficient(r[:, 0]) * y + coefficient(r[:, 1]) * x + (coefficient(start) - 1)
    torch.add(coefficient(slope) * q0, plane, out=grid[..., 1].unflatten(-1, (rows, cols)))
    stack = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    label_stack = F.grid_sample(
        flat_label, grid, mode="nearest", padding_mode="zeros", align_corners=True
    )
    return (
        stack.view(batch, channels, o0, rows, cols),
        label_stack.view(batch, o0, rows, cols),
    )
