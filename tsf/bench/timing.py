"""The one timer and the one summary of its samples.

:func:`time_interleaved` times several callables in rounds: every round runs each in turn (a
few calls in a row where asked), in an order rotated by one place from round to round, so
that a drift of the machine (another job, the CPU's clock) touches all of them alike; warm-up
rounds are not kept. On a GPU every call is bracketed by ``torch.cuda.synchronize``.
:func:`quartiles` summarises the samples.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
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
