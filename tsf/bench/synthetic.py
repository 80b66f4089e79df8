"""``python -m tsf bench synthetic``: synthetic clip generation against small-model training throughput.

If one process generates clips faster than the fastest scheme trains on them, training on the
synthetic tasks is not data-bound. Results carry :func:`tsf.provenance.provenance`; the
committed one is ``benchmarks/results/bench_synthetic.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..config import preset
from ..data.synthetic import TASKS, SyntheticVideos, cue_visibility
from ..model import TimeSformer
from ..provenance import provenance
from .table import format_table
from .timing import time_interleaved


def bench_generation(task: str, *, num_frames: int = 8, size: int = 32, clips: int = 500) -> dict:
    """Clips per second of ``SyntheticVideos(task)[i]`` in one process (normalised float clips)."""
    dataset = SyntheticVideos(task, clips + 1, num_frames=num_frames, size=size)
    order = iter([clips, *range(clips)])  # the last clip warms up, then every other one once
    seconds = sum(time_interleaved({"clip": lambda: dataset[next(order)]}, warmup=1, repeats=clips,
                                   progress=False)["clip"])
    return {"task": task, "clips": clips, "seconds": round(seconds, 3), "clips_per_s": round(clips / seconds, 1)}


def bench_training(attention: str, *, preset_name: str = "small", batch_size: int = 32, steps: int = 5,
                   warmup: int = 2) -> dict:
    """Training clips per second (forward + backward + SGD step) of a preset on random clips."""
    torch.manual_seed(0)
    config = preset(preset_name, attention=attention)
    model = TimeSformer(config).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    video = torch.randn(batch_size, config.in_chans, config.num_frames, config.img_size, config.img_size)
    labels = torch.randint(0, config.num_classes, (batch_size,))

    def step() -> None:
        loss = F.cross_entropy(model(video), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    seconds = sum(time_interleaved({"step": step}, warmup=warmup, repeats=steps, progress=False)["step"])
    return {"preset": preset_name, "attention": attention, "batch_size": batch_size, "steps": steps,
            "seconds": round(seconds, 3), "clips_per_s": round(steps * batch_size / seconds, 1)}


def run_bench_synthetic(*, clips: int, attentions: Sequence[str], batch_size: int, steps: int,
                        command: Sequence[str] | None = None) -> dict:
    generation = [bench_generation(task, clips=clips) for task in TASKS]
    training = [bench_training(a, batch_size=batch_size, steps=steps) for a in attentions]
    slowest = min(g["clips_per_s"] for g in generation)
    fastest = max(t["clips_per_s"] for t in training)
    return {**provenance(command), "benchmark": "bench-synthetic",
            "setting": "8 x 32 x 32 clips; generation in one process; training = forward + backward + SGD step "
                       f"of tsf.TimeSformer(tsf.preset('small', attention=...)) at batch {batch_size}",
            "generation": generation, "training": training,
            "generation_over_fastest_training": round(slowest / fastest, 2),
            "long_range_cues_seen": [cue_visibility(t) for t in (4, 8, 16, 32)]}


def format_bench_synthetic(result: dict) -> str:
    """The docs' table of a bench-synthetic result."""
    rows = [{"what": f"generate {g['task']}", "rate": g["clips_per_s"]} for g in result["generation"]]
    rows += [{"what": f"train {t['preset']}, {t['attention']}, batch {t['batch_size']}", "rate": t["clips_per_s"]}
             for t in result["training"]]
    return format_table(rows, [("what", "what", "s"), ("rate", "clips/s", ".0f")])


def format_cue_visibility(result: dict) -> str:
    """The docs' table of the long_range task's cue visibility (from a bench-synthetic result)."""
    return format_table(result["long_range_cues_seen"], [
        ("num_frames", "frames seen", "d"), ("at_least_one_cue", ">= 1 cue", ".2f"), ("both_cues", "both cues", ".2f")])
