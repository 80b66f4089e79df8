"""Fixtures the test modules share. Helpers that are plain functions live in ``tests/helpers.py``.

Tests marked ``slow`` (notebooks, the real browser, DDP, signals, the profiler, and runs of
minutes on a CPU) are left out by ``make test-fast`` (``pytest -m "not slow"``); ``make test``
runs everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .helpers import RESULTS


@pytest.fixture
def committed() -> Callable[[str], dict]:
    """A committed result of ``benchmarks/results``, loaded: ``committed("bench_cpu")``."""
    def load(name: str) -> dict:
        return json.loads((RESULTS / f"{name}.json").read_text())

    return load
