"""``python -m tsf bench explain`` (rollout timings) and ``bench attention-scores`` (untrained baselines).

Times :func:`tsf.explain.rollout` (the cls row through every block),
:func:`tsf.explain.rollout_by_layer` (the rollout up to every block) and a query patch's row on
random attention laid out as the model records it (:func:`random_maps`), so a 96-frame clip at
14 x 14 patches can be timed without a 2-TFLOP forward pass. The maps themselves are not timed.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Sequence
from pathlib import Path

import torch

from .. import explain
from ..attention import FRAME, MAIN, SCHEMES, Grid
from ..config import ATTENTION_SCHEMES, canonical_attention, preset
from ..data.toy import moving_square
from ..model import AttentionMaps, StepAttention, TimeSformer
from ..provenance import provenance, write_result
from .table import format_table
from .timing import time_interleaved

log = logging.getLogger(__name__)


def random_maps(scheme: str, grid: Grid, *, depth: int = 12, heads: int = 12, batch: int = 1, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> AttentionMaps:
    """Softmax-normalised random attention laid out exactly as ``model(video, return_attention=True)``
    records it for ``scheme`` on ``grid`` (groups, buckets, cls slots), without running a model."""
    s = SCHEMES[canonical_attention(scheme)]
    g = torch.Generator().manual_seed(seed)

    def weights(groups: torch.Tensor, extra: int) -> torch.Tensor:
        G, L = groups.shape
        logits = torch.randn(batch, G, heads, L + extra, L + extra, generator=g, dtype=dtype)
        return logits.softmax(dim=-1)

    blocks = []
    for b in range(depth):
        if s.per_frame:  # as the model relabels Space's folded frames: one group per frame, each with its cls
            frames = FRAME.partition(grid)
            steps = (StepAttention(b, MAIN, FRAME.name, grid, "per_group", (weights(frames[0], 1),), frames),)
        else:
            steps = tuple(
                StepAttention(b, step.name, step.grouping.name, grid, "shared" if step.with_cls else "none",
                              tuple(weights(p, int(step.with_cls)) for p in step.grouping.partition(grid)),
                              step.grouping.partition(grid))
                for step in s.steps)
        blocks.append(steps)
    return tuple(blocks)


def maps_bytes(scheme: str, grid: Grid, depth: int, heads: int, itemsize: int = 4) -> int:
    """Memory the recorded attention of one clip takes (every step, every head)."""
    s = SCHEMES[canonical_attention(scheme)]
    clips, view = s.clip_view(grid)
    return clips * sum(step.matrix_entries(view) for step in s.steps) * depth * heads * itemsize


def speed_table(rows: Sequence[dict]) -> str:
    """The rows as the plain-text table the command prints (and the docs show)."""
    table = format_table([r for r in rows if "rollout_s" in r], [
        ("attention", "attention", "s"), ("frames", "frames", "d"), ("tokens", "tokens", ",d"),
        ("maps_gb", "maps GB", ".2f"), ("rollout_s", "rollout s", ".3f"),
        ("by_layer_s", "every layer s", ".3f"), ("query_s", "query patch s", ".3f")])
    skipped = [f"skipped {r['attention']} at {r['frames']} frames: {r['skipped']}" for r in rows if "skipped" in r]
    return "\n".join([table] + skipped)


def scores_table(summary: Sequence[dict]) -> str:
    """:func:`tsf.explain.summarise_scores` rows as the table ``attention-scores`` prints (and the docs show)."""
    return format_table(summary, [("model", "attention", "s"), ("frames", "frames", "d"), ("share", "share", ".4f"),
                                  ("chance", "chance", ".4f"), ("lift", "lift", ".3f"),
                                  ("above_chance", "above chance", ".2f")])


def _time_rollouts(maps: AttentionMaps, query: tuple[int, int, int], repeats: int) -> dict[str, float]:
    """The best of ``repeats`` interleaved rounds (after one warm-up: the first call pays for fresh memory pages)."""
    seconds = time_interleaved({"rollout_s": lambda: explain.rollout(maps),
                                "by_layer_s": lambda: explain.rollout_by_layer(maps),
                                "query_s": lambda: explain.rollout(maps, query=query)},
                               warmup=1, repeats=repeats, progress=False)
    return {name: min(values) for name, values in seconds.items()}


def run_rollout_benchmark(preset_name: str, frames: Sequence[int], *, schemes: Sequence[str] = ATTENTION_SCHEMES,
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
            maps = random_maps(scheme, grid, depth=cfg.depth, heads=cfg.num_heads)
            row.update(_time_rollouts(maps, (T // 2, side // 2, side // 2), repeats))
            log.info("%s", row)
            rows.append(row)
            del maps
    if out is not None:
        command = ["python", "-m", "tsf", "bench", "explain", "--preset", preset_name, "--frames", *map(str, frames),
                   "--max-gb", str(max_gb), "--repeats", str(repeats)]
        note = "random attention with the recorded layout; float32; batch 1; best of the repeats after a warm-up"
        write_result(out, dict(meta={**provenance(command), "note": note}, rows=rows))
    return rows


def untrained_scores(preset_name: str = "small", *, samples: int = 8, seed: int = 0, method: str = "rollout",
                     out: str | Path | None = None, figure: str | Path | None = None) -> list[dict]:
    """Mask scores of untrained models of all five schemes on toy clips (:func:`tsf.data.toy.moving_square`).

    The baseline a trained model's maps should beat: returns :func:`tsf.explain.summarise_scores`
    rows; writes the summary and every frame's row to ``out`` and the figure to ``figure``.
    """
    cfg = preset(preset_name)
    models = []
    for scheme in ATTENTION_SCHEMES:
        torch.manual_seed(seed)
        models.append((scheme, TimeSformer(cfg.replace(attention=scheme)).eval()))
    clips = [moving_square(cfg.num_frames, cfg.img_size, seed=seed + i) for i in range(samples)]
    rows = explain.score_models(models, clips, method=method)
    summary = explain.summarise_scores(rows)
    command = ["python", "-m", "tsf", "bench", "attention-scores", "--preset", preset_name, "--samples", str(samples),
               "--seed", str(seed), "--method", method]
    if out is not None:
        meta = dict(provenance(command), models="untrained, seeded", clips="moving_square toy clips",
                    preset=preset_name)
        write_result(out, dict(meta=meta, summary=summary, rows=rows))
    if figure is not None:
        from ..viz.overlay import plot_mask_scores  # matplotlib is optional (the notebooks extra)

        plot_mask_scores(rows, figure, title=f"{method} mass on the object: untrained {preset_name} models",
                         caption=f"{samples} toy clips (a square crossing the frame); {shlex.join(command)}")
    return summary
