"""The study's arithmetic before it runs: what each notebook trains, its FLOPs, and a time estimate.

``python -m tsf reproduce --preset NAME --dry-run`` prints it. The runs are the ones the
notebooks ask the run cache for (the experiments' ``*_specs`` functions, in notebook order;
a run a notebook finds cached costs nothing there), the FLOPs those of
:func:`tsf.cost.count_macs` (one multiply-add is two FLOPs; a training step is three forward
passes, an evaluation one).

The time is an estimate from stated assumptions (:class:`Machine`), not a measurement: a run
takes at least its FLOPs at the machine's sustained rate, its optimiser steps at the least a
step of a small model takes (kernel launches, not arithmetic, bound those), and its clips at
what the data workers make; the runs of one request share the GPU (``parallel`` at a time)
and the cores. Each run and each notebook adds a fixed overhead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..bench.memory import MEMORY_CROPS, MEMORY_FRAMES
from ..bench.table import format_minutes, format_table
from ..config import ATTENTION_SCHEMES, preset
from ..cost import count_macs
from ..train import TrainConfig
from . import attention, control, experiments, quickstart
from .presets import STUDY_PRESETS, StudyPreset
from .pretrain import image_pretraining
from .runs import CURVE_CLIPS, Runs, config_key, optimiser_steps

IMAGE, IMAGE_NO_POSITION = "<image model>", "<image model, no position embedding>"


@dataclass(frozen=True)
class Machine:
    """What the estimate assumes of the machine a preset is meant for (assumptions, stated as such)."""

    name: str
    flops: float  # sustained FLOP/s of the study's training and evaluation
    step_seconds: float  # the least one optimiser step (or evaluation batch x 3) takes: launches, not arithmetic
    cores: int  # CPU cores; with a GPU each of the runs side by side has its share but one as DataLoader workers
    clip_seconds: tuple[float, float]  # one core's seconds per clip: a + b x frames x pixels per frame
    run_seconds: float  # per run: model, data and workers set up, final evaluation set-up, files written
    stretch_seconds: float  # per stretch of a learning-curve run (stop, checkpoint, resume)
    notebook_seconds: float  # per notebook: the kernel and its imports
    explain_seconds: float  # one attention map of a study model on the CPU (notebook 06)
    note: str = ""

    def describe(self) -> str:
        rate = f"{self.flops / 1e12:.1f} TFLOP/s" if self.flops >= 1e12 else f"{self.flops / 1e9:.0f} GFLOP/s"
        clips = (f"{1e3 * self.clip_seconds[0]:.1f} ms + {1e9 * self.clip_seconds[1]:.0f} ns per frame-pixel for a "
                 f"clip on one" if any(self.clip_seconds) else "clips made within the rate")
        return (f"{self.name}: {rate} sustained, >= {1e3 * self.step_seconds:.0f} ms per "
                f"optimiser step, {self.cores} cores ({clips}), {self.run_seconds:g} s per run")

    @property
    def gpu(self) -> bool:
        return self.step_seconds > 0

    def data_workers(self, side_by_side: int) -> int:
        """DataLoader workers of each of ``side_by_side`` runs (as ``Runs.get`` gives them; none on a CPU)."""
        return max(1, self.cores // side_by_side - 1) if self.gpu else 0


#: One H200 machine: bf16 at 40% of the card's ~990 TFLOP/s dense datasheet rate (the study's models
#: are small: the 6 ms step floor covers the launch-bound ones), 16 cores, each making a clip in
#: 1.5 ms + 0.1 ns per frame-pixel: 1.9 ms at 4 x 32 px, where the CPU time measured on this project's
#: machine (2026-12, process time of one core) was 1.1-1.9 ms by task, so this errs long.
H200 = Machine("one NVIDIA H200", flops=0.40 * 990e12, step_seconds=0.006, cores=16,
               clip_seconds=(1.5e-3, 1.0e-7), run_seconds=2.0, stretch_seconds=1.0, notebook_seconds=10.0,
               explain_seconds=0.01,
               note="assumed: 40% of 990 bf16 TFLOP/s, >= 6 ms a step, a clip's CPU time as measured on a "
                    "2-core EPYC, rounded up")

#: This project's shared 2-core CPU (the cpu and smoke presets): float32 at what the study's runs
#: reach there, two one-thread runs side by side, their products on oneDNN (tsf.cpu_matmul): in the
#: cpu run from an empty cache of 2026-12-08 each Table 1 run side by side made 52-78 GFLOP/s of
#: training (figures/cpu/table1_runs.csv: steps x 6 x count_macs x batch over train_seconds; median
#: 62.6, tests/test_plan.py keeps the two in step; 34-41 on MKL's products before). The clips are made
#: in the training processes, within those seconds: no separate cost for them, and no step floor.
CPU2 = Machine("the 2-core CPU", flops=0.125e12, step_seconds=0.0, cores=2, clip_seconds=(0.0, 0.0),
               run_seconds=2.0, stretch_seconds=1.0, notebook_seconds=10.0, explain_seconds=0.01,
               note="float32 at the rate the study's runs reached, two side by side, making their clips "
                    "on the same cores (the rate includes it)")


def machine_for(study: StudyPreset) -> Machine:
    return H200 if study.device == "cuda" else CPU2


# -- what each notebook trains ----------------------------------------------------------------------

def _image(study: StudyPreset) -> Callable[..., str]:
    def image(with_position: bool = True) -> str:
        if study.pretrain_images == 0:
            return ""
        return IMAGE if with_position else IMAGE_NO_POSITION
    return image


def _pretrain(study: StudyPreset, image: Callable[..., str]):
    return ({"image-pretrain": image_pretraining(study)} if study.pretrain_images else {}), {}


#: Per notebook, in study order: the calls that ask the run cache for runs, by the name the notebook
#: calls them under (tests/test_plan.py checks that each notebook makes them), and their specs.
NOTEBOOK_RUNS: dict[str, tuple[tuple[str, Callable[..., Any]], ...]] = {
    "01_quickstart": (("quickstart.train_motion_model", _pretrain),
                      ("quickstart.train_motion_model", quickstart.quickstart_specs)),
    "02_attention_schemes": (("experiments.table1", experiments.table1_specs),
                             ("control.order_control", lambda study, image: control.control_specs(study))),
    "03_cost": (),
    "04_positional_embeddings": (("experiments.table4", experiments.table4_specs),
                                 ("experiments.time_embedding_curves", experiments.curve_specs)),
    "05_clip_length_and_data": (("experiments.frames_curve", experiments.frames_specs),
                                ("experiments.data_size_curve", experiments.data_size_specs)),
    "06_attention_maps": (("attention.meaningful", attention.motion_specs),),
}


@dataclass(frozen=True)
class RunCost:
    """One training run's arithmetic."""

    name: str
    steps: int  # optimiser steps
    train_clips: int  # clips trained on (steps x batch)
    eval_clips: int  # clips scored: the final evaluation, the held-out scores, the curve's points
    made_clips: int  # clips generated (every epoch makes its clips again)
    stretches: int  # fit calls (a learning-curve run trains in stretches)
    flops: float
    frames: int
    pixels: int  # per frame

    def core_seconds(self, m: Machine) -> float:
        """One core's seconds to make this run's clips."""
        a, b = m.clip_seconds
        return self.made_clips * (a + b * self.frames * self.pixels)

    def fixed_seconds(self, m: Machine) -> float:
        return m.run_seconds + (self.stretches - 1) * m.stretch_seconds

    def alone(self, m: Machine, workers: int, share: int = 1) -> float:
        """Seconds with ``workers`` DataLoader workers (0: clips made in the run's process) and
        ``1 / share`` of the device; at least its FLOPs, its steps and its clips, plus its set-up."""
        arithmetic = self.flops / m.flops * share
        if workers == 0:
            return arithmetic + self.core_seconds(m) + self.fixed_seconds(m)
        steps = (self.steps + self.eval_clips / 64 / 3) * m.step_seconds
        return max(arithmetic, steps, self.core_seconds(m) / workers) + self.fixed_seconds(m)


def run_cost(name: str, config: TrainConfig, curve_every: int) -> RunCost:
    """The FLOPs, steps and clips of one run as ``fit`` (and the study's scoring) will do them."""
    o, d = config.optim, config.data
    macs = count_macs(config.model)
    steps = optimiser_steps(config)
    train_clips = steps * o.batch_size * o.accum_steps
    points = (math.ceil(steps / curve_every) + 1) if curve_every else 0  # the curve's points, the start's too
    eval_clips = 2 * d.val_samples + points * min(CURVE_CLIPS, d.val_samples)  # fit's last evaluation, held-out
    flops = 2 * macs * (3 * train_clips + eval_clips)
    made = train_clips + 2 * d.val_samples + (min(CURVE_CLIPS, d.val_samples) if curve_every else 0)
    return RunCost(name, steps, train_clips, eval_clips, made, max(1, points - 1), flops, config.model.num_frames,
                   config.model.img_size ** 2)


@dataclass
class NotebookPlan:
    name: str
    runs: list[RunCost] = field(default_factory=list)  # the runs this notebook trains (not cached before it)
    requests: list[list[RunCost]] = field(default_factory=list)  # as the notebook asks for them
    other_flops: float = 0.0  # measurements that are not training (the cost notebook's)
    other_seconds: float = 0.0  # their fixed part, and the CPU's attention maps
    seconds: float = 0.0

    @property
    def flops(self) -> float:
        return sum(r.flops for r in self.runs) + self.other_flops


def request_seconds(runs: list[RunCost], m: Machine, parallel: int = 1) -> float:
    """Runs asked for together, ``parallel`` at a time: at least the device's FLOPs of them all, the
    clips of them all on the cores that make them, and the runs' own times shared out; never less
    than the longest run (with its share of the device and its workers)."""
    if not runs:
        return 0.0
    parallel = min(parallel, len(runs))
    workers = m.data_workers(parallel)
    cores = parallel * workers if workers else m.cores
    own = [r.alone(m, workers, parallel if not m.gpu else 1) for r in runs]
    return max(max(own), sum(r.flops for r in runs) / m.flops, sum(r.core_seconds(m) for r in runs) / cores,
               sum(own) / parallel)


def _cost_notebook(study: StudyPreset, m: Machine) -> tuple[float, float]:
    """FLOPs and fixed seconds of notebook 03: the timed steps of every scheme and, on a GPU, the memory curves."""
    flops = seconds = 0.0
    for scheme in ATTENTION_SCHEMES:
        macs = count_macs(preset(study.model, attention=scheme))
        rounds = 3 + study.time_repeats  # measure_time's warm-up and repeats
        flops += rounds * study.time_batch * 2 * macs * (1 + 3)  # an inference and a training step per round
        seconds += 2 * rounds * m.step_seconds
    if study.device == "cuda":  # measure_gpu_memory: ViT-B/16, one clip, forward + backward, per point
        for scheme in ATTENTION_SCHEMES:
            base = preset("base", attention=scheme)
            points = [dict(img_size=c) for c in MEMORY_CROPS] + [dict(num_frames=f) for f in MEMORY_FRAMES]
            flops += sum(2 * 3 * count_macs(base, **p) for p in points)
            seconds += 2.0 + 0.3 * len(points)  # the model built once, each point's cache emptied and peak read
    return flops, seconds


def plan(study: StudyPreset, m: Machine | None = None) -> list[NotebookPlan]:
    """Every notebook's new runs, FLOPs and estimated seconds, in study order."""
    m = m or machine_for(study)
    image = _image(study)
    cache = Runs("", curve_every=study.curve_every)  # only asked which runs record a learning curve
    seen: set[str] = set()
    out = []
    for notebook, calls in NOTEBOOK_RUNS.items():
        nb = NotebookPlan(notebook)
        for _, specs_of in calls:
            specs, _ = specs_of(study, image)
            request = []
            for name, config in specs.items():
                key = config_key(config)
                if key in seen:
                    continue
                seen.add(key)
                request.append(run_cost(name, config, cache.curve_every_for(config)))
            nb.runs += request
            nb.requests.append(request)
        if notebook == "03_cost":
            nb.other_flops, nb.other_seconds = _cost_notebook(study, m)
        if notebook == "06_attention_maps":  # on the CPU: rollout and gradient maps, trained and untrained
            nb.other_seconds = 2 * 2 * len(ATTENTION_SCHEMES) * study.explain_clips * m.explain_seconds
        nb.seconds = (m.notebook_seconds + nb.other_seconds + nb.other_flops / m.flops
                      + sum(request_seconds(r, m, study.side_by_side) for r in nb.requests))
        out.append(nb)
    return out


def format_plan(study: StudyPreset, m: Machine | None = None) -> str:
    """The dry run's table: per notebook the runs it trains, their steps and clips, PFLOPs and minutes."""
    m = m or machine_for(study)
    notebooks = plan(study, m)
    rows = [{"notebook": nb.name, "runs": len(nb.runs), "steps": sum(r.steps for r in nb.runs),
             "clips": sum(r.train_clips for r in nb.runs), "pflops": nb.flops / 1e15, "time": format_minutes(nb.seconds)}
            for nb in notebooks]
    rows.append({"notebook": "all", "runs": sum(r["runs"] for r in rows), "steps": sum(r["steps"] for r in rows),
                 "clips": sum(r["clips"] for r in rows), "pflops": sum(nb.flops for nb in notebooks) / 1e15,
                 "time": format_minutes(sum(nb.seconds for nb in notebooks))})
    table = format_table(rows, [("notebook", "notebook", "s"), ("runs", "runs", "d"), ("steps", "steps", ",d"),
                                ("clips", "clips trained", ",d"), ("pflops", "PFLOPs", ".2f"),
                                ("time", "estimated time", ">s")])
    return (f"{study.describe()}\n{table}\nestimate for {m.describe()}\n({m.note}; runs a notebook finds "
            f"in the cache cost nothing there, the table counts each run once; {study.side_by_side} run(s) at a time)")


def total_seconds(study: StudyPreset, m: Machine | None = None) -> float:
    return sum(nb.seconds for nb in plan(study, m))


def format_estimates(names: tuple[str, ...] | None = None) -> str:
    """One line per study preset: its runs, PFLOPs and estimated time on the machine it is meant for."""
    rows = []
    for name in names or tuple(STUDY_PRESETS):
        study = STUDY_PRESETS[name]
        m = machine_for(study)
        notebooks = plan(study, m)
        rows.append({"preset": name, "runs": sum(len(nb.runs) for nb in notebooks),
                     "pflops": sum(nb.flops for nb in notebooks) / 1e15,
                     "time": format_minutes(sum(nb.seconds for nb in notebooks)), "machine": m.name})
    return format_table(rows, [("preset", "preset", "s"), ("runs", "runs", "d"), ("pflops", "PFLOPs", ".2f"),
                               ("time", "estimated time", ">s"), ("machine", "for", "s")])
