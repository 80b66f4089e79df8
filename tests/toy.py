"""A tiny dataset for engine tests that must not depend on tsf.data: the class is a colour."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class ColourClips(Dataset):
    """4 classes: red, green, blue or dark clips of 4 x 16 x 16 under noise. Part of the noise
    comes from the global RNG, as a real augmentation would, so tests see whether the
    engine controls it."""

    classes = ["red", "green", "blue", "dark"]
    num_classes = 4

    def __init__(self, num_samples: int, seed: int = 0, frames: int = 4, size: int = 16) -> None:
        self.num_samples, self.seed, self.frames, self.size = num_samples, seed, frames, size

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        label = i % 4
        clip = torch.randn(3, self.frames, self.size, self.size, generator=g) * 0.5
        if label < 3:
            clip[label] += 1.0
        else:
            clip -= 1.0
        clip += torch.randn(clip.shape) * 0.1  # global RNG: an "augmentation"
        return clip, label
