"""How long rollout takes at real sizes: ``python -m tsf explain-bench``.

Times :func:`tsf.explain.rollout` (the cls row through every block), :func:`rollout_by_layer`
(the rollout up to every block) and a query patch's row on random attention laid out as the
model records it (:func:`tsf.explain.random_maps`), so a 96-frame clip at 14 x 14 patches
can be timed without a 2-TFLOP forward pass. The maps themselves are not timed.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from . import explain
from .attention import SCHEMES
from .config import canonical_attention, preset

log = logging.getLogger(__name__)


def maps_bytes(scheme: str, grid: tuple[int, int, int], depth: int, heads: int, itemsize: int = 4) -> int:
    """Memory the recorded attention of one clip takes (every step, every head)."""
    s = SCHEMES[canonical_attention(scheme)]
    T, H, W = grid
    if s.per_frame:
        per_block = T * (H * W + 1) ** 2
    else:
        per_block = sum(int(p.shape[0]) * (int(p.shape[1]) + (step.name == "main")) ** 2
                        for step in s.steps for p in step.grouping.partition(grid))
    return per_block * depth * heads * itemsize


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run_rollout_benchmark(preset_name: str, frames: Sequence[int], *, schemes: Sequence[str],
                          max_gb: float = 6.0, repeats: int = 3, out: str | Path | None = None) -> list[dict]:
    """Time the rollout of every scheme at every frame count; rows as dicts, also written to ``out``."""
    cfg = preset(preset_name)
    side = cfg.grid_size
    rows = []
    for T in frames:
        for scheme in schemes:
            grid = (T, side, side)
            row = dict(attention=canonical_attention(scheme), preset=preset_name, frames=T, grid=list(grid),
                       tokens=1 + T * side * side, depth=cfg.depth, heads=cfg.num_heads)
            need = maps_bytes(scheme, grid, cfg.depth, cfg.num_heads) / 1e9
            row["maps_gb"] = round(need, 3)
            if need > max_gb:
                row["skipped"] = f"its attention maps need {need:.1f} GB (> --max-gb {max_gb})"
                rows.append(row)
                continue
            maps = explain.random_maps(scheme, grid, depth=cfg.depth, heads=cfg.num_heads)
            row["rollout_s"] = _best(lambda: explain.rollout(maps), repeats)
            row["by_layer_s"] = _best(lambda: explain.rollout_by_layer(maps), repeats)
            row["query_s"] = _best(lambda: explain.rollout(maps, query=(T // 2, side // 2, side // 2)), repeats)
            log.info("%s", row)
            rows.append(row)
            del maps
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(command="python -m tsf explain-bench " + " ".join(
                        [f"--preset {preset_name}", "--frames " + " ".join(map(str, frames)),
                         f"--max-gb {max_gb}", f"--repeats {repeats}"]),
                    machine=platform.machine(), processor=platform.processor() or platform.machine(),
                    cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                    note="random attention with the recorded layout; float32; batch 1; best of the repeats")
        out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2) + "\n")
    return rows
