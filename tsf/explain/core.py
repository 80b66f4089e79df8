"""The propagation core every method composes its maps with.

A step's recorded attention becomes a per-group operator (heads fused, then a composition
rule: ``rollout``, ``gradient`` or ``raw``); row vectors over the tokens are pulled back
through the steps from the output to the input, group by group, never as a dense matrix (see
the package docstring for the maths). :func:`compose` and :func:`compose_by_layer` are the one
opening sequence of every rollout: check the maps, build the operators, start from the output
cls (or a query patch), pull back, and sum the cls slots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

from ..attention import Grid
from ..model import AttentionMaps, StepAttention
from .grid import Query, patch_index

HEAD_FUSIONS: tuple[str, ...] = ("mean", "max", "min")
Head = Union[int, str]  # a head index, or a fusion over heads: "mean" | "max" | "min"


@dataclass(frozen=True)
class StepOperator:
    """The token-mixing operator of one step, kept per group (never as a dense matrix).

    ``matrices[k]`` is ``(B, G_k, L', L')``, the operator restricted to each group of bucket
    ``k`` (with the cls at slot 0 where ``cls != "none"``); ``groups[k]`` is ``(G_k, L)``, the
    canonical patch index of each group's patch slots. ``cls`` is as in
    :class:`tsf.StepAttention`.
    """

    cls: str
    matrices: tuple[Tensor, ...]
    groups: tuple[Tensor, ...]
    grid: Grid

    @property
    def num_groups(self) -> int:
        return sum(g.shape[0] for g in self.groups)


def fuse_heads(weights: Tensor, head: Head = "mean") -> Tensor:
    """``(..., heads, L, L) -> (..., L, L)``: one head by index, or the mean, max or min over heads."""
    if isinstance(head, str):
        if head == "mean":
            return weights.mean(dim=-3)
        if head == "max":
            return weights.amax(dim=-3)
        if head == "min":
            return weights.amin(dim=-3)
        raise ValueError(f"head must be a head index or one of {HEAD_FUSIONS}, got {head!r}")
    if isinstance(head, bool) or not isinstance(head, int):
        raise ValueError(f"head must be a head index or one of {HEAD_FUSIONS}, got {head!r}")
    heads = weights.shape[-3]
    if not -heads <= head < heads:
        raise ValueError(f"head {head} is out of range for attention with {heads} heads")
    return weights[..., head, :, :]


def discard_lowest(a: Tensor, ratio: float) -> Tensor:
    """Zero the ``floor(ratio * (L - 1))`` smallest off-diagonal entries of every row of ``(..., L, L)``.

    The diagonal (each token's attention to itself) is never dropped. Returns a new tensor
    (the rows no longer sum to one: re-normalise them).
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"discard_ratio must be in [0, 1), got {ratio}")
    L = a.shape[-1]
    k = int(math.floor(ratio * (L - 1)))
    if k == 0:
        return a
    eye = torch.eye(L, dtype=torch.bool, device=a.device)
    ranked = a.masked_fill(eye, float("inf"))  # the diagonal sorts last
    lowest = ranked.topk(k, dim=-1, largest=False).indices  # (..., L, k)
    return a.scatter(-1, lowest, 0.0)


def _residual(a: Tensor, rule: str, discard_ratio: float) -> Tensor:
    """One group's operator from its (head-fused) attention ``(..., L, L)``."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    if rule == "rollout":  # 0.5 A + 0.5 I with A row-stochastic
        if discard_ratio:
            a = discard_lowest(a, discard_ratio)
        a = a / a.sum(dim=-1, keepdim=True)
        return 0.5 * a + 0.5 * eye
    if rule == "gradient":  # Chefer et al.: R <- R + A R
        return a + eye
    if rule == "raw":  # the attention alone, no residual
        return a
    raise ValueError(f"unknown composition rule {rule!r}")


def step_operator(step: StepAttention, *, head: Head = "mean", discard_ratio: float = 0.0,
                  rule: str = "rollout") -> StepOperator:
    """The per-group operator of one recorded step: heads fused, then ``rule``.

    ``rule`` is ``"rollout"`` (``0.5 A + 0.5 I``, rows of ``A`` re-normalised),
    ``"gradient"`` (``A + I``, for relevance maps) or ``"raw"`` (``A`` itself).
    """
    matrices = tuple(_residual(fuse_heads(w, head), rule, discard_ratio) for w in step.weights)
    return StepOperator(step.cls, matrices, step.groups, step.grid)


def check_maps(maps: AttentionMaps) -> tuple[int, Grid, str]:
    """Batch size, grid and cls mode of the recorded maps, with clear errors."""
    if not maps or not all(maps):
        raise ValueError("no attention recorded: pass the maps of model(video, return_attention=True)")
    first = maps[0][0]
    batch = first.weights[0].shape[0]
    for steps in maps:
        for s in steps:
            if s.grid != first.grid:
                raise ValueError(f"block {s.block} step {s.step!r} has grid {s.grid}, block 0 has {first.grid}")
            if any(w.shape[0] != batch for w in s.weights):
                raise ValueError(f"block {s.block} step {s.step!r} has another batch size than block 0 ({batch})")
    per_group = maps[-1][-1].cls == "per_group"
    return batch, first.grid, "per_group" if per_group else "shared"


def operators(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
              rule: str = "rollout") -> list[list[StepOperator]]:
    """:func:`step_operator` for every step of every block: ``[block][step]``."""
    check_maps(maps)
    return [[step_operator(s, head=head, discard_ratio=discard_ratio, rule=rule) for s in steps]
            for steps in maps]


# A state is (B, C + P): C cls slots (1, or T for Space where each frame has its own cls),
# then the P patch tokens in canonical order. pull_back(r, op) computes r @ S_op.


def pull_back(r: Tensor, op: StepOperator) -> Tensor:
    """One step: ``r @ S`` for row vectors ``r`` of shape ``(B, C + P)``; returns a new tensor."""
    B = r.shape[0]
    C = op.num_groups if op.cls == "per_group" else 1
    T, H, W = op.grid
    if r.shape[1] != C + T * H * W:
        raise ValueError(f"state of shape {tuple(r.shape)} does not fit {C} cls slot(s) + {T * H * W} patches")
    cls, patches = r[:, :C], r[:, C:]
    new_patches = torch.zeros_like(patches)  # every patch is in exactly one group: all get written
    if op.cls == "none":  # the cls sits out: identity for it
        for m, idx in zip(op.matrices, op.groups):
            new_patches[:, idx] = torch.einsum("bgl,bglm->bgm", patches[:, idx], m)  # (B, G, L)
        return torch.cat([cls, new_patches], dim=1)
    new_cls = torch.zeros_like(cls)
    start = 0
    for m, idx in zip(op.matrices, op.groups):
        G = idx.shape[0]
        if op.cls == "shared":  # the cls row is the mean over all groups of their cls rows
            c = (cls / op.num_groups).unsqueeze(1).expand(B, G, 1)  # (B, G, 1)
        elif op.cls == "per_group":  # group g's slot 0 is cls slot g
            c = cls[:, start:start + G].unsqueeze(-1)  # (B, G, 1)
        else:
            raise ValueError(f"unknown cls mode {op.cls!r}")
        y = torch.einsum("bgl,bglm->bgm", torch.cat([c, patches[:, idx]], dim=-1), m)  # (B, G, 1 + L)
        new_patches[:, idx] = y[..., 1:]
        if op.cls == "shared":
            new_cls = new_cls + y[..., 0].sum(dim=1, keepdim=True)
        else:
            new_cls[:, start:start + G] = y[..., 0]
        start += G
    return torch.cat([new_cls, new_patches], dim=1)


def propagate(ops: Sequence[Sequence[StepOperator]], state: Tensor) -> Tensor:
    """Pull row vectors back from the output of the last block of ``ops`` to the input."""
    for block in reversed(ops):
        for op in reversed(block):
            state = pull_back(state, op)
    return state


def start_state(batch: int, grid: Grid, cls_mode: str, query: Query | None, dtype: torch.dtype,
           device: torch.device) -> Tensor:
    """The row vector to pull back: the model's output cls, or one query patch."""
    T, H, W = grid
    C = T if cls_mode == "per_group" else 1
    state = torch.zeros(batch, C + T * H * W, dtype=dtype, device=device)
    if query is None:
        state[:, :C] = 1.0 / C  # Space: the model averages the T frames' cls features
    else:
        state[:, C + patch_index(query, grid)] = 1.0
    return state


def finish_state(state: Tensor, grid: Grid) -> Tensor:
    """``(B, C + P) -> (B, 1 + P)``: the cls slots summed into column 0 (they are one input token)."""
    T, H, W = grid
    C = state.shape[1] - T * H * W
    return torch.cat([state[:, :C].sum(dim=1, keepdim=True), state[:, C:]], dim=1)


def check_upto(upto: int | None, depth: int) -> int:
    if upto is None:
        return depth
    if isinstance(upto, bool) or not isinstance(upto, int) or not 1 <= upto <= depth:
        raise ValueError(f"upto must be a block count in 1..{depth}, got {upto!r}")
    return upto


def compose(maps: AttentionMaps, *, rule: str, head: Head = "mean", discard_ratio: float = 0.0,
            upto: int | None = None, query: Query | None = None) -> Tensor:
    """One row of the first ``upto`` blocks' operators composed under ``rule``: ``(B, 1 + P)``.

    Column 0 is what reaches the input cls token, columns ``1 + p`` the patches in canonical
    order; ``query=None`` is the output cls's row, ``query=(t, h, w)`` that patch's row.
    """
    batch, grid, cls_mode = check_maps(maps)
    upto = check_upto(upto, len(maps))
    ops = operators(maps[:upto], head=head, discard_ratio=discard_ratio, rule=rule)
    ref = maps[0][0].weights[0]
    return finish_state(propagate(ops, start_state(batch, grid, cls_mode, query, ref.dtype, ref.device)), grid)


def compose_by_layer(maps: AttentionMaps, *, rule: str, head: Head = "mean", discard_ratio: float = 0.0,
                     query: Query | None = None) -> Tensor:
    """:func:`compose` up to every block at once, the operators built once: ``(depth, B, 1 + P)``."""
    batch, grid, cls_mode = check_maps(maps)
    ops = operators(maps, head=head, discard_ratio=discard_ratio, rule=rule)
    ref = maps[0][0].weights[0]
    start = start_state(batch, grid, cls_mode, query, ref.dtype, ref.device)
    return torch.stack([finish_state(propagate(ops[:k], start), grid) for k in range(1, len(ops) + 1)])
