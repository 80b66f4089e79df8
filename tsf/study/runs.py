"""Study runs: a cache of training runs shared by every notebook, run in parallel when asked.

A run is identified by the hash of its training configuration (without the output folder
or logging options), so two notebooks that need the same run (Table 1's divided model on
the motion task is also Table 4's space-time row and the attention notebook's model) train
it once. A run that was interrupted resumes from its last checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..cost import count_macs
from ..cpu_matmul import kernels_name, onednn_matmul
from ..train import TrainConfig, fit, pick_device
from ..train.checkpoint import write_json_atomic
from ..train.config import DataConfig
from ..train.data import build_datasets
from ..weights import load_pretrained
from ..weights.io import weights_fingerprint
from .metrics import cached_clips, held_out_scores, initial_model, scores_on

log = logging.getLogger(__name__)

#: what an experiment asks the cache for: ``{name: config}``, and ``{name: its table columns}``
Specs = tuple[dict[str, TrainConfig], dict[str, dict[str, Any]]]

_VOLATILE = ("output_dir", "progress", "log_every", "checkpoint_every", "checkpoint_epochs", "keep_checkpoints",
             "eval_every", "stop_after_steps", "cpu_matmul")  # cpu_matmul: the kernels, as the threads, not the function


#: data fields added after runs were cached: in the key only when set, so the runs that leave them
#: at their default keep their keys (and their cached results, which they would compute again)
_KEY_ONLY_WHEN_SET = {"mirrored_val": False}


def _key_fields(config: TrainConfig) -> dict[str, Any]:
    data = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE}
    data["data"] = {k: v for k, v in data["data"].items()
                    if k != "num_workers" and not (k in _KEY_ONLY_WHEN_SET and v == _KEY_ONLY_WHEN_SET[k])}
    return data


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


def config_key(config: TrainConfig) -> str:
    """A short stable hash of what a run computes. The weights it starts from (``init``) count by
    their content, not by where they lie, so a moved checkout or a copied run cache keeps its runs."""
    data = _key_fields(config)
    if data.get("init"):
        data["init"] = weights_fingerprint(data["init"])
    return _digest(data)


def legacy_config_key(config: TrainConfig) -> str:
    """The key as it was before ``init`` counted by content (the path itself): how run folders
    cached until then are named. Only for :meth:`Runs.path` to adopt them."""
    return _digest(_key_fields(config))


@dataclass(frozen=True)
class RunRecord:
    """A finished run: its configuration, epoch history, final scores and learning curve."""

    name: str
    config: TrainConfig
    run_dir: Path
    history: list[dict[str, Any]]
    scores: dict[str, Any]  # val_acc, pair_acc (motion), train_acc, steps, train_seconds, ...
    curve: list[dict[str, Any]] = field(default_factory=list)  # held-out scores by optimiser step (curve runs)

    def load_model(self):
        return load_pretrained(self.run_dir / "model")


def _score_file(run_dir: Path) -> Path:
    return run_dir / "study.json"


def _curve_file(run_dir: Path) -> Path:
    return run_dir / "curve.json"


#: held-out clips scored at every point of a learning curve (the first ones of the split)
CURVE_CLIPS = 256


def _fit_with_curve(config: TrainConfig, every: int):
    """``fit`` in stretches of ``every`` optimiser steps, scoring held-out clips after each.

    Each stretch stops with a checkpoint and the next resumes from it (resume is exact), so
    the run ends exactly where an uninterrupted one would: the curve costs only its scoring.
    Every stretch trains on the same dataset objects, so the clips they keep (a clip is a
    function of its index) are made once per run, not once per stretch.
    Written to ``curve.json`` as it grows; a run interrupted mid-way keeps its points.
    """
    train, val = build_datasets(config)
    clips = cached_clips(val, CURVE_CLIPS)
    path = _curve_file(Path(config.output_dir))
    curve = json.loads(path.read_text()) if path.is_file() else []
    if not curve:
        start = initial_model(config, train).to(pick_device(config.device))  # scored where the run trains
        curve.append({"step": 0, **scores_on(start, clips, config)})
    while True:
        stop = curve[-1]["step"] + every
        result = fit(TrainConfig.from_dict({**config.to_dict(), "stop_after_steps": stop}), train_dataset=train,
                     val_dataset=val, resume=True)
        if result.steps > curve[-1]["step"]:
            curve.append({"step": result.steps, **scores_on(result.model, clips, config)})
            write_json_atomic(path, curve)
        if not result.interrupted or result.steps < stop:  # done, or stopped by a signal before the stretch's end
            return result, curve


def _run_one(config_json: str, name: str, threads: int, curve_every: int = 0) -> str:
    """Train one run (in this process or a worker) and write its study.json; returns the run dir."""
    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(json.loads(config_json))
    run_dir = Path(config.output_dir)
    start = time.perf_counter()
    with onednn_matmul(config.cpu_matmul, pick_device(config.device)) as onednn:  # the held-out scores' too
        result = _fit_with_curve(config, curve_every)[0] if curve_every else fit(config, resume=True)
        seconds = time.perf_counter() - start
        if result.interrupted:  # a signal stopped it: no study.json, so the cache resumes it next time
            raise RuntimeError(f"study run {name} was stopped at step {result.steps} by a signal; its checkpoint "
                               f"{result.checkpoint} is kept, and the next call resumes it")
        held_out = held_out_scores(result.model, config)
    scores = dict(result.final)
    scores.pop("event", None)
    scores.update(steps=result.steps, train_seconds=seconds, threads=threads,
                  cpu_float32_products=kernels_name(onednn))
    scores.update(held_out)
    _score_file(run_dir).write_text(json.dumps({"name": name, "scores": scores}, indent=2))
    return str(run_dir)


class Runs:
    """The cache of study runs under ``root``. ``get`` returns finished runs, training the
    missing ones: on a CPU ``workers`` at a time, each with ``cores // workers`` threads; on a
    GPU ``gpu_workers`` at a time, each with ``cores // gpu_workers - 1`` DataLoader workers
    making its clips (where its config leaves them to the engine).

    Runs on one of ``curve_tasks`` record a learning curve: held-out scores every
    ``curve_every`` optimiser steps (0: none), whichever notebook trains them first."""

    def __init__(self, root: str | Path, *, workers: int = 1, progress: bool = True, curve_every: int = 0,
                 curve_tasks: tuple[str, ...] = ("motion",), gpu_workers: int = 1) -> None:
        self.root = Path(root)
        self.workers, self.gpu_workers = max(1, workers), max(1, gpu_workers)
        self.progress = progress
        self.curve_every, self.curve_tasks = curve_every, curve_tasks

    def curve_every_for(self, config: TrainConfig) -> int:
        """Optimiser steps between the learning curve's points of a run (0: it records none)."""
        return self.curve_every if config.data.kind == "synthetic" and config.data.task in self.curve_tasks else 0

    def path(self, name: str, config: TrainConfig) -> Path:
        """The run's folder; a folder cached under the key's former form (``init`` by its path) is
        renamed to it, so that runs cached before the key changed are kept."""
        run_dir = self.root / f"{name}-{config_key(config)}"
        if config.init and not run_dir.exists():
            legacy = self.root / f"{name}-{legacy_config_key(config)}"
            if legacy != run_dir and legacy.is_dir():
                legacy.rename(run_dir)
                log.info("run %s: cache folder %s renamed to %s (its key counts the weights it starts from "
                         "by their content now)", name, legacy.name, run_dir.name)
        return run_dir

    def finished(self) -> int:
        """How many finished runs the cache holds (a later ``get`` reuses them)."""
        return sum(1 for run_dir in self.root.glob("*") if _score_file(run_dir).is_file())

    def _record(self, name: str, config: TrainConfig) -> RunRecord | None:
        run_dir = self.path(name, config)
        score_file = _score_file(run_dir)
        if not score_file.is_file():
            return None
        history = json.loads((run_dir / "result.json").read_text())["history"]
        saved = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
        curve = json.loads(_curve_file(run_dir).read_text()) if _curve_file(run_dir).is_file() else []
        return RunRecord(name, saved, run_dir, history, json.loads(score_file.read_text())["scores"], curve)

    def _job(self, name: str, config: TrainConfig, data_workers: int | None) -> TrainConfig:
        """The config a run trains with: its folder, no progress bar, and its share of the data workers."""
        data = config.data
        if data_workers is not None and data.num_workers < 0:  # auto: this run's share of the cores
            data = replace(data, num_workers=data_workers)
        return replace(config, output_dir=str(self.path(name, config)), progress=False, data=data)

    def get(self, runs: dict[str, TrainConfig], desc: str = "runs") -> dict[str, RunRecord]:
        """Finished records for ``{name: config}``, training what is not cached yet."""
        todo = {name: cfg for name, cfg in runs.items() if self._record(name, cfg) is None}
        if todo:
            cores = os.cpu_count() or 1
            cuda = torch.cuda.is_available()
            workers = min(self.gpu_workers if cuda else self.workers, len(todo))
            threads = max(1, cores // workers)
            jobs = {name: (self._job(name, cfg, max(1, cores // workers - 1) if cuda else None).to_json(),
                           self.curve_every_for(cfg)) for name, cfg in todo.items()}
            bar = tqdm(total=len(jobs), desc=f"{desc}: training {len(jobs)} of {len(runs)}", unit="run",
                       disable=not self.progress)
            if workers == 1:
                for name, (cfg_json, curve_every) in jobs.items():
                    bar.set_postfix_str(name)
                    _run_one(cfg_json, name, threads, curve_every)
                    bar.update(1)
            else:  # the longest first, so that no long run starts last while the other workers idle
                order = sorted(jobs, key=lambda name: -training_macs(todo[name]))
                with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                    futures = {pool.submit(_run_one, jobs[name][0], name, threads, jobs[name][1]): name
                               for name in order}
                    for future in as_completed(futures):
                        try:
                            future.result()
                        except Exception as err:  # a worker's error, with the run it belongs to
                            raise RuntimeError(f"study run {futures[future]} failed: {err}") from err
                        bar.set_postfix_str(futures[future])
                        bar.update(1)
            bar.close()
        out = {}
        for name, cfg in runs.items():
            record = self._record(name, cfg)
            if record is None:
                raise RuntimeError(f"run {name} finished without results in {self.path(name, cfg)}")
            out[name] = record
        return out


def optimiser_steps(config: TrainConfig) -> int:
    """The optimiser steps ``fit`` takes (each epoch's last incomplete step dropped)."""
    o = config.optim
    return config.data.train_samples // o.batch_size // o.accum_steps * o.epochs


def training_macs(config: TrainConfig) -> int:
    """Multiply-adds of a run's training clips (forward), what orders the runs of one request."""
    o = config.optim
    return optimiser_steps(config) * o.batch_size * o.accum_steps * count_macs(config.model)


def synthetic_data(task: str, train_samples: int, val_samples: int, *, seed: int = 0,
                   source_frames: int | None = None, design: str = "coarse") -> DataConfig:
    return DataConfig(kind="synthetic", task=task, train_samples=train_samples, val_samples=val_samples,
                      seed=seed, source_frames=source_frames, flip=False, design=design)
