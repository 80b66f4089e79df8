"""Peak memory: of one step on the CPU or a GPU, and against clip length and crop (the cost notebook's panel).

* CPU: the peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) minus
  the resident set before, after ``malloc_trim`` (a fresh process gives the cleanest number);
* GPU: ``torch.cuda.max_memory_allocated`` while the step runs, minus ``memory_allocated``
  before it (:func:`cuda_peak_growth`), or with the weights included (:func:`memory_curves`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..config import ATTENTION_SCHEMES, preset
from ..model import TimeSformer, autocast
from .steps import is_oom

MEMORY_FRAMES = (8, 16, 32, 64, 96)  # the memory curves: frames at the preset's crop ...
MEMORY_CROPS = (224, 336, 448, 560)  # ... and crops at the preset's frame count


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the next step's growth is counted."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_peak_growth(fn: Callable[[], Any]) -> int:
    """Bytes the resident set grows to at its peak while ``fn`` runs, above where it started.

    Linux: resets the peak (``VmHWM``) through ``/proc/self/clear_refs`` first; elsewhere the
    process's lifetime peak (``ru_maxrss``), which undercounts once anything earlier was larger.
    """
    _malloc_trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    if before is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    fn()
    return max(0, (_status_kb("VmHWM") or before) - before) * 1024


def cuda_peak(fn: Callable[[], Any], device: torch.device | str = "cuda") -> tuple[int, int]:
    """``(peak, before)``: bytes ``torch.cuda.max_memory_allocated`` reaches while ``fn`` runs, and
    what was allocated before it (after emptying the cache and resetting the peak)."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device), before


def cuda_peak_growth(fn: Callable[[], Any], device: torch.device | str = "cuda") -> int:
    """Bytes ``torch.cuda.max_memory_allocated`` reaches while ``fn`` runs, above what was allocated before."""
    peak, before = cuda_peak(fn, device)
    return peak - before


def memory_curves(schemes: Sequence[str] = ATTENTION_SCHEMES, crops: Sequence[int] = MEMORY_CROPS,
                  frames: Sequence[int] = MEMORY_FRAMES, *, model_preset: str = "base", batch_size: int = 1,
                  training: bool = True, precision: str = "bf16", device: str | torch.device = "cuda",
                  measure: Callable[[Callable[[], Any]], int] | None = None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Peak memory of one model per scheme over crops (at the preset's frames) and frames (at its crop).

    A training point is forward + backward (no optimiser), an inference point a forward
    under ``no_grad``, in ``precision`` autocast. ``measure(fn)`` runs ``fn`` and returns its
    peak bytes (default on a GPU: ``torch.cuda.max_memory_allocated`` with the model's
    weights included); a point that runs out of memory is a row with ``oom=True``.
    """
    device = torch.device(device)
    if measure is None:
        if device.type != "cuda":
            raise RuntimeError("memory_curves measures GPU memory: it needs a CUDA device (or a measure function)")

        def measure(fn: Callable[[], Any]) -> int:
            return cuda_peak(fn, device)[0]

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    points = [(s, axis, v) for s in schemes for axis, values in (("crop", crops), ("frames", frames)) for v in values]
    rows: list[dict[str, Any]] = []
    model, built_for = None, None
    for scheme, axis, value in tqdm(points, desc="memory", unit="point", disable=not progress):
        if built_for != scheme:
            model = None
            gc.collect()
            base = preset(model_preset, attention=scheme, drop_path_rate=0.0)
            model, built_for = TimeSformer(base).to(device), scheme
        T, S = (base.num_frames, value) if axis == "crop" else (value, base.img_size)

        def point() -> None:
            x = torch.randn(batch_size, base.in_chans, T, S, S, device=device)
            with autocast(device, precision):
                if training:
                    model(x).float().sum().backward()
                else:
                    with torch.no_grad():
                        model(x)

        try:
            peak, oom = measure(point), False
        except RuntimeError as err:
            if not is_oom(err):
                raise
            peak, oom = None, True
        model.zero_grad(set_to_none=True)
        rows.append({"scheme": scheme, "axis": axis, "value": value, "frames": T, "crop": S,
                     "peak_gb": None if oom else peak / 1e9, "oom": oom, "training": training,
                     "batch_size": batch_size, "gpu": where})
    return rows
