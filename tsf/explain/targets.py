"""What to explain: small callables ``logits (B, K) -> (B,)``, as pytorch-grad-cam's ``ClassifierOutputTarget``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

from torch import Tensor


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
