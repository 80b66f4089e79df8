"""Running a model to record its attention: eval mode, no gradients, one clip or a batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..model import AttentionMaps


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (no dropout, no stochastic depth), then restore its mode."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def batched(video: Tensor) -> Tensor:
    """A clip ``(C, T, H, W)`` as a batch of one; a batch as it is."""
    if isinstance(video, Tensor) and video.ndim == 4:
        return video.unsqueeze(0)  # one clip (C, T, H, W)
    return video


def attention_maps(model: nn.Module, video: Tensor) -> tuple[Tensor, AttentionMaps]:
    """Run ``model`` in eval mode without gradients; ``(logits, maps)`` for a clip or a batch."""
    with eval_mode(model), torch.no_grad():
        return model(batched(video), return_attention=True)
