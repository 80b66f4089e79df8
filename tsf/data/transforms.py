"""Clip transforms of the authors' recipe, in torch, batched over the frames of a clip.

Every function takes a uint8 clip ``(T, H, W, C)`` (the layout decord returns) and returns a
new tensor; none mutates its input. Randomness comes only from an explicit
``torch.Generator`` (``None`` means torch's global generator), so a transform is
reproducible from a seed.

The recipe (facebookresearch/TimeSformer, inherited from SlowFast):

* training: the short side is resized to a random size in ``[256, 320]``, a random
  ``224 x 224`` crop is taken, and the clip is flipped left/right with probability 0.5
  (not for Something-Something-V2, where left and right are part of the label);
* test: the short side is resized to the crop size and 3 crops are taken along the long
  side (left / centre / right, or top / centre / bottom for portrait video);
* normalisation: ``(x / 255 - 0.45) / 0.225`` per channel, giving float ``(C, T, H, W)``.

Resizing is bilinear without corner alignment, as in the authors' code; it runs on the
uint8 tensor (torch has a fast uint8 kernel for this), so the result is rounded to uint8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

MEAN = (0.45, 0.45, 0.45)  # the authors' DATA.MEAN
STD = (0.225, 0.225, 0.225)  # the authors' DATA.STD


def _check_clip(frames: Tensor) -> None:
    if not isinstance(frames, Tensor) or frames.ndim != 4:
        shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
        raise ValueError(f"expected a clip (T, H, W, C), got {shape}")
    if frames.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 clip, got {frames.dtype}")


def short_side_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """The (height, width) with the short side at ``size`` and the aspect ratio kept.

    The long side is rounded down, as in the authors' ``short_side_scale``.
    """
    if size < 1:
        raise ValueError(f"short side must be >= 1, got {size}")
    if width < height:
        return int(math.floor(height / width * size)), size
    return size, int(math.floor(width / height * size))


def resize(frames: Tensor, height: int, width: int) -> Tensor:
    """Bilinear resize of every frame to ``(height, width)``; returns ``frames`` itself if it already has that size."""
    _check_clip(frames)
    if frames.shape[1:3] == (height, width):
        return frames
    x = rearrange(frames, "t h w c -> t c h w")  # a channels-last view: torch's fast uint8 path
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return rearrange(x, "t c h w -> t h w c").contiguous()


def short_side_resize(frames: Tensor, size: int) -> Tensor:
    """Resize so that the short side is ``size`` (aspect ratio kept)."""
    _check_clip(frames)
    return resize(frames, *short_side_shape(frames.shape[1], frames.shape[2], size))


def random_short_side_resize(frames: Tensor, min_size: int = 256, max_size: int = 320,
                             generator: torch.Generator | None = None) -> Tensor:
    """Scale jitter: the short side to a size drawn uniformly from ``[min_size, max_size]`` (rounded)."""
    if not 1 <= min_size <= max_size:
        raise ValueError(f"need 1 <= min_size <= max_size, got [{min_size}, {max_size}]")
    u = torch.rand((), generator=generator).item()
    return short_side_resize(frames, int(round(min_size + u * (max_size - min_size))))


def crop(frames: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """The window ``[top, top + height) x [left, left + width)`` of every frame (a view)."""
    _check_clip(frames)
    _, h, w, _ = frames.shape
    if not (0 <= top and top + height <= h and 0 <= left and left + width <= w):
        raise ValueError(f"crop {height}x{width} at ({top}, {left}) does not fit frames of {h}x{w}")
    return frames[:, top : top + height, left : left + width]


def random_crop(frames: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """A ``size x size`` window at a uniformly random position."""
    _check_clip(frames)
    _, h, w, _ = frames.shape
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from frames of {h}x{w}")
    top = int(torch.randint(0, h - size + 1, (), generator=generator))
    left = int(torch.randint(0, w - size + 1, (), generator=generator))
    return crop(frames, top, left, size, size)


def horizontal_flip(frames: Tensor) -> Tensor:
    """Mirror every frame left/right."""
    _check_clip(frames)
    return frames.flip(2)


def random_horizontal_flip(frames: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror left/right with probability ``p`` (one draw for the whole clip)."""
    flip = torch.rand((), generator=generator).item() < p
    return horizontal_flip(frames) if flip else frames


def crop_offsets(height: int, width: int, size: int, num_crops: int = 3) -> list[tuple[int, int]]:
    """(top, left) of the test crops: spread along the long side, centred on the short one.

    ``num_crops=3`` gives left, centre, right (top, centre, bottom for portrait frames), as
    the authors' ``uniform_crop``; ``num_crops=1`` gives the centre crop.
    """
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from frames of {height}x{width}")
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    centre_y, centre_x = int(math.ceil((height - size) / 2)), int(math.ceil((width - size) / 2))
    if num_crops == 1:
        return [(centre_y, centre_x)]
    # evenly spread from one end to the other, rounded up (ceil) like the authors' centre
    if height > width:  # portrait: top, (centre,) bottom
        return [(-(-k * (height - size) // (num_crops - 1)), centre_x) for k in range(num_crops)]
    return [(centre_y, -(-k * (width - size) // (num_crops - 1))) for k in range(num_crops)]


def spatial_crops(frames: Tensor, size: int, num_crops: int = 3) -> Tensor:
    """The test crops stacked: ``(num_crops, T, size, size, C)``."""
    _check_clip(frames)
    return torch.stack([crop(frames, top, left, size, size)
                        for top, left in crop_offsets(frames.shape[1], frames.shape[2], size, num_crops)])


def normalize(frames: Tensor, mean: float | Sequence[float] = MEAN, std: float | Sequence[float] = STD) -> Tensor:
    """uint8 ``(..., T, H, W, C)`` -> float32 ``(..., C, T, H, W)`` with ``(x / 255 - mean) / std`` per channel."""
    if frames.dtype != torch.uint8 or frames.ndim < 4:
        raise ValueError(f"expected uint8 (..., T, H, W, C), got {frames.dtype} {tuple(frames.shape)}")
    channels = frames.shape[-1]
    mean_t = torch.as_tensor(mean, dtype=torch.float32).expand(channels)
    std_t = torch.as_tensor(std, dtype=torch.float32).expand(channels)
    x = (frames.float() / 255.0 - mean_t) / std_t
    return rearrange(x, "... t h w c -> ... c t h w").contiguous()


def denormalize(clip: Tensor, mean: float | Sequence[float] = MEAN, std: float | Sequence[float] = STD) -> Tensor:
    """The inverse of :func:`normalize`: float ``(..., C, T, H, W)`` -> uint8 ``(..., T, H, W, C)`` (for display)."""
    channels = clip.shape[-4]
    mean_t = torch.as_tensor(mean, dtype=torch.float32).expand(channels)
    std_t = torch.as_tensor(std, dtype=torch.float32).expand(channels)
    x = rearrange(clip.float(), "... c t h w -> ... t h w c") * std_t + mean_t
    return (x * 255.0).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class TrainTransform:
    """Scale jitter, random crop, optional flip, normalisation: uint8 (T, H, W, C) -> float (C, T, S, S)."""

    crop_size: int = 224  # S
    min_scale: int = 256  # short side jitter range, as the authors' DATA.TRAIN_JITTER_SCALES
    max_scale: int = 320
    flip: bool = True  # off for data where left/right is part of the label (SSv2)

    def __call__(self, frames: Tensor, generator: torch.Generator | None = None) -> Tensor:
        x = random_short_side_resize(frames, self.min_scale, self.max_scale, generator)
        x = random_crop(x, self.crop_size, generator)
        if self.flip:
            x = random_horizontal_flip(x, 0.5, generator)
        return normalize(x)


@dataclass(frozen=True)
class EvalTransform:
    """Short side to the crop size, then ``num_crops`` crops: uint8 (T, H, W, C) -> float (num_crops, C, T, S, S)."""

    crop_size: int = 224
    num_crops: int = 3  # the paper's 3 spatial crops; 1 = centre crop

    def __call__(self, frames: Tensor) -> Tensor:
        x = short_side_resize(frames, self.crop_size)
        return normalize(spatial_crops(x, self.crop_size, self.num_crops))
