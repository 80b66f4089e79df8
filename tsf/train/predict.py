"""Predict the classes of real video files with the paper's test protocol, or window by window over a long one."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..data.datasets import VideoDataset, read_class_names
from ..data.transforms import EvalTransform
from ..data.video import ClipSampling, FrameIndices, VideoError, decode_frames, probe_video
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


# -- a long video, window by window --------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Class probabilities of the sliding windows of one video."""

    path: str
    classes: list[str]
    starts: list[float]  # seconds: where each window begins
    ends: list[float]  # seconds: where it ends
    probs: Tensor  # (windows, classes): softmax of the window's logits averaged over its crops
    padded: int  # clip positions that repeat the video's last frame (a video shorter than one window)

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of every window, best first."""
        best = self.probs.topk(min(k, self.probs.shape[1]), dim=1)
        return [[(self.classes[j], p) for p, j in zip(ps, js)]
                for ps, js in zip(best.values.tolist(), best.indices.tolist())]

    def rows(self, k: int = 3) -> list[dict]:
        """One row per window (start, end, top classes) for :func:`tsf.bench.table.format_table`."""
        rows = []
        for i, top in enumerate(self.top(k)):
            row = {"window": i + 1, "start": self.starts[i], "end": self.ends[i]}
            for rank, (name, p) in enumerate(top, 1):
                row[f"top{rank}"] = f"{name} ({p:.0%})"
            rows.append(row)
        return rows


def sliding_windows(num_video_frames: int, video_fps: float, num_frames: int, sampling_rate: int, stride: float,
                    *, target_fps: float = 30.0) -> list[FrameIndices]:
    """The dense clips of a sliding window: window ``k`` starts ``k * stride`` seconds in.

    A window spans ``sampling_rate * num_frames`` frames at ``target_fps`` (the dense sampling of
    :func:`tsf.data.dense_indices`), its ``num_frames`` frames spread by linspace over it. Windows
    start every ``stride`` seconds while they fit in the video; a video shorter than one window
    gives one window, padded with its last frame.
    """
    if not stride > 0:
        raise ValueError(f"stride must be > 0 seconds, got {stride}")
    if num_video_frames < 1 or num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"need num_video_frames, num_frames, sampling_rate >= 1, got "
                         f"{num_video_frames}, {num_frames}, {sampling_rate}")
    fps = video_fps if video_fps > 0 and math.isfinite(video_fps) else target_fps
    window = sampling_rate * num_frames * fps / target_fps  # in frames of the file
    step = stride * fps
    count = int(math.floor(max(num_video_frames - window, 0.0) / step + 1e-9)) + 1
    out = []
    for k in range(count):
        raw = np.floor(np.linspace(k * step, k * step + window - 1, num_frames)).astype(np.int64)
        out.append(FrameIndices(tuple(int(i) for i in raw.clip(0, num_video_frames - 1)),
                                int((raw > num_video_frames - 1).sum())))
    return out


@torch.no_grad()
def predict_timeline(model: nn.Module, path: str | Path, *, classes: list[str] | None = None, stride: float | None = None,
                     sampling_rate: int = 32, num_crops: int = 1, target_fps: float = 30.0, batch_size: int = 8,
                     device: str | torch.device | None = None, progress: bool = True) -> Timeline:
    """Class probabilities over a long video: the model on every window of :func:`sliding_windows`.

    ``stride`` (seconds) defaults to half a window. Frames are decoded at the crop's short side,
    ``batch_size`` windows at a time, then cut into ``num_crops`` crops (1: the centre).
    """
    cfg = model.config
    device = torch.device(device) if device is not None else next(model.parameters()).device
    names = classes or [str(i) for i in range(cfg.num_classes)]
    info = probe_video(path)
    fps = info.fps if info.fps > 0 and math.isfinite(info.fps) else target_fps
    span = sampling_rate * cfg.num_frames / target_fps  # seconds
    windows = sliding_windows(info.num_frames, fps, cfg.num_frames, sampling_rate,
                              stride if stride is not None else span / 2, target_fps=target_fps)
    transform = EvalTransform(cfg.img_size, num_crops)
    model.eval()
    probs = []
    bar = tqdm(total=len(windows), desc="windows", unit="window", disable=not progress)
    for first in range(0, len(windows), batch_size):
        chunk = windows[first:first + batch_size]
        unique = sorted({i for w in chunk for i in w.indices})
        frames = decode_frames(path, unique, size=cfg.img_size)  # (U, H, W, C), short side = the crop
        where = {i: k for k, i in enumerate(unique)}
        views = torch.cat([transform(frames[[where[i] for i in w.indices]]) for w in chunk])  # (n * crops, C, T, S, S)
        logits = model(views.to(device)).float().view(len(chunk), num_crops, -1).mean(1)
        probs.append(logits.softmax(-1).cpu())
        bar.update(len(chunk))
    bar.close()
    starts = [w.indices[0] / fps for w in windows]
    return Timeline(str(path), names, starts, [min(s + span, info.num_frames / fps) for s in starts], torch.cat(probs),
                    sum(w.padded for w in windows))


def centre_view(path: str | Path, model_config, *, sampling: str = "dense", sampling_rate: int = 32) -> tuple[Tensor, bool]:
    """The one view the explorer shows: the middle window, centre crop, normalised ``(C, T, S, S)``,
    and whether the video was too short for the window (its last frame repeated)."""
    spec = ClipSampling(num_frames=model_config.num_frames, sampling=sampling, sampling_rate=sampling_rate)
    data = VideoDataset([(path, 0)], ["?"], mode="val", sampling=spec, crop_size=model_config.img_size,
                        on_error="raise")
    clip, _ = data[0]
    return clip, data.padded > 0
