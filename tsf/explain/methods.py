"""The table of methods that run a model and return one map per clip: what ``explain`` and the CLI choose from."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from .core import Head
from .gradient import explain_gradient
from .grid import Query
from .raw import explain_raw
from .rollout import explain_rollout
from .targets import Target


@dataclass(frozen=True)
class Method:
    """One way to explain a model: ``run(model, video, **options) -> (B, T, H, W)``; its keyword
    arguments are the options of :func:`explain` it reads."""

    name: str
    title: str
    run: Callable[..., Tensor]


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("rollout", "attention rollout (Abnar & Zuidema, 2020)", explain_rollout),
    Method("raw", "one step's raw attention", explain_raw),
    Method("gradient", "gradient-weighted rollout (Chefer, Gur & Wolf, 2021)", explain_gradient),
)}


def explain(model: nn.Module, video: Tensor, method: str = "rollout", *, target: Target = None,
            head: Head = "mean", discard_ratio: float = 0.0, upto: int | None = None,
            query: Query | None = None, block: int = -1, step: int | str = -1) -> Tensor:
    """Run ``model`` on a clip ``(C, T, H, W)`` or a batch and return one map per clip ``(B, T, H, W)``.

    ``method``: a row of :data:`METHODS`: ``"rollout"`` (:func:`~tsf.explain.rollout`), ``"raw"``
    (:func:`~tsf.explain.raw_attention` of ``block``, ``step``) or ``"gradient"``
    (:func:`~tsf.explain.gradient_rollout` for ``target``). Each reads the options it knows.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
    run = METHODS[method].run
    options = dict(target=target, head=head, discard_ratio=discard_ratio, upto=upto, query=query, block=block,
                   step=step)
    takes = inspect.signature(run).parameters
    return run(model, video, **{name: value for name, value in options.items() if name in takes})
