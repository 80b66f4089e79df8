"""Where TimeSformer looks: attention rollout, raw attention and gradient rollout over space and time.

Everything here is a pure, batched function over the attention a model records
(``model(video, return_attention=True)`` gives ``maps[block][step]``, each a
:class:`tsf.StepAttention`); only :func:`attention_maps`, :func:`relevance_maps` and
:func:`explain` run a model. Nothing modifies its inputs.

Tokens and maps
---------------
A clip of ``T`` frames on an ``H x W`` patch grid has ``P = T*H*W`` patch tokens in the
model's canonical order ``p = (h*W + w)*T + t`` (patch-major, time-minor, as the authors'
code), and the model's token ``1 + p``; token 0 is the cls. Every map this module returns is
``(B, T, H, W)``: :func:`tokens_to_grid` is the one place that turns the canonical order into
``(t, h, w)`` (reading it as ``(t*H + h)*W + w`` instead is the classic "bars" bug).

Rollout (Abnar & Zuidema, 2020), composed exactly per scheme
------------------------------------------------------------
Each attention *step* of a block mixes tokens as ``x <- x + attention(x)``; the MLP acts on
every token on its own and is an identity for token mixing. Rollout models each step as the
row-stochastic operator ``S = 0.5 A + 0.5 I`` on the ``1 + P`` tokens (``A``: the step's
attention, heads fused by mean (default), max or min, optionally with the lowest entries
discarded, rows re-normalised to one), and a block as the product of its steps in order,
``S_main @ ... @ S_2 @ S_1``. The rollout is the product of the blocks,
``R = B_depth @ ... @ B_1``: row ``i`` of ``R`` says how much of token ``i``'s output comes from
each input token. The cls map is row 0, the map of a query patch is its row.

``A`` is built from the step's groups exactly as the model computes (``tsf/model.py``,
``Block.forward``):

* a step where the cls sits out (``cls == "none"``: divided's temporal step, L+G's local
  windows, axial's temporal and width steps): the cls row of ``A`` is the identity (the cls
  keeps itself), every patch row is its own group's row, zero outside the group;
* the main step (``"shared"``: joint, divided, L+G, axial): every group's matrix has the cls
  at slot 0. A patch row comes from its own group (its cls entry goes to the cls column);
  the cls row is the *average over the groups* of the groups' cls rows, because the model
  averages the cls outputs over the groups;
* Space (``"per_group"``): every frame is a clip with its own cls until the end, where the
  model averages the frames' cls features. Rollout runs per frame, each frame's cls on its
  own slot, and averages the ``T`` results: the cls map starts from ``1/T`` on every
  frame's cls.

The residual is applied per step (``S = 0.5 A + 0.5 I`` for every step, not once per block),
because every step of a block has its own residual connection.

It never builds a ``(1 + P)^2`` matrix: a row vector over the tokens is pulled back through
the steps from the output to the input, group by group (``r <- r @ S`` costs the sum of the
groups' sizes squared), so a 96-frame clip at 14 x 14 patches rolls out in seconds on a CPU.
``tests/test_explain_dense.py`` checks it against explicit dense products, for every scheme.

Discarding (``discard_ratio``): after fusing the heads, each row of each group's matrix drops
its ``floor(ratio * (L - 1))`` smallest entries, never its diagonal (the token itself; for the
cls row, the cls), and the rows are re-normalised to sum to one (with ``keepdim``).

Gradient rollout (Chefer, Gur & Wolf, 2021)
-------------------------------------------
For a class, each step's attention is replaced by ``E_heads[(dy/dA * A)^+]`` (the positive
part of gradient times attention, averaged over heads, see :func:`relevance_maps`) and the
steps are composed the same way with ``S = I + A`` (no normalisation), as Chefer et al.
accumulate ``R <- R + A R``. Maps are non-negative.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from tqdm.auto import tqdm

from .attention import Grid
from .model import AttentionMaps, StepAttention

log = logging.getLogger(__name__)

HEAD_FUSIONS: tuple[str, ...] = ("mean", "max", "min")
METHODS: tuple[str, ...] = ("rollout", "raw", "gradient")
Head = Union[int, str]  # a head index, or a fusion over heads: "mean" | "max" | "min"
Query = tuple[int, int, int]  # a patch (t, h, w)


# --------------------------------------------------------------------------------------
# Token order
# --------------------------------------------------------------------------------------


def tokens_to_grid(x: Tensor, grid: Grid) -> Tensor:
    """Patch values in the canonical token order to a map: ``(..., T*H*W) -> (..., T, H, W)``.

    Token ``p = (h*W + w)*T + t`` (patch-major, time-minor, the model's order without the cls)
    goes to ``[..., t, h, w]``.
    """
    T, H, W = grid
    if x.shape[-1] != T * H * W:
        raise ValueError(f"expected {T * H * W} patch tokens for the grid (T, H, W) = {grid}, "
                         f"got a last dimension of {x.shape[-1]} in shape {tuple(x.shape)}")
    return rearrange(x, "... (h w t) -> ... t h w", t=T, h=H, w=W)


def grid_to_tokens(x: Tensor, grid: Grid) -> Tensor:
    """The inverse of :func:`tokens_to_grid`: ``(..., T, H, W) -> (..., T*H*W)`` in canonical order."""
    if tuple(x.shape[-3:]) != tuple(grid):
        raise ValueError(f"expected a map ending in (T, H, W) = {grid}, got shape {tuple(x.shape)}")
    return rearrange(x, "... t h w -> ... (h w t)")


def patch_index(query: Query, grid: Grid) -> int:
    """The canonical index ``p = (h*W + w)*T + t`` of patch ``(t, h, w)`` (the model's token ``1 + p``)."""
    T, H, W = grid
    t, h, w = (int(v) for v in query)
    if not (0 <= t < T and 0 <= h < H and 0 <= w < W):
        raise ValueError(f"query patch (t, h, w) = {tuple(query)} is outside the grid (T, H, W) = {grid}")
    return (h * W + w) * T + t


# --------------------------------------------------------------------------------------
# Per-step operators
# --------------------------------------------------------------------------------------


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


def _check_maps(maps: AttentionMaps) -> tuple[int, Grid, str]:
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
    _check_maps(maps)
    return [[step_operator(s, head=head, discard_ratio=discard_ratio, rule=rule) for s in steps]
            for steps in maps]


# --------------------------------------------------------------------------------------
# Propagation: row vectors pulled back through the steps, group by group
# --------------------------------------------------------------------------------------
#
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


def _start(batch: int, grid: Grid, cls_mode: str, query: Query | None, dtype: torch.dtype,
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


def _finish(state: Tensor, grid: Grid) -> Tensor:
    """``(B, C + P) -> (B, 1 + P)``: the cls slots summed into column 0 (they are one input token)."""
    T, H, W = grid
    C = state.shape[1] - T * H * W
    return torch.cat([state[:, :C].sum(dim=1, keepdim=True), state[:, C:]], dim=1)


def _check_upto(upto: int | None, depth: int) -> int:
    if upto is None:
        return depth
    if isinstance(upto, bool) or not isinstance(upto, int) or not 1 <= upto <= depth:
        raise ValueError(f"upto must be a block count in 1..{depth}, got {upto!r}")
    return upto


def rollout_tokens(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
                   upto: int | None = None, query: Query | None = None) -> Tensor:
    """One row of the rollout ``R = B_upto @ ... @ B_1``: ``(B, 1 + P)``, rows summing to one.

    Column 0 is the share that reaches the input cls token, columns ``1 + p`` the patches in
    canonical order. ``query=None`` gives the output cls's row, ``query=(t, h, w)`` that
    patch's row; ``upto`` rolls out the first ``upto`` blocks only (default: all).
    """
    batch, grid, cls_mode = _check_maps(maps)
    upto = _check_upto(upto, len(maps))
    ops = operators(maps[:upto], head=head, discard_ratio=discard_ratio, rule="rollout")
    ref = maps[0][0].weights[0]
    return _finish(propagate(ops, _start(batch, grid, cls_mode, query, ref.dtype, ref.device)), grid)


def rollout(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
            upto: int | None = None, query: Query | None = None) -> Tensor:
    """Attention rollout as a map ``(B, T, H, W)`` over the patches (see the module docstring).

    The map and the share left on the input cls (:func:`rollout_tokens`, column 0) sum to one.
    """
    row = rollout_tokens(maps, head=head, discard_ratio=discard_ratio, upto=upto, query=query)
    return tokens_to_grid(row[:, 1:], maps[0][0].grid)


def rollout_by_layer(maps: AttentionMaps, *, head: Head = "mean", discard_ratio: float = 0.0,
                     query: Query | None = None, rule: str = "rollout") -> Tensor:
    """The rollout up to every block at once: ``(depth, B, T, H, W)``, entry ``k`` is ``upto = k + 1``.

    The operators are built once. ``rule="gradient"`` does the same for relevance maps.
    """
    batch, grid, cls_mode = _check_maps(maps)
    ops = operators(maps, head=head, discard_ratio=discard_ratio, rule=rule)
    ref = maps[0][0].weights[0]
    start = _start(batch, grid, cls_mode, query, ref.dtype, ref.device)
    rows = [_finish(propagate(ops[:k], start), grid)[:, 1:] for k in range(1, len(ops) + 1)]
    return tokens_to_grid(torch.stack(rows), grid)


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
    _, grid, _ = _check_maps(maps)
    s = _step_of(maps, block, step)
    op = step_operator(s, head=head, rule="raw")
    batch = s.weights[0].shape[0]
    ref = s.weights[0]
    if query is None and s.cls == "none":
        T, H, W = grid
        state = torch.zeros(batch, 1 + T * H * W, dtype=ref.dtype, device=ref.device)
        state[:, 1:] = 1.0 / (T * H * W)
    else:
        state = _start(batch, grid, s.cls if s.cls == "per_group" else "shared", query, ref.dtype, ref.device)
    return tokens_to_grid(_finish(pull_back(state, op), grid)[:, 1:], grid)


# --------------------------------------------------------------------------------------
# Gradient-weighted rollout
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassTarget:
    """What to explain: the logit of one class (as pytorch-grad-cam's ``ClassifierOutputTarget``)."""

    index: int

    def __call__(self, logits: Tensor) -> Tensor:  # (B, K) -> (B,)
        if not 0 <= self.index < logits.shape[-1]:
            raise ValueError(f"class {self.index} is out of range for {logits.shape[-1]} classes")
        return logits[:, self.index]


@dataclass(frozen=True)
class PredictedClass:
    """What to explain: each clip's top-scoring class."""

    def __call__(self, logits: Tensor) -> Tensor:  # (B, K) -> (B,)
        return logits.gather(1, logits.argmax(dim=1, keepdim=True)).squeeze(1)


Target = Union[int, Callable[[Tensor], Tensor], None]


def as_target(target: Target) -> Callable[[Tensor], Tensor]:
    """None: the predicted class; an int: that class; a callable ``logits (B, K) -> (B,)`` as is."""
    if target is None:
        return PredictedClass()
    if isinstance(target, bool):
        raise ValueError(f"target must be a class index, a callable or None, got {target!r}")
    if isinstance(target, int):
        return ClassTarget(target)
    if callable(target):
        return target
    raise ValueError(f"target must be a class index, a callable or None, got {target!r}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (no dropout, no stochastic depth), then restore its mode."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


def _batched(video: Tensor) -> Tensor:
    if isinstance(video, Tensor) and video.ndim == 4:
        return video.unsqueeze(0)  # one clip (C, T, H, W)
    return video


def attention_maps(model: nn.Module, video: Tensor) -> tuple[Tensor, AttentionMaps]:
    """Run ``model`` in eval mode without gradients; ``(logits, maps)`` for a clip or a batch."""
    with eval_mode(model), torch.no_grad():
        return model(_batched(video), return_attention=True)


def relevance(step: StepAttention, grads: Sequence[Tensor]) -> StepAttention:
    """``(dy/dA * A)^+`` per head: a step's relevance (Chefer et al.), same layout, detached."""
    weights = tuple((g * w).clamp(min=0).detach() for g, w in zip(grads, step.weights))
    return replace(step, weights=weights)


def relevance_maps(model: nn.Module, video: Tensor, target: Target = None
                   ) -> tuple[Tensor, AttentionMaps, AttentionMaps]:
    """``(logits, maps, relevance)`` for ``target`` (see :func:`as_target`) in one forward and backward pass.

    ``relevance[block][step]`` has the layout of ``maps`` with weights ``(dy/dA * A)^+`` per
    head, where ``y = target(logits)`` per clip (clips of a batch do not interact, so one
    backward pass serves all of them).
    """
    score_fn = as_target(target)
    with eval_mode(model), torch.enable_grad():
        logits, maps = model(_batched(video), return_attention=True)
        score = score_fn(logits)
        if score.shape != logits.shape[:1]:
            raise ValueError(f"target must map logits {tuple(logits.shape)} to one score per clip, "
                             f"got shape {tuple(score.shape)}")
        flat = [w for steps in maps for s in steps for w in s.weights]
        grads = torch.autograd.grad(score.sum(), flat, allow_unused=True)  # the recorded weights are on the path
    grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, flat)]
    it = iter(grads)
    rel = tuple(tuple(relevance(s, [next(it) for _ in s.weights]) for s in steps) for steps in maps)
    detached = tuple(tuple(replace(s, weights=tuple(w.detach() for w in s.weights)) for s in steps)
                     for steps in maps)
    return logits.detach(), detached, rel


def gradient_rollout(relevance: AttentionMaps, *, head: Head = "mean", upto: int | None = None,
                     query: Query | None = None) -> Tensor:
    """Gradient-weighted rollout ``(B, T, H, W)`` over relevance maps (:func:`relevance_maps`).

    Steps compose as ``S = I + A`` with the blocks' exact group structure (see the module
    docstring); the map is non-negative and not normalised.
    """
    batch, grid, cls_mode = _check_maps(relevance)
    upto = _check_upto(upto, len(relevance))
    ops = operators(relevance[:upto], head=head, rule="gradient")
    ref = relevance[0][0].weights[0]
    row = _finish(propagate(ops, _start(batch, grid, cls_mode, query, ref.dtype, ref.device)), grid)
    return tokens_to_grid(row[:, 1:], grid)


def explain(model: nn.Module, video: Tensor, method: str = "rollout", *, target: Target = None,
            head: Head = "mean", discard_ratio: float = 0.0, upto: int | None = None,
            query: Query | None = None, block: int = -1, step: int | str = -1) -> Tensor:
    """Run ``model`` on a clip ``(C, T, H, W)`` or a batch and return one map per clip ``(B, T, H, W)``.

    ``method``: ``"rollout"`` (:func:`rollout`), ``"raw"`` (:func:`raw_attention` of ``block``,
    ``step``) or ``"gradient"`` (:func:`gradient_rollout` for ``target``).
    """
    if method == "rollout":
        _, maps = attention_maps(model, video)
        return rollout(maps, head=head, discard_ratio=discard_ratio, upto=upto, query=query)
    if method == "raw":
        _, maps = attention_maps(model, video)
        return raw_attention(maps, block, step, head=head, query=query)
    if method == "gradient":
        _, _, rel = relevance_maps(model, video, target)
        return gradient_rollout(rel, head=head, upto=upto, query=query)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# --------------------------------------------------------------------------------------
# Maps at frame resolution
# --------------------------------------------------------------------------------------


def upsample(maps: Tensor, size: tuple[int, int], mode: str = "nearest") -> Tensor:
    """Patch maps ``(..., T, H, W)`` to frame resolution ``(..., T, *size)``.

    ``nearest`` paints every pixel of a patch with the patch's value (what the model saw);
    ``bilinear`` smooths across patch borders.
    """
    if maps.ndim < 3:
        raise ValueError(f"expected maps (..., T, H, W), got shape {tuple(maps.shape)}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"mode must be 'nearest' or 'bilinear', got {mode!r}")
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    flat = maps.reshape(-1, 1, h, w).to(torch.promote_types(maps.dtype, torch.float32))
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(flat, size=tuple(size), mode=mode, **kwargs)
    return out.reshape(*lead, *size)


# --------------------------------------------------------------------------------------
# Is it meaningful? Scores against a known object mask
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# A stand-in clip with a known object
# --------------------------------------------------------------------------------------


def moving_square(frames: int, size: int, *, square: int | None = None, channels: int = 3, seed: int = 0,
                  noise: float = 0.1) -> tuple[Tensor, Tensor]:
    """A bright square crossing a dim noisy background: ``(clip (C, T, S, S), mask (T, S, S) bool)``.

    The clip is normalised as the model expects (``(x - 0.45) / 0.225``). A stand-in for a
    clip of the synthetic motion task, for demos and tests of the maps and the scores.
    """
    g = torch.Generator().manual_seed(seed)
    side = square or max(2, size // 4)
    if not 0 < side <= size:
        raise ValueError(f"square side {side} does not fit a frame of {size} pixels")
    y = int(torch.randint(0, size - side + 1, (1,), generator=g))
    x0, x1 = 0, size - side
    if torch.rand(1, generator=g) < 0.5:
        x0, x1 = x1, x0
    pixels = 0.2 + noise * torch.rand(channels, frames, size, size, generator=g)
    mask = torch.zeros(frames, size, size, dtype=torch.bool)
    for t in range(frames):
        x = round(x0 + (x1 - x0) * t / max(frames - 1, 1))
        mask[t, y:y + side, x:x + side] = True
    pixels = torch.where(mask.unsqueeze(0), torch.full_like(pixels, 0.95), pixels)
    return (pixels - 0.45) / 0.225, mask


# --------------------------------------------------------------------------------------
# Random maps with a scheme's layout (timing without running a model)
# --------------------------------------------------------------------------------------


def random_maps(scheme: str, grid: Grid, *, depth: int = 12, heads: int = 12, batch: int = 1, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> AttentionMaps:
    """Softmax-normalised random attention laid out exactly as ``model(video, return_attention=True)``
    records it for ``scheme`` on ``grid`` (groups, buckets, cls slots), without running a model."""
    from .attention import SCHEMES
    from .config import canonical_attention

    s = SCHEMES[canonical_attention(scheme)]
    T, H, W = grid
    g = torch.Generator().manual_seed(seed)

    def weights(groups: Tensor, extra: int) -> Tensor:
        G, L = groups.shape
        logits = torch.randn(batch, G, heads, L + extra, L + extra, generator=g, dtype=dtype)
        return logits.softmax(dim=-1)

    blocks = []
    for b in range(depth):
        if s.per_frame:
            frames = torch.arange(H * W).view(1, H * W) * T + torch.arange(T).view(T, 1)  # (T, N)
            steps = (StepAttention(b, "main", "frame", grid, "per_group", (weights(frames, 1),), (frames,)),)
        else:
            steps = tuple(
                StepAttention(b, step.name, step.grouping.name, grid, "none" if step.name != "main" else "shared",
                              tuple(weights(p, 0 if step.name != "main" else 1) for p in step.grouping.partition(grid)),
                              step.grouping.partition(grid))
                for step in s.steps)
        blocks.append(steps)
    return tuple(blocks)
