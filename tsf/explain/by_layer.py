"""The rollout (or gradient rollout) up to every block at once: how the map forms with depth."""

from __future__ import annotations

from torch import Tensor

from ..model import AttentionMaps
from .core import Head, compose_by_layer
from .grid import Query, tokens_to_grid


def rollout_by_layer(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
                     query: Query | None = None, rule: str = "rollout") -> Tensor:
    """The rollout up to every block at once: ``(depth, B, T, H, W)``, entry ``k`` is ``upto = k + 1``.

    The operators are built once. ``rule="gradient"`` does the same for relevance maps.
    """
    rows = compose_by_layer(maps, rule=rule, head=head, discard_ratio=discard_ratio, query=query)
    return tokens_to_grid(rows[..., 1:], maps[0][0].grid)
