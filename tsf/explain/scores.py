"""Is it meaningful? Maps scored against a known object mask, per frame, against chance."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .methods import explain


@dataclass(frozen=True)
class MaskScore:
    """Per frame: ``share`` of the map's mass on the object, ``chance``: the share of the frame it covers."""

    share: Tensor  # (..., T)
    chance: Tensor  # (..., T)

    @property
    def lift(self) -> Tensor:
        """share / chance: 1 is chance level (NaN where the object is absent)."""
        return self.share / self.chance


def mask_coverage(mask: Tensor, grid_hw: tuple[int, int]) -> Tensor:
    """The fraction of each patch a mask covers: ``(..., T, Hpx, Wpx) -> (..., T, H, W)`` in [0, 1].

    A mask already at the patch grid is returned as floats.
    """
    H, W = grid_hw
    if mask.ndim < 3:
        raise ValueError(f"expected a mask (..., T, H, W), got shape {tuple(mask.shape)}")
    mh, mw = mask.shape[-2:]
    if mh % H or mw % W:
        raise ValueError(f"mask of {mh} x {mw} pixels does not divide into the {H} x {W} patch grid")
    m = mask.to(torch.float64)
    if (mh, mw) == (H, W):
        return m
    lead = m.shape[:-2]
    return F.avg_pool2d(m.reshape(-1, 1, mh, mw), (mh // H, mw // W)).reshape(*lead, H, W)


def mask_scores(attention: Tensor, mask: Tensor) -> MaskScore:
    """Score maps ``(..., T, H, W)`` against per-frame object masks ``(..., T, Hpx, Wpx)`` (bool).

    ``share[t]``: the map's mass in frame ``t`` that falls on the object (a patch counts by the
    fraction of its pixels the mask covers, as if the map were upsampled by nearest), over
    the frame's mass. ``chance[t]``: the fraction of frame ``t`` the mask covers, the share a
    uniform map would get. NaN where a frame has no mass.
    """
    if attention.ndim < 3:
        raise ValueError(f"expected maps (..., T, H, W), got shape {tuple(attention.shape)}")
    if attention.shape[-3] != mask.shape[-3]:
        raise ValueError(f"map has {attention.shape[-3]} frames, mask has {mask.shape[-3]} "
                         f"(shapes {tuple(attention.shape)} and {tuple(mask.shape)})")
    cover = mask_coverage(mask, tuple(attention.shape[-2:]))
    a = attention.detach().to(torch.float64)
    total = a.sum(dim=(-2, -1))
    share = (a * cover).sum(dim=(-2, -1)) / total
    return MaskScore(share=share, chance=cover.mean(dim=(-2, -1)).expand_as(share))


def score_models(models: Sequence[tuple[str, nn.Module]], samples: Iterable[tuple[Tensor, Tensor]], *,
                 method: str = "rollout", progress: bool = True, **options) -> list[dict]:
    """Score every model's maps on every ``(clip, mask)`` sample: a tidy table, one row per frame.

    ``clip``: ``(C, T, H, W)``; ``mask``: ``(T, Hpx, Wpx)`` bool, the deciding object. Rows:
    ``model, method, sample, frame, share, chance, lift``. ``options`` go to :func:`explain`.
    """
    samples = list(samples)
    rows: list[dict] = []
    for name, model in tqdm(models, desc="models", disable=not progress):
        for i, (clip, mask) in enumerate(samples):
            m = explain(model, clip, method, **options)[0]  # (T, H, W)
            s = mask_scores(m, mask)
            for t in range(m.shape[0]):
                share, chance = float(s.share[t]), float(s.chance[t])
                rows.append(dict(model=name, method=method, sample=i, frame=t, share=share, chance=chance,
                                 lift=share / chance if chance > 0 else float("nan")))
    return rows


def summarise_scores(rows: Sequence[dict]) -> list[dict]:
    """Per model: mean share, mean chance, mean lift and the fraction of frames above chance.

    Frames without the object (chance 0) are left out.
    """
    out = []
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == name and r["chance"] > 0 and not math.isnan(r["share"])]
        n = len(mine)
        if n == 0:
            raise ValueError(f"model {name!r} has no frame where the object is present")
        out.append(dict(model=name, method=mine[0]["method"], frames=n,
                        share=sum(r["share"] for r in mine) / n,
                        chance=sum(r["chance"] for r in mine) / n,
                        lift=sum(r["lift"] for r in mine) / n,
                        above_chance=sum(r["share"] > r["chance"] for r in mine) / n))
    return out
