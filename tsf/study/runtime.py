"""What a user waits for: one study run end to end, against its bare training step.

``python -m tsf bench study-run`` trains one run of a study preset as ``make reproduce`` trains
it (:func:`tsf.study.runs._run_one`: the engine's ``fit``, in stretches with a learning curve
where the run records one, then the held-out scores), in this process, with the threads the
study gives each run. While it runs, the time inside these calls is summed, each second
counted once, in the innermost part it falls in:

* **making clips**: ``SyntheticVideos.sample``, the synthetic clips drawn (the datasets keep
  what they made, so a run draws each clip once per dataset object);
* **training steps**: the engine's forward and backward (``micro_step``), gradient norm and
  clipping, and optimiser step;
* **evaluation**: every held-out pass, the engine's last one, the learning curve's points and
  the held-out scores;
* **checkpoints and model files**: the engine's checkpoints and its final model folder;
* the rest of the run's wall time: the DataLoader's batching (normalising and collating the
  kept clips), logging, building the model and the datasets.

The **bare training step** is timed in the same process, half of its repeats before the run and
half after it (the machine's speed drifts over minutes; both medians are kept): the same model,
optimiser and recipe, forward, cross-entropy, backward, clipping and AdamW on one fixed batch,
with nothing else in the loop (:func:`tsf.bench.timing.time_interleaved`). Clips per second end
to end against the bare step's say what everything around the arithmetic costs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..bench.steps import make_step
from ..bench.table import format_table
from ..bench.timing import PartClock, quartiles, time_interleaved
from ..cost import count_macs
from ..data.synthetic import SyntheticVideos
from ..provenance import provenance
from ..train import engine, pick_device
from ..train.engine import run_precision
from ..train.data import build_datasets
from . import metrics
from .metrics import initial_model
from .presets import StudyPreset, study_preset
from .runs import Runs, _run_one, optimiser_steps

#: the parts of a run's time, in the order the table shows them
PARTS = ("making clips", "training steps", "evaluation", "checkpoints and model files", "the rest")
#: what a part may cost before it is worth fixing (issue 15: "more than a tenth of the run")
MAX_SHARE = 0.10


def _targets() -> list[tuple[Any, str, str]]:
    """What each part's time is read from: the functions a study run calls, where it looks them up."""
    return [(SyntheticVideos, "sample", "making clips"),
            (engine._Run, "micro_step", "training steps"), (engine._Run, "grad_norm", "training steps"),
            (engine._Run, "optimiser_step", "training steps"),
            (engine, "evaluate", "evaluation"), (metrics, "evaluate", "evaluation"),
            (engine._Run, "checkpoint", "checkpoints and model files"),
            (engine, "write_model_folder", "checkpoints and model files")]


def bare_step_seconds(config, *, warmup: int = 3, repeats: int = 20) -> list[float]:
    """Seconds of the run's training step with nothing around it: its model as ``fit`` builds it,
    its optimiser, its precision, one fixed batch of its training clips; the benchmark's training
    step (:func:`tsf.bench.steps.make_step`) with the run's clipping and label smoothing."""
    train, _ = build_datasets(config)
    device = pick_device(config.device)
    model = initial_model(config, train).to(device)
    o = config.optim
    items = [train[i] for i in range(o.batch_size)]
    clips, labels = torch.stack([c for c, _ in items]).to(device), torch.tensor([y for _, y in items]).to(device)
    step = make_step(model, clips, labels, "train", precision=run_precision(config, device),
                     optimizer=engine.build_optimizer(model, config), clip_grad=o.clip_grad,
                     label_smoothing=o.label_smoothing, cpu_matmul=config.cpu_matmul)  # the products the run uses
    return time_interleaved({"step": step}, warmup=warmup, repeats=repeats, device=device, progress=False)["step"]


def time_study_run(study: StudyPreset, *, task: str = "motion", attention: str = "divided", seed: int = 0,
                   threads: int | None = None, init: str = "", repeats: int = 20,
                   command: Sequence[str] | None = None) -> dict[str, Any]:
    """One run of ``study`` timed end to end and by part, and its bare step (see the module docstring)."""
    threads = threads or max(1, (os.cpu_count() or 1) // study.side_by_side)  # as Runs.get gives each run
    config = study.train_config(task, attention, seed, init=init)
    curve_every = Runs("", curve_every=study.curve_every).curve_every_for(config)
    name = f"{task}-{attention}-s{seed}"
    before = torch.get_num_threads()
    record = provenance(command)  # before the run: the code that runs, not what the checkout holds after it
    clock = PartClock()
    with tempfile.TemporaryDirectory(prefix="tsf-study-run-") as folder:
        job = replace(config, output_dir=str(Path(folder) / name), progress=False)
        torch.set_num_threads(threads)
        bare_before = bare_step_seconds(job, repeats=(repeats + 1) // 2)  # the machine drifts: half before,
        start = time.perf_counter()
        with clock.patched(_targets()):
            run_dir = _run_one(job.to_json(), name, threads, curve_every)
        wall = time.perf_counter() - start
        scores = json.loads((Path(run_dir) / "study.json").read_text())["scores"]
        bare_after = bare_step_seconds(job, repeats=repeats // 2 or 1)  # half after the run
        bare = bare_before + bare_after
        torch.set_num_threads(before)
    seconds = dict(clock.seconds)
    seconds["the rest"] = wall - sum(seconds.values())
    steps = optimiser_steps(config)
    clips = steps * config.optim.batch_size * config.optim.accum_steps
    step_q1, step_median, step_q3 = quartiles(bare)
    macs = count_macs(config.model)
    parts = [{"part": p, "seconds": round(seconds.get(p, 0.0), 3), "share": round(seconds.get(p, 0.0) / wall, 4),
              "calls": clock.calls.get(p, 0)} for p in PARTS]
    return {**record, "benchmark": "study-run", "preset": study.name, "run": name,
            "threads": threads, "init": init or "random (the study's runs start from the image model: the same FLOPs)",
            "curve_every": curve_every, "steps": steps, "train_clips": clips,
            "run_seconds": round(wall, 3), "parts": parts,
            "end_to_end_clips_per_s": round(clips / wall, 2),
            "in_run_step_clips_per_s": round(clips / seconds.get("training steps", float("nan")), 2),
            "bare_step_ms": {"q1": round(1e3 * step_q1, 2), "median": round(1e3 * step_median, 2),
                             "q3": round(1e3 * step_q3, 2), "repeats": len(bare),
                             "median_before_run": round(1e3 * quartiles(bare_before)[1], 2),
                             "median_after_run": round(1e3 * quartiles(bare_after)[1], 2)},
            "bare_step_clips_per_s": round(config.optim.batch_size * config.optim.accum_steps / step_median, 2),
            "bare_step_gflops": round(6 * macs * config.optim.batch_size * config.optim.accum_steps / step_median / 1e9,
                                      1),
            "scores": {k: v for k, v in scores.items() if k in ("val_acc", "pair_acc", "train_acc")}}


def verdicts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 15's test of a run: making clips and evaluation each at most a tenth of it."""
    share = {p["part"]: p["share"] for p in result["parts"]}
    return [{"what": f"{part}: at most {MAX_SHARE:.0%} of the run", "measured": f"{share[part]:.1%}",
             "verdict": "yes" if share[part] <= MAX_SHARE else "no"} for part in ("making clips", "evaluation")]


def format_study_run(result: dict[str, Any]) -> str:
    """The docs' table of a study-run result: the parts, the rates, the verdicts."""
    bare = result["bare_step_ms"]
    parts = format_table(result["parts"], [("part", "part of the run", "s"), ("seconds", "seconds", ".1f"),
                                           ("share", "share", ".1%"), ("calls", "calls", "d")])
    rates = format_table([
        {"what": "end to end (training clips over the run's wall time)", "rate": result["end_to_end_clips_per_s"]},
        {"what": "training steps inside the run", "rate": result["in_run_step_clips_per_s"]},
        {"what": f"bare training step ({bare['median']:.0f} ms median: {bare['median_before_run']:.0f} before the run, "
                 f"{bare['median_after_run']:.0f} after; {result['bare_step_gflops']:.0f} GFLOP/s)",
         "rate": result["bare_step_clips_per_s"]}],
        [("what", "clips per second", "s"), ("rate", "rate", ".1f")])
    checks = format_table(verdicts(result), [("what", "target", "s"), ("measured", "measured", ">s"),
                                             ("verdict", "verdict", "s")])
    head = (f"preset {result['preset']}, run {result['run']}: {result['steps']} optimiser steps, "
            f"{result['train_clips']:,} training clips, {result['threads']} thread(s), "
            f"{result['run_seconds']:.0f} s end to end")
    return f"{head}\n\n{parts}\n\n{rates}\n\n{checks}"


def run_study_run(preset_name: str, **kwargs: Any) -> dict[str, Any]:
    return time_study_run(study_preset(preset_name), **kwargs)
