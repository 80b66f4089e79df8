"""The runs behind ``python -m tsf explain-bench`` (rollout timings) and ``attention-scores``.

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


def speed_table(rows: Sequence[dict]) -> str:
    """The rows as the plain-text table the command prints (and README.md shows)."""
    from .__main__ import format_table

    table = format_table([r for r in rows if "rollout_s" in r], [
        ("attention", "attention", "s"), ("frames", "frames", "d"), ("tokens", "tokens", ",d"),
        ("maps_gb", "maps GB", ".2f"), ("rollout_s", "rollout s", ".3f"),
        ("by_layer_s", "every layer s", ".3f"), ("query_s", "query patch s", ".3f")])
    skipped = [f"skipped {r['attention']} at {r['frames']} frames: {r['skipped']}" for r in rows if "skipped" in r]
    return "\n".join([table] + skipped)


def scores_table(summary: Sequence[dict]) -> str:
    """:func:`tsf.explain.summarise_scores` rows as the table ``attention-scores`` prints (and README.md shows)."""
    from .__main__ import format_table

    return format_table(summary, [("model", "attention", "s"), ("frames", "frames", "d"), ("share", "share", ".4f"),
                                  ("chance", "chance", ".4f"), ("lift", "lift", ".3f"),
                                  ("above_chance", "above chance", ".2f")])


def _best(fn, repeats: int) -> float:
    fn()  # warm-up: the first call pays for fresh memory pages
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
                    note="random attention with the recorded layout; float32; batch 1; best of the repeats after a warm-up")
        out.write_text(json.dumps(dict(meta=meta, rows=rows), indent=2) + "\n")
    return rows


def untrained_scores(preset_name: str = "small", *, samples: int = 8, seed: int = 0, method: str = "rollout",
                     out: str | Path | None = None, figure: str | Path | None = None) -> list[dict]:
    """Mask scores of untrained models of all five schemes on toy clips (:func:`tsf.explain.moving_square`).

    The baseline a trained model's maps should beat: returns :func:`tsf.explain.summarise_scores`
    rows; writes the summary and every frame's row to ``out`` and the figure to ``figure``.
    """
    from .config import ATTENTION_SCHEMES
    from .model import TimeSformer

    cfg = preset(preset_name)
    models = []
    for scheme in ATTENTION_SCHEMES:
        torch.manual_seed(seed)
        models.append((scheme, TimeSformer(cfg.replace(attention=scheme)).eval()))
    clips = [explain.moving_square(cfg.num_frames, cfg.img_size, seed=seed + i) for i in range(samples)]
    rows = explain.score_models(models, clips, method=method)
    summary = explain.summarise_scores(rows)
    command = (f"python -m tsf attention-scores --preset {preset_name} --samples {samples} --seed {seed} "
               f"--method {method}")
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(command=command, models="untrained, seeded", clips="moving_square toy clips",
                    preset=preset_name, torch=torch.__version__)
        out.write_text(json.dumps(dict(meta=meta, summary=summary, rows=rows), indent=2) + "\n")
    if figure is not None:
        from .viz.overlay import plot_mask_scores

        plot_mask_scores(rows, figure, title=f"{method} mass on the object: untrained {preset_name} models",
                         caption=f"{samples} toy clips (a square crossing the frame); {command}")
    return summary
