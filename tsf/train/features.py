"""The final cls feature of video files: what ``python -m tsf features`` writes.

Every video is read with the test protocol (``num_clips`` temporal windows x ``num_crops``
spatial crops, as :func:`tsf.train.predict.predict_videos` and ``evaluate`` read it); the
feature of a video is the mean of its views' normalised cls features
(:meth:`tsf.TimeSformer.forward_features`, the input of the classifier head). The per-view
features can be kept too.

The file is safetensors: ``features`` ``(N, D)`` float32, ``views`` ``(N, V, D)`` when asked
for, ``labels`` ``(N,)`` when the videos came from an annotation list; its metadata holds the
file names (``paths``, a JSON list in the rows' order), the class names and what was read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, safe_open, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.datasets import VideoDataset
from ..data.video import ClipSampling

FORMAT = "tsf-features"


@dataclass(frozen=True)
class Features:
    """The features of ``paths``, one row each (``views`` only when kept)."""

    paths: list[str]
    features: Tensor  # (N, D) float32: the mean over the views
    views: Tensor | None  # (N, V, D) float32, views clip-major (clip 0's crops first)
    labels: list[int] | None  # from an annotation list
    classes: list[str] | None
    protocol: str  # what a row averages, e.g. "1 clip x 3 crops, dense sampling at rate 32"

    def save(self, path: str | Path) -> Path:
        """Write the safetensors file; returns its path."""
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"features are written as safetensors: name the file *.safetensors, got {str(path)!r}")
        tensors = {"features": self.features.contiguous()}
        if self.views is not None:
            tensors["views"] = self.views.contiguous()
        if self.labels is not None:
            tensors["labels"] = torch.tensor(self.labels, dtype=torch.int64)
        meta = {"format": FORMAT, "paths": json.dumps(self.paths), "protocol": self.protocol,
                "classes": json.dumps(self.classes)}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=meta)
        return path


def load_features(path: str | Path) -> Features:
    """Read a file written by :meth:`Features.save`."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tsf features file (no '{FORMAT}' marker in its metadata)")
    tensors = load_file(str(path))
    labels = tensors.get("labels")
    return Features(json.loads(meta["paths"]), tensors["features"], tensors.get("views"),
                    labels.tolist() if labels is not None else None, json.loads(meta["classes"]), meta["protocol"])


@torch.no_grad()
def extract_features(model: nn.Module, samples: Sequence[tuple[str | Path, int]], *, classes: Sequence[str] | None = None,
                     labelled: bool = False, num_clips: int = 1, num_crops: int = 3, sampling: str = "dense",
                     sampling_rate: int = 32, keep_views: bool = False, device: str | torch.device | None = None,
                     progress: bool = True) -> Features:
    """The features of ``samples`` (``(path, label)``; labels are kept when ``labelled``).

    A file that cannot be read is a :class:`tsf.data.VideoError` naming it.
    """
    cfg = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    names = list(classes) if classes is not None else [str(i) for i in range(cfg.num_classes)]
    spec = ClipSampling(num_frames=cfg.num_frames, sampling=sampling, sampling_rate=sampling_rate,
                        num_clips=num_clips if sampling == "dense" else 1)
    data = VideoDataset(list(samples), names, mode="test", sampling=spec, crop_size=cfg.img_size,
                        num_crops=num_crops, on_error="raise")
    model.eval()
    means, views = [], []
    for i in tqdm(range(len(data)), desc="features", unit="video", disable=not progress):
        clip_views, _, _ = data[i]  # (V, C, T, S, S)
        feats = model.forward_features(clip_views.to(device)).float().cpu()  # (V, D)
        means.append(feats.mean(0))
        if keep_views:
            views.append(feats)
    clips = spec.num_clips
    protocol = (f"{clips} clip{'s' * (clips > 1)} x {num_crops} crop{'s' * (num_crops > 1)}, {sampling} sampling"
                + (f" at rate {sampling_rate}" if sampling == "dense" else ""))
    return Features([str(p) for p, _ in data.samples], torch.stack(means), torch.stack(views) if keep_views else None,
                    [label for _, label in data.samples] if labelled else None, list(classes) if classes else None,
                    protocol)
