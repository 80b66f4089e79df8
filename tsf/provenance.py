"""Where a result came from: the one record every result file carries.

It imports nothing else of tsf, so benchmarks, training runs (``env.json``), the study's
figures and ``make reproduce`` all describe the machine the same way.

:func:`provenance` is ``{"date", "command", "code", "machine"}``; :func:`code` is the git commit
of the checkout that ran it (None outside one); :func:`machine` says what ran it
(CPU, cores, threads, the load from other work, OS, library versions, the environment
variables that change threading and allocation, the GPU if one is used). Figures carry the
short :func:`label`.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

# Installed packages whose versions a result records (read from their metadata: nothing is imported).
VERSIONED = ("decord", "av", "transformers")
# Environment variables that change threading and allocation.
ENVIRONMENT_PREFIXES = ("OMP_", "MKL_", "KMP_", "MALLOC_", "LD_PRELOAD", "PYTORCH_", "CUDA_VISIBLE")


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews the numbers."""
    return round(os.getloadavg()[0], 2)


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str | None]:
    """Python, torch, numpy and :data:`VERSIONED` (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version(), "torch": torch.__version__,
                                  "numpy": np.__version__}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def machine(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What ran a result: CPU, cores, torch threads, load, OS, versions, environment, and the GPU if ``device`` is one."""
    info: dict[str, Any] = {
        "cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "load_average_1min": load_average(), "os": platform.platform(), "versions": versions(),
        "environment": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENVIRONMENT_PREFIXES)}}
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": props.name, "memory_gb": props.total_memory / 1e9, "cuda": torch.version.cuda}
    return info


def command_line(command: Sequence[str] | None = None) -> str:
    """``command`` (default: this process's ``python -m tsf ...``) as one shell line."""
    return shlex.join(list(command) if command is not None else ["python", "-m", "tsf", *sys.argv[1:]])


def code(root: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The git commit of the checkout at ``root`` (default: the one this package runs from) and
    whether files tracked by git had changes (``{"commit", "modified"}``); None outside a git
    checkout (an installed wheel)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": bool(status.strip())}


def provenance(command: Sequence[str] | None = None, device: torch.device | str = "cpu") -> dict[str, Any]:
    """``{"date", "command", "code", "machine"}``: the fields every result file starts with."""
    return {"date": utc_now(), "command": command_line(command), "code": code(), "machine": machine(device)}


def label() -> str:
    """What produced a figure, in a footer: the GPU, or the CPU and its cores; the torch version."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = cpu_name() + f", {os.cpu_count()} cores"
    return f"{device} · torch {torch.__version__.split('+')[0]}"


def write_result(path: str | os.PathLike, result: dict) -> Path:
    """Write a result as indented JSON (its folder created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
