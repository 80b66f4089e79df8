"""Attention maps over video frames: pure colour helpers and static matplotlib figures.

Arrays in, arrays out: no helper changes its inputs. Maps are ``(T, H', W')`` on the patch
grid (``tsf.explain`` output for one clip) or already at frame resolution; frames are
``(T, H, W, 3)`` floats in [0, 1] (:func:`display_frames` makes them from a model input).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure  # figures outside pyplot: nothing to close, nothing shown twice

from ..explain import upsample

log = logging.getLogger(__name__)

# The normalisation of the authors' data pipeline: pixels / 255, then (x - 0.45) / 0.225.
MEAN, STD = 0.45, 0.225


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.array(x, dtype=np.float64)  # a copy


def display_frames(video, mean: float | Sequence[float] = MEAN, std: float | Sequence[float] = STD) -> np.ndarray:
    """A model input ``(C, T, H, W)`` (or a batch of one) to displayable frames ``(T, H, W, 3)`` in [0, 1].

    Undoes ``(x - mean) / std`` and clips; one channel is repeated to three.
    """
    v = _numpy(video)
    if v.ndim == 5:
        if v.shape[0] != 1:
            raise ValueError(f"expected one clip (C, T, H, W) or a batch of one, got shape {v.shape}")
        v = v[0]
    if v.ndim != 4:
        raise ValueError(f"expected a clip (C, T, H, W), got shape {v.shape}")
    C = v.shape[0]
    m = np.asarray(mean, dtype=np.float64).reshape(-1, 1, 1, 1)
    s = np.asarray(std, dtype=np.float64).reshape(-1, 1, 1, 1)
    frames = np.clip(v * s + m, 0.0, 1.0).transpose(1, 2, 3, 0)  # (T, H, W, C)
    if C == 1:
        frames = np.repeat(frames, 3, axis=-1)
    elif C != 3:
        raise ValueError(f"expected 1 or 3 channels, got {C} in shape {v.shape}")
    return frames


def normalise_maps(maps, per: str = "clip") -> np.ndarray:
    """Scale maps ``(..., T, H, W)`` to [0, 1] by their maximum over the clip (``per="clip"``,
    so frames stay comparable) or over each frame (``per="frame"``). Zero stays zero."""
    m = _numpy(maps)
    if per == "clip":
        axes = tuple(range(m.ndim - 3, m.ndim))
    elif per == "frame":
        axes = (m.ndim - 2, m.ndim - 1)
    else:
        raise ValueError(f"per must be 'clip' or 'frame', got {per!r}")
    top = m.max(axis=axes, keepdims=True)
    return np.divide(m, top, out=np.zeros_like(m), where=top > 0)


def colorize(heat, cmap: str = "inferno") -> np.ndarray:
    """Values in [0, 1] ``(...)`` to RGB ``(..., 3)`` with a matplotlib colour map."""
    h = np.clip(_numpy(heat), 0.0, 1.0)
    return np.asarray(matplotlib.colormaps[cmap](h))[..., :3]


def _at_resolution(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if heat.shape[-2:] == tuple(size):
        return heat
    up = upsample(torch.from_numpy(heat).reshape(-1, *heat.shape[-2:]).unsqueeze(0), size)[0]
    return up.reshape(*heat.shape[:-2], *size).numpy()


def overlay(frames, heat, *, cmap: str = "inferno", alpha: float = 0.5) -> np.ndarray:
    """Blend heat maps in [0, 1] over frames: ``(1 - alpha) * frame + alpha * colour``.

    ``frames``: ``(..., H, W, 3)`` in [0, 1]; ``heat``: ``(..., h, w)`` at frame resolution or on the
    patch grid (painted patch by patch). Returns a new array.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    f = _numpy(frames)
    if f.shape[-1] != 3:
        raise ValueError(f"frames must end in 3 colour channels, got shape {f.shape}")
    h = _at_resolution(_numpy(heat), f.shape[-3:-1])
    return (1.0 - alpha) * f + alpha * colorize(h, cmap)


def _pick_frames(T: int, frames: Sequence[int] | int | None) -> list[int]:
    if frames is None:
        frames = min(T, 8)
    if isinstance(frames, int):
        return sorted({round(i * (T - 1) / max(frames - 1, 1)) for i in range(frames)})
    bad = [t for t in frames if not 0 <= t < T]
    if bad:
        raise ValueError(f"frames {bad} are outside the clip's {T} frames")
    return list(frames)


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        log.info("wrote %s", path)
    return fig


def _label(fig: Figure, title: str, caption: str) -> None:
    fig.suptitle(title, fontsize=11)
    if caption:
        fig.supxlabel(caption, fontsize=8, color="0.3")


def plot_frame_strip(video, heat, path: str | Path | None = None, *, title: str = "attention",
                     caption: str = "", frames: Sequence[int] | int | None = None, cmap: str = "inferno",
                     alpha: float = 0.5, per: str = "clip") -> Figure:
    """A strip of frames (top) and the map over them (bottom); saved to ``path`` if given.

    ``heat``: ``(T, h, w)``, one clip's map; ``title``/``caption`` say what produced it.
    """
    f = display_frames(video)
    h = normalise_maps(heat, per)
    if h.shape[0] != f.shape[0]:
        raise ValueError(f"map has {h.shape[0]} frames, the clip {f.shape[0]}")
    picks = _pick_frames(f.shape[0], frames)
    over = overlay(f[picks], h[picks], cmap=cmap, alpha=alpha)
    fig = Figure(figsize=(1.6 * len(picks) + 0.4, 3.8), layout="constrained")
    axes = fig.subplots(2, len(picks), squeeze=False)
    for j, t in enumerate(picks):
        axes[0, j].imshow(f[t])
        axes[1, j].imshow(over[j])
        axes[0, j].set_title(f"frame {t + 1}", fontsize=9)
    axes[0, 0].set_ylabel("frame", fontsize=9)
    axes[1, 0].set_ylabel("map", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    _label(fig, title, caption)
    return _save(fig, path)


def plot_layer_grid(video, heats, path: str | Path | None = None, *, title: str = "attention by layer",
                    caption: str = "", frames: Sequence[int] | int | None = None,
                    layer_labels: Sequence[str] | None = None, cmap: str = "inferno", alpha: float = 0.5,
                    per: str = "clip") -> Figure:
    """A grid: one row per layer, one column per frame. ``heats``: ``(layers, T, h, w)``."""
    f = display_frames(video)
    hs = normalise_maps(heats, per)
    if hs.ndim != 4 or hs.shape[1] != f.shape[0]:
        raise ValueError(f"expected maps (layers, T={f.shape[0]}, h, w), got shape {hs.shape}")
    picks = _pick_frames(f.shape[0], frames)
    labels = list(layer_labels) if layer_labels is not None else [f"layer {i + 1}" for i in range(hs.shape[0])]
    if len(labels) != hs.shape[0]:
        raise ValueError(f"{len(labels)} layer labels for {hs.shape[0]} layers")
    fig = Figure(figsize=(1.5 * len(picks) + 0.6, 1.5 * hs.shape[0] + 0.9), layout="constrained")
    axes = fig.subplots(hs.shape[0], len(picks), squeeze=False)
    for i in range(hs.shape[0]):
        over = overlay(f[picks], hs[i, picks], cmap=cmap, alpha=alpha)
        for j, t in enumerate(picks):
            ax = axes[i, j]
            ax.imshow(over[j])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"frame {t + 1}", fontsize=9)
            if j == 0:
                ax.set_ylabel(labels[i], fontsize=9)
    _label(fig, title, caption)
    return _save(fig, path)


def plot_mask_scores(rows: Sequence[dict], path: str | Path | None = None, *,
                     title: str = "share of the map on the object", caption: str = "") -> Figure:
    """The table of :func:`tsf.explain.score_models` as a figure.

    Left: per model, the mean share of the map's mass on the object against chance (the share
    of the frame the object covers), with the spread over samples. Right: the mean share frame
    by frame.
    """
    if not rows:
        raise ValueError("no score rows to plot")
    names = list(dict.fromkeys(r["model"] for r in rows))
    fig = Figure(figsize=(10, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    x = np.arange(len(names))
    for i, name in enumerate(names):
        mine = [r for r in rows if r["model"] == name and r["chance"] > 0 and not math.isnan(r["share"])]
        by_sample: dict[int, list[dict]] = {}
        for r in mine:
            by_sample.setdefault(r["sample"], []).append(r)
        shares = np.array([np.mean([r["share"] for r in rs]) for rs in by_sample.values()])
        chance = float(np.mean([r["chance"] for r in mine]))
        left.bar(i - 0.18, shares.mean(), 0.36, yerr=shares.std() if len(shares) > 1 else None,
                 color="C0", label="map" if i == 0 else None, capsize=3)
        left.bar(i + 0.18, chance, 0.36, color="0.7", label="chance (mask area)" if i == 0 else None)
        frames = sorted({r["frame"] for r in mine})
        right.plot([t + 1 for t in frames], [np.mean([r["share"] for r in mine if r["frame"] == t]) for t in frames],
                   marker="o", ms=3, label=name)
    valid = [r for r in rows if r["chance"] > 0]
    frames = sorted({r["frame"] for r in valid})
    right.plot([t + 1 for t in frames], [np.mean([r["chance"] for r in valid if r["frame"] == t]) for t in frames],
               ls="--", color="k", lw=1, label="chance")
    right.xaxis.get_major_locator().set_params(integer=True)
    left.set_xticks(x, names, rotation=20, ha="right", fontsize=9)
    left.set_ylabel("share of map mass on the object")
    left.legend(fontsize=8)
    right.set_xlabel("frame (counted from 1)")
    right.set_ylabel("share of map mass on the object")
    right.legend(fontsize=8, ncols=2)
    _label(fig, title, caption)
    return _save(fig, path)


def plot_timeline(starts: Sequence[float], ends: Sequence[float], probs, classes: Sequence[str],
                  path: str | Path | None = None, *, title: str = "class probability over time", caption: str = "",
                  most: int = 6) -> Figure:
    """Class probability over a long video, one line per class, a point per window (at its middle).

    ``probs``: ``(windows, classes)``. The classes drawn are those that come first in some window,
    then the most probable on average, ``most`` at most; the rest are summed as "other".
    """
    p = _numpy(probs)
    if p.ndim != 2 or p.shape[0] != len(starts) or p.shape[0] != len(ends) or p.shape[1] != len(classes):
        raise ValueError(f"expected probs (windows={len(starts)}, classes={len(classes)}), got shape {p.shape}")
    winners = list(dict.fromkeys(int(j) for j in p.argmax(1)))
    shown = (winners + [int(j) for j in np.argsort(-p.mean(0)) if j not in winners])[:most]
    middle = (np.asarray(starts, dtype=np.float64) + np.asarray(ends, dtype=np.float64)) / 2
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.subplots()
    marker = "o" if len(middle) <= 60 else None
    for j in shown:
        ax.plot(middle, p[:, j], marker=marker, ms=3, label=classes[j])
    rest = [j for j in range(p.shape[1]) if j not in shown]
    if rest:
        ax.plot(middle, p[:, rest].sum(1), color="0.6", ls="--", lw=1, label=f"other {len(rest)} classes")
    ax.set_xlim(min(starts), max(ends))
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s): each point is one window, drawn at its middle")
    ax.set_ylabel("probability")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _label(fig, title, caption)
    return _save(fig, path)


def mask_outline(mask) -> tuple[list, list]:
    """The boundary of a mask ``(H, W)`` as line segments for a plot: ``(xs, ys)`` with ``None``
    between segments, in pixel coordinates (pixel ``(r, c)`` spans ``c - 0.5 .. c + 0.5`` and
    ``r - 0.5 .. r + 0.5``, as an image is drawn). Runs of boundary along a row or column are one
    segment. An empty mask has no outline."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"expected a mask (H, W), got shape {m.shape}")
    padded = np.pad(m, 1)
    xs: list = []
    ys: list = []
    for axis in (0, 1):  # 0: edges between rows (horizontal lines); 1: between columns (vertical)
        change = np.diff(padded, axis=axis)  # (H+1, W+2) or (H+2, W+1)
        change = change[:, 1:-1] if axis == 0 else change[1:-1, :]
        for line in range(change.shape[axis]):
            cells = change[line] if axis == 0 else change[:, line]
            edges = np.flatnonzero(cells)
            if len(edges) == 0:
                continue
            breaks = np.flatnonzero(np.diff(edges) > 1)
            for start, end in zip(np.r_[edges[0], edges[breaks + 1]], np.r_[edges[breaks], edges[-1]]):
                run = [float(start) - 0.5, float(end) + 0.5]
                at = [float(line) - 0.5] * 2
                x, y = (run, at) if axis == 0 else (at, run)
                xs += x + [None]
                ys += y + [None]
    return xs, ys
