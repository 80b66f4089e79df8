"""Helpers the test modules share: paths, README and docs blocks, tiny models and clips, waiting on a process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import tsf
from tsf.data.video import LoadedClips

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def doc_text(page: str) -> str:
    """The text of README.md or a docs/ page (``"docs/study.md"``), by its path in the repository."""
    return (ROOT / page).read_text()


def doc_block(page: str, name: str) -> str:
    """The text of the ``<!-- name:begin -->`` ... ``<!-- name:end -->`` code block of README.md or a docs/ page."""
    found = re.findall(rf"<!-- {name}:begin -->\s*```\n(.*?)```\s*<!-- {name}:end -->", doc_text(page), re.S)
    assert len(found) == 1, f"{page} has {len(found)} '{name}' blocks (expected one)"
    return found[0].strip()


def readme_setup() -> list[str]:
    """The commands of README.md's set-up block, comments left out."""
    block = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", doc_text("README.md"), re.S)
    assert block, "README.md has no set-up block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def tiny(attention: str, img: int = 16, patch: int = 4, frames: int = 4, **kw) -> tsf.TimeSformerConfig:
    """The tiny preset at another crop, patch and clip length."""
    return tsf.preset("tiny", attention=attention, img_size=img, patch_size=patch, num_frames=frames, **kw)


def clip(config: tsf.TimeSformerConfig, batch: int = 2, seed: int = 0, **size) -> torch.Tensor:
    """Random clips ``(batch, C, T, H, W)`` of a config's size (``frames``, ``height``, ``width`` override it)."""
    T = size.get("frames", config.num_frames)
    H = size.get("height", config.img_size)
    W = size.get("width", config.img_size)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.in_chans, T, H, W, generator=g)


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> None:
    """Poll ``ready()`` until it holds; fail (killing ``proc``) if ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not after {timeout:g} s"
            proc.kill()
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"waited for {what}: {why}\n{err or ''}")
        time.sleep(0.1)


def flaky_decoder(path, sampling, *, mode="train", clip_indices=None, size=None, generator=None, num_threads=1):
    """A stand-in for ``tsf.data.load_clips`` that segfaults on files named ``crash*`` and hangs on
    ``hang*``; any other path gets noise frames ``(1, T, 24, 32, 3)`` drawn from ``generator``."""
    name = os.path.basename(str(path))
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("hang"):
        time.sleep(3600)
    frames = torch.randint(0, 256, (1, sampling.num_frames, 24, 32, 3), generator=generator, dtype=torch.uint8)
    return LoadedClips(frames, 30, 30.0, 0)
