"""Toy clips with a known object, for demos and tests of attention maps and their scores."""

from __future__ import annotations

import torch
from torch import Tensor


def moving_square(frames: int, size: int, *, square: int | None = None, channels: int = 3, seed: int = 0,
                  noise: float = 0.1) -> tuple[Tensor, Tensor]:
    """A bright square crossing a dim noisy background: ``(clip (C, T, S, S), mask (T, S, S) bool)``.

    The clip is normalised as the model expects (``(x - 0.45) / 0.225``). A stand-in for a
    clip of the synthetic motion task, for demos and tests of the maps and the scores.
    """
    g = torch.Generator().manual_seed(seed)
    side = square or max(2, size // 4)
    if not 0 < side <= size:
        raise ValueError(f"square side {side} does not fit a frame of {size} pixels")
    y = int(torch.randint(0, size - side + 1, (1,), generator=g))
    x0, x1 = 0, size - side
    if torch.rand(1, generator=g) < 0.5:
        x0, x1 = x1, x0
    pixels = 0.2 + noise * torch.rand(channels, frames, size, size, generator=g)
    mask = torch.zeros(frames, size, size, dtype=torch.bool)
    for t in range(frames):
        x = round(x0 + (x1 - x0) * t / max(frames - 1, 1))
        mask[t, y:y + side, x:x + side] = True
    pixels = torch.where(mask.unsqueeze(0), torch.full_like(pixels, 0.95), pixels)
    return (pixels - 0.45) / 0.225, mask
