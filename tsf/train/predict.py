"""Predict the classes of real video files with the paper's test protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..data.datasets import VideoDataset, read_class_names
from ..data.video import ClipSampling, VideoError
from .checkpoint import read_classes


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]  # (class name, probability), best first
    views: int  # temporal clips x spatial crops whose logits were summed
    error: str = ""  # why the file could not be used (on_error="report"; then top is empty and views 0)


def class_names(checkpoint: str | Path | None, labels: str | Path | None, num_classes: int) -> list[str]:
    """The model's class names: from ``labels`` (:func:`tsf.data.read_class_names`), else the checkpoint's, else numbers."""
    names = read_class_names(labels) if labels else (read_classes(checkpoint) if checkpoint else None)
    if names is None:
        return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{labels or checkpoint}: {len(names)} class names for a model with {num_classes} classes")
    return names


PREDICT_ON_ERROR: tuple[str, ...] = ("raise", "report")


@torch.no_grad()
def predict_videos(model: nn.Module, paths: list[str | Path], *, classes: list[str] | None = None, topk: int = 5,
                   num_clips: int = 1, num_crops: int = 3, sampling: str = "dense", sampling_rate: int = 32,
                   device: str | torch.device | None = None, on_error: str = "raise") -> list[Prediction]:
    """Top-k classes of each video: ``num_clips`` x ``num_crops`` views, logits summed (the paper's protocol).

    A file that cannot be used raises its :class:`~tsf.data.VideoError` (``on_error="raise"``),
    or gets a :class:`Prediction` whose ``error`` says why (``"report"``), in its place among the others.
    """
    if on_error not in PREDICT_ON_ERROR:
        raise ValueError(f"on_error must be one of {PREDICT_ON_ERROR}, got {on_error!r}")
    cfg = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    names = classes or [str(i) for i in range(cfg.num_classes)]
    spec = ClipSampling(num_frames=cfg.num_frames, sampling=sampling, sampling_rate=sampling_rate,
                        num_clips=num_clips if sampling == "dense" else 1)
    data = VideoDataset([(p, 0) for p in paths], names, mode="test", sampling=spec, crop_size=cfg.img_size,
                        num_crops=num_crops, on_error="raise")
    model.eval()
    out = []
    for i, path in enumerate(paths):
        try:
            views, _, _ = data[i]  # (V, C, T, S, S)
        except VideoError as err:
            if on_error == "raise":
                raise
            out.append(Prediction(str(path), [], 0, err.reason))
            continue
        logits = model(views.to(device)).float().sum(0)
        probs = (logits / views.shape[0]).softmax(-1)
        best = probs.topk(min(topk, probs.numel()))
        out.append(Prediction(str(path), [(names[j], p) for p, j in zip(best.values.tolist(), best.indices.tolist())],
                              views.shape[0]))
    return out
