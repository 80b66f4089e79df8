"""Gradient-weighted rollout (Chefer, Gur & Wolf, 2021): ``(dy/dA * A)^+`` per step, composed as ``S = I + A``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor, nn

from ..model import AttentionMaps, StepAttention
from .capture import batched, eval_mode
from .core import Head, compose
from .grid import Query, tokens_to_grid
from .targets import Target, as_target


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
        logits, maps = model(batched(video), return_attention=True)
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

    Steps compose as ``S = I + A`` with the blocks' exact group structure (see the
    package docstring); the map is non-negative and not normalised.
    """
    row = compose(relevance, rule="gradient", head=head, upto=upto, query=query)
    return tokens_to_grid(row[:, 1:], relevance[0][0].grid)


def explain_gradient(model: nn.Module, video: Tensor, *, target: Target = None, head: Head = "mean",
                     upto: int | None = None, query: Query | None = None) -> Tensor:
    """Run ``model`` forward and backward for ``target`` and return its :func:`gradient_rollout`."""
    _, _, rel = relevance_maps(model, video, target)
    return gradient_rollout(rel, head=head, upto=upto, query=query)
