"""One step's raw attention: no residual, no rollout."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..model import AttentionMaps, StepAttention
from .capture import attention_maps
from .core import Head, check_maps, finish_state, pull_back, start_state, step_operator
from .grid import Query, tokens_to_grid


def _step_of(maps: AttentionMaps, block: int, step: int | str) -> StepAttention:
    if not -len(maps) <= block < len(maps):
        raise ValueError(f"block {block} is out of range for a model with {len(maps)} blocks")
    steps = maps[block]
    if isinstance(step, str):
        names = [s.step for s in steps]
        if step not in names:
            raise ValueError(f"block {block} has steps {names}, not {step!r}")
        return steps[names.index(step)]
    if not -len(steps) <= step < len(steps):
        raise ValueError(f"step {step} is out of range: block {block} has {len(steps)} steps")
    return steps[step]


def raw_attention(maps: AttentionMaps, block: int = -1, step: int | str = -1, *, head: Head = "mean",
                  query: Query | None = None) -> Tensor:
    """The attention of one step of one block, no residual, no rollout: ``(B, T, H, W)``.

    ``query=(t, h, w)``: that patch's attention row (its group; its cls entry left out).
    ``query=None``: the cls row where the cls takes part in the step (averaged over the
    groups, as the model averages the cls outputs: each frame's or group's share is
    ``1 / groups`` of it); where the cls sits out the step, the attention each patch
    *receives*, averaged over all patch queries. ``step`` is an index or a step name
    (``"temporal"``, ``"main"``, ...; default the block's last, main step).
    """
    _, grid, _ = check_maps(maps)
    s = _step_of(maps, block, step)
    op = step_operator(s, head=head, rule="raw")
    batch = s.weights[0].shape[0]
    ref = s.weights[0]
    if query is None and s.cls == "none":
        T, H, W = grid
        state = torch.zeros(batch, 1 + T * H * W, dtype=ref.dtype, device=ref.device)
        state[:, 1:] = 1.0 / (T * H * W)
    else:
        state = start_state(batch, grid, s.cls if s.cls == "per_group" else "shared", query, ref.dtype, ref.device)
    return tokens_to_grid(finish_state(pull_back(state, op), grid)[:, 1:], grid)


def explain_raw(model: nn.Module, video: Tensor, *, block: int = -1, step: int | str = -1, head: Head = "mean",
                query: Query | None = None) -> Tensor:
    """Run ``model`` on a clip or a batch (eval mode, no gradients) and return :func:`raw_attention`."""
    _, maps = attention_maps(model, video)
    return raw_attention(maps, block, step, head=head, query=query)
