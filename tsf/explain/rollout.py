"""Attention rollout (Abnar & Zuidema, 2020): every step ``S = 0.5 A + 0.5 I``, rows re-normalised."""

from __future__ import annotations

from torch import Tensor, nn

from ..model import AttentionMaps
from .capture import attention_maps
from .core import Head, compose
from .grid import Query, tokens_to_grid


def rollout_tokens(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
                   upto: int | None = None, query: Query | None = None) -> Tensor:
    """One row of the rollout ``R = B_upto @ ... @ B_1``: ``(B, 1 + P)``, rows summing to one.

    Column 0 is the share that reaches the input cls token, columns ``1 + p`` the patches in
    canonical order. ``query=None`` gives the output cls's row, ``query=(t, h, w)`` that
    patch's row; ``upto`` rolls out the first ``upto`` blocks only (default: all).
    """
    return compose(maps, rule="rollout", head=head, discard_ratio=discard_ratio, upto=upto, query=query)


def rollout(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
            upto: int | None = None, query: Query | None = None) -> Tensor:
    """Attention rollout as a map ``(B, T, H, W)`` over the patches (see the package docstring).

    The map and the share left on the input cls (:func:`rollout_tokens`, column 0) sum to one.
    """
    row = rollout_tokens(maps, head=head, discard_ratio=discard_ratio, upto=upto, query=query)
    return tokens_to_grid(row[:, 1:], maps[0][0].grid)


def explain_rollout(model: nn.Module, video: Tensor, *, head: Head = "mean", discard_ratio: float = 0.0,
                    upto: int | None = None, query: Query | None = None) -> Tensor:
    """Run ``model`` on a clip or a batch (eval mode, no gradients) and return its :func:`rollout`."""
    _, maps = attention_maps(model, video)
    return rollout(maps, head=head, discard_ratio=discard_ratio, upto=upto, query=query)
