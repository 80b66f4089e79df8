"""The one timer and the one summary of its samples.

:func:`time_interleaved` times several callables in rounds: every round runs each in turn (a
few calls in a row where asked), in an order rotated by one place from round to round, so
that a drift of the machine (another job, the CPU's clock) touches all of them alike; warm-up
rounds are not kept. On a GPU every call is bracketed by ``torch.cuda.synchronize``.
:func:`quartiles` summarises the samples. :class:`PartClock` is the other way round: it sums
the wall time that a long job (a study run) spends inside given functions, part by part.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) by linear interpolation between the sorted values
    (``statistics.quantiles(method="inclusive")``: never outside the range of the data); one value
    is all three."""
    if len(values) == 1:
        return (values[0],) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(calls: dict[str, Callable[[], Any]], *, warmup: int, repeats: int,
                     device: torch.device | str = "cpu", progress: bool = True, block: int = 1, settle: int = 0,
                     orders: list[list[str]] | None = None) -> dict[str, list[float]]:
    """Seconds per call of every callable, ``repeats`` rounds after ``warmup`` rounds.

    Every round runs each callable in turn, the order rotated by one place each round; each
    turn is ``settle`` untimed calls and then ``block`` timed ones in a row, so that a callable
    is timed as a loop of it runs (what a user of one model sees: its own caches and heap),
    not just after another callable. ``orders``: a list to append each kept round's order to.
    """
    device = torch.device(device)
    names = list(calls)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in tqdm(range(warmup + repeats), desc="rounds", unit="round", disable=not progress, leave=False):
        shift = r % len(names)
        order = names[shift:] + names[:shift]
        for name in order:
            for i in range(settle + block):
                sync(device)
                start = time.perf_counter()
                calls[name]()
                sync(device)
                if r >= warmup and i >= settle:
                    seconds[name].append(time.perf_counter() - start)
        if r >= warmup and orders is not None:
            orders.append(order)
    return seconds


class PartClock:
    """Wall time summed per part over the calls of wrapped functions, each second counted once:
    time inside a nested wrapped call goes to the inner call's part only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._nested: list[float] = []  # per open call: seconds spent in wrapped calls inside it

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._nested.append(0.0)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                total = time.perf_counter() - start
                self.seconds[part] += total - self._nested.pop()
                self.calls[part] += 1
                if self._nested:
                    self._nested[-1] += total
        return timed

    @contextlib.contextmanager
    def patched(self, targets: Sequence[tuple[Any, str, str]]) -> Iterator["PartClock"]:
        """``(owner, attribute, part)``: each ``owner.attribute`` timed as ``part`` inside the block."""
        saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in targets]  # KeyError: a renamed target
        try:
            for owner, name, part in targets:
                setattr(owner, name, self.wrap(part, getattr(owner, name)))
            yield self
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)
