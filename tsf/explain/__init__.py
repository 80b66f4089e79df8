"""Where TimeSformer looks: attention rollout, raw attention and gradient rollout over space and time.

Everything here is a pure, batched function over the attention a model records
(``model(video, return_attention=True)`` gives ``maps[block][step]``, each a
:class:`tsf.StepAttention`); only :func:`attention_maps`, :func:`relevance_maps` and the
methods of :data:`METHODS` (:func:`explain`) run a model. Nothing modifies its inputs.

One module per part: :mod:`~tsf.explain.grid` (token order, map shapes), :mod:`~tsf.explain.core`
(per-step operators and the propagation every method composes with), one module per method
over it (:mod:`~tsf.explain.rollout`, :mod:`~tsf.explain.by_layer`, :mod:`~tsf.explain.raw`,
:mod:`~tsf.explain.gradient`), :mod:`~tsf.explain.targets` (what to explain, as callables),
:mod:`~tsf.explain.capture` (running a model), :mod:`~tsf.explain.methods` (the table
:func:`explain` chooses from) and :mod:`~tsf.explain.scores` (maps against an object mask).

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

from ..model import AttentionMaps, StepAttention
from .by_layer import rollout_by_layer
from .capture import attention_maps, batched, eval_mode
from .core import (
    HEAD_FUSIONS,
    Head,
    StepOperator,
    compose,
    compose_by_layer,
    discard_lowest,
    fuse_heads,
    operators,
    propagate,
    pull_back,
    step_operator,
)
from .gradient import gradient_rollout, relevance, relevance_maps
from .grid import Query, grid_to_tokens, patch_index, tokens_to_grid, upsample
from .methods import METHODS, Method, explain
from .raw import raw_attention
from .rollout import rollout, rollout_tokens
from .scores import MaskScore, mask_coverage, mask_scores, score_models, summarise_scores
from .targets import ClassTarget, PredictedClass, Target, as_target

__all__ = [
    "AttentionMaps", "StepAttention", "HEAD_FUSIONS", "METHODS", "ClassTarget", "Head", "MaskScore", "Method", "PredictedClass", "Query",
    "StepOperator", "Target", "as_target", "attention_maps", "batched", "compose", "compose_by_layer",
    "discard_lowest", "eval_mode", "explain", "fuse_heads", "gradient_rollout", "grid_to_tokens", "mask_coverage",
    "mask_scores", "operators", "patch_index", "propagate", "pull_back", "raw_attention", "relevance",
    "relevance_maps", "rollout", "rollout_by_layer", "rollout_tokens", "score_models", "step_operator",
    "summarise_scores", "tokens_to_grid", "upsample",
]
