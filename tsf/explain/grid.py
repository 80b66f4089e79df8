"""Token order and map shapes: the one place that turns the model's token order into ``(t, h, w)``.

A clip of ``T`` frames on an ``H x W`` patch grid has ``P = T*H*W`` patch tokens in the model's
canonical order ``p = (h*W + w)*T + t`` (patch-major, time-minor, as the authors' code), and the
model's token ``1 + p``; token 0 is the cls. Reading that order as ``(t*H + h)*W + w`` instead
is the classic "bars" bug.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

from ..attention import Grid

Query = tuple[int, int, int]  # a patch (t, h, w)


def tokens_to_grid(x: Tensor, grid: Grid) -> Tensor:
    """Patch values in the canonical token order to a map: ``(..., T*H*W) -> (..., T, H, W)``.

    Token ``p = (h*W + w)*T + t`` (patch-major, time-minor, the model's order without the cls)
    goes to ``[..., t, h, w]``.
    """
    T, H, W = grid
    if x.shape[-1] != T * H * W:
        raise ValueError(f"expected {T * H * W} patch tokens for the grid (T, H, W) = {grid}, "
                         f"got a last dimension of {x.shape[-1]} in shape {tuple(x.shape)}")
    return rearrange(x, "... (h w t) -> ... t h w", t=T, h=H, w=W)


def grid_to_tokens(x: Tensor, grid: Grid) -> Tensor:
    """The inverse of :func:`tokens_to_grid`: ``(..., T, H, W) -> (..., T*H*W)`` in canonical order."""
    if tuple(x.shape[-3:]) != tuple(grid):
        raise ValueError(f"expected a map ending in (T, H, W) = {grid}, got shape {tuple(x.shape)}")
    return rearrange(x, "... t h w -> ... (h w t)")


def patch_index(query: Query, grid: Grid) -> int:
    """The canonical index ``p = (h*W + w)*T + t`` of patch ``(t, h, w)`` (the model's token ``1 + p``)."""
    T, H, W = grid
    t, h, w = (int(v) for v in query)
    if not (0 <= t < T and 0 <= h < H and 0 <= w < W):
        raise ValueError(f"query patch (t, h, w) = {tuple(query)} is outside the grid (T, H, W) = {grid}")
    return (h * W + w) * T + t


def upsample(maps: Tensor, size: tuple[int, int], mode: str = "nearest") -> Tensor:
    """Patch maps ``(..., T, H, W)`` to frame resolution ``(..., T, *size)``.

    ``nearest`` paints every pixel of a patch with the patch's value (what the model saw);
    ``bilinear`` smooths across patch borders.
    """
    if maps.ndim < 3:
        raise ValueError(f"expected maps (..., T, H, W), got shape {tuple(maps.shape)}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    flat = maps.reshape(-1, 1, h, w).to(torch.promote_types(maps.dtype, torch.float32))
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kwargs)
    return out.reshape(*lead, *size)
