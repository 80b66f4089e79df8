"""The training engine: one loop from a CPU notebook to many GPUs under torchrun.

``fit(config)`` trains, evaluates and checkpoints; ``python -m tsf train`` calls it. Under
``torchrun --nproc_per_node=N`` the same call uses DistributedDataParallel (nccl on GPU,
gloo on CPU), each process taking its share of every global batch; only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import platform
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.datasets import mix_seed
from ..model import TimeSformer
from ..version import __version__
from ..weights import CheckpointError, load_pretrained, save_pretrained
from .checkpoint import (
    CLASSES_FILE,
    describe_mismatch,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from .config import TrainConfig
from .data import build_datasets, dataset_classes
from .evaluate import evaluate
from .sampling import EpochSampler, SeededDataset

log = logging.getLogger(__name__)

# Fields that change what a run computes; a checkpoint saved under other values of these
# cannot continue this run. (Output folder, logging, workers and the like may change.)
_TRAJECTORY = ("model", "data", "optim", "seed", "precision", "init")
_NOT_TRAJECTORY_DATA = ("num_workers", "on_error", "root")


@dataclass
class TrainResult:
    """What ``fit`` returns. ``model`` is the trained model (unwrapped, eval mode)."""

    run_dir: Path
    model: TimeSformer
    history: list[dict[str, Any]] = field(default_factory=list)  # one summary per epoch
    steps: int = 0  # optimiser steps taken in total
    interrupted: bool = False  # stopped by a signal or stop_after_steps, with a checkpoint
    checkpoint: Path | None = None  # the last checkpoint written
    classes: list[str] | None = None

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


# -- process set-up ---------------------------------------------------------------------

@dataclass(frozen=True)
class _Proc:
    rank: int
    world: int
    device: torch.device
    distributed: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup(config: TrainConfig) -> _Proc:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if config.device == "auto":
        cuda = torch.cuda.is_available()
    else:
        cuda = config.device.startswith("cuda")
        if cuda and not torch.cuda.is_available():
            raise ValueError(f"device {config.device!r} asked for, but CUDA is not available")
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        return _Proc(dist.get_rank(), world, device, True)
    if cuda:
        device = torch.device(config.device if config.device.startswith("cuda:") else "cuda")
    else:
        device = torch.device("cpu")
    return _Proc(0, 1, device, False)


def _autocast(config: TrainConfig, device: torch.device):
    precision = config.precision
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(precision)


def environment(proc: _Proc) -> dict[str, Any]:
    info: dict[str, Any] = {
        "tsf": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "host": socket.gethostname(), "device": str(proc.device),
        "world_size": proc.world, "cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if proc.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(proc.device)
    return info


# -- optimiser and schedule -------------------------------------------------------------

def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases, norms and the cls/position/time embeddings (as timm, the authors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith((".bias", "cls_token", "pos_embed", "time_embed"))
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    o = config.optim
    groups = _param_groups(model, o.weight_decay)
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas)


def lr_factor(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (a pure function)."""
    o = config.optim
    total = o.epochs * steps_per_epoch
    warmup = round(o.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if o.schedule == "step":
        epoch = step // steps_per_epoch
        return o.gamma ** sum(epoch >= m for m in o.milestones)
    progress = (step - warmup) / max(1, total - warmup)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# -- RNG state (saved for completeness; the run reseeds from its position anyway) -------

def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]) + [random.getstate()[0]],
        "numpy": [torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2])],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    *mt, version = state["python"]
    random.setstate((version, tuple(mt), None))
    keys, pos = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- signals -------------------------------------------------------------------------------

class _StopFlag:
    """SIGINT / SIGTERM set a flag; the loop saves a checkpoint after the current step and returns."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_StopFlag":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signal = signum
        log.warning("received %s: saving a checkpoint after this step", signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


# -- the loop ---------------------------------------------------------------------------------

def _trajectory(config_dict: dict[str, Any]) -> dict[str, Any]:
    out = {k: config_dict[k] for k in _TRAJECTORY}
    out["data"] = {k: v for k, v in out["data"].items() if k not in _NOT_TRAJECTORY_DATA}
    return out


def _all_sum(values: list[float], proc: _Proc) -> list[float]:
    if not proc.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=proc.device)
    dist.all_reduce(t)
    return t.tolist()


def _resolve(config: TrainConfig, train: Dataset) -> TrainConfig:
    """Fit the model's class count to the data's (the data knows how many classes it has)."""
    n = getattr(train, "num_classes", None)
    if n is not None and n != config.model.num_classes:
        log.info("model.num_classes set to %d, the number of classes in the data", n)
        return TrainConfig.from_dict({**config.to_dict(), "model": config.model.replace(num_classes=n).to_dict()})
    return config


def fit(config: TrainConfig, *, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
        resume: bool | str | Path = False) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (or the datasets given) and return the result.

    ``resume=True`` continues from the newest checkpoint in ``config.output_dir`` (or starts
    afresh if there is none); a path resumes from that checkpoint folder. The rest of the run
    is then the same as if it had never stopped. Datasets yield ``(clip (C,T,H,W), label)``.
    """
    proc = _setup(config)
    if train_dataset is None:
        train_dataset, built_val = build_datasets(config)
        val_dataset = built_val if val_dataset is None else val_dataset
    config = _resolve(config, train_dataset)
    classes = dataset_classes(train_dataset)
    run_dir = Path(config.output_dir)
    o = config.optim

    torch.manual_seed(config.seed)
    if config.init:
        # every field: what shapes cannot tell (heads, eps, dropout) comes from the config, the rest is checked
        model = load_pretrained(config.init, **config.model.to_dict())
        model.train()
    else:
        model = TimeSformer(config.model)
    model.set_grad_checkpointing(config.grad_checkpointing)

    sampler = EpochSampler(len(train_dataset), o.batch_size, config.seed, world_size=proc.world, rank=proc.rank)
    steps_per_epoch = sampler.batches_per_epoch // o.accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_dataset)} clips give no full optimiser step of "
                         f"{o.batch_size} x {o.accum_steps} accumulation x {proc.world} processes")

    model.to(proc.device)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, config))
    step, start_epoch, start_batch, sums = 0, 0, 0, [0.0, 0.0, 0.0]  # sums: loss, correct, clips
    history: list[dict[str, Any]] = []

    source = latest_checkpoint(run_dir) if resume is True else (Path(resume) if resume else None)
    if resume is True and source is None:
        log.info("no checkpoint in %s: starting afresh", run_dir)
    if source is not None:
        step, start_epoch, start_batch, sums, history = _restore(source, config, model, optimizer, scheduler, proc)

    net: nn.Module = model
    if proc.distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[proc.device] if proc.device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)

    if proc.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", config.to_dict())
        write_json_atomic(run_dir / "env.json", environment(proc))
        _truncate_metrics(run_dir / "metrics.jsonl", step)

    loader = DataLoader(SeededDataset(train_dataset), batch_size=o.batch_size, sampler=sampler,
                        num_workers=config.data.num_workers, pin_memory=proc.device.type == "cuda",
                        persistent_workers=False)
    autocast = _autocast(config, proc.device)
    last_ckpt: Path | None = source
    interrupted = False

    def checkpoint(epoch: int, batch: int, running: list[float]) -> None:
        nonlocal last_ckpt
        if proc.main:
            state = {"format": "tsf-trainer", "version": 1, "step": step, "epoch": epoch, "batch": batch,
                     "sums": list(running), "history": json.dumps(history),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": None,
                     "rng": _rng_state(), "train_config": json.dumps(config.to_dict())}
            last_ckpt = save_checkpoint(run_dir, step, model, state, classes=classes, keep=config.keep_checkpoints)
        if proc.distributed:
            dist.barrier()

    with _StopFlag() as stop:
        for epoch in range(start_epoch, o.epochs):
            batch0 = start_batch if epoch == start_epoch else 0
            running = list(sums) if epoch == start_epoch else [0.0, 0.0, 0.0]
            sampler.set_epoch(epoch, batch0)
            if hasattr(train_dataset, "set_epoch"):  # real video: new random clips every epoch
                train_dataset.set_epoch(epoch)
            model.train()
            micro_total = steps_per_epoch * o.accum_steps
            bar = tqdm(total=micro_total, initial=batch0, desc=f"epoch {epoch + 1}/{o.epochs}",
                       disable=not (config.progress and proc.main), leave=True, unit="batch")
            t0 = time.perf_counter()
            batch = batch0
            step_sums = [0.0, 0.0, 0.0]  # loss, correct, clips of the current optimiser step (all its micro-batches)
            for clips, labels in loader:
                if batch >= micro_total:
                    break
                micro = epoch * micro_total + batch  # global micro-batch index: seeds drop path
                torch.manual_seed(mix_seed(config.seed, 1, micro, proc.rank))
                clips, labels = clips.to(proc.device, non_blocking=True), labels.to(proc.device, non_blocking=True)
                last_micro = (batch + 1) % o.accum_steps == 0
                sync = contextlib.nullcontext() if (last_micro or not proc.distributed) else net.no_sync()
                with sync:
                    with autocast:
                        logits = net(clips)
                        loss = F.cross_entropy(logits.float(), labels, label_smoothing=o.label_smoothing)
                    (loss / o.accum_steps).backward()
                n = labels.numel()
                this = [loss.item() * n, (logits.argmax(-1) == labels).sum().item(), n]
                running = [a + b for a, b in zip(running, this)]
                step_sums = [a + b for a, b in zip(step_sums, this)]
                batch += 1
                bar.update(1)
                if not last_micro:
                    continue
                if o.clip_grad is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip_grad)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                elapsed = time.perf_counter() - t0
                loss_sum, correct_sum, seen, step_loss, step_correct, step_seen = _all_sum(running + step_sums, proc)
                step_sums = [0.0, 0.0, 0.0]
                rate = (batch - batch0) * o.batch_size * proc.world / max(elapsed, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct_sum / seen:.3f}", clips_s=f"{rate:.1f}")
                if proc.main and config.log_every and step % config.log_every == 0:
                    _append(run_dir / "metrics.jsonl", {
                        "event": "step", "step": step, "epoch": epoch, "loss": step_loss / step_seen,
                        "acc": step_correct / step_seen, "lr": scheduler.get_last_lr()[0], "clips_per_s": rate})
                stop_now = stop.signal is not None or (config.stop_after_steps and step >= config.stop_after_steps)
                stop_now = bool(_all_sum([float(stop_now)], proc)[0])
                done_epoch = batch >= micro_total
                if (config.checkpoint_every and step % config.checkpoint_every == 0 and not done_epoch) or (
                        stop_now and not done_epoch):
                    checkpoint(epoch, batch, running)
                if stop_now and not done_epoch:
                    interrupted = True
                    break
            bar.close()
            if interrupted:
                break
            loss_sum, correct_sum, seen = _all_sum(running, proc)
            summary: dict[str, Any] = {"event": "epoch", "epoch": epoch, "step": step,
                                       "train_loss": loss_sum / seen, "train_acc": correct_sum / seen,
                                       "epoch_time": time.perf_counter() - t0}
            last_epoch = epoch == o.epochs - 1
            if val_dataset is not None and proc.main and (
                    last_epoch or (config.eval_every and (epoch + 1) % config.eval_every == 0)):
                with autocast:
                    scores = evaluate(model, val_dataset, batch_size=o.batch_size, device=proc.device,
                                      progress=False, num_workers=config.data.num_workers)
                summary.update({"val_loss": scores["loss"], "val_acc": scores["top1"], "val_top5": scores["top5"]})
            history.append(summary)
            if proc.main:
                _append(run_dir / "metrics.jsonl", summary)
                log.info("epoch %d: %s", epoch + 1, {k: v for k, v in summary.items() if k != "event"})
            checkpoint(epoch + 1, 0, [0.0, 0.0, 0.0])
            stop_after = stop.signal is not None or (config.stop_after_steps and step >= config.stop_after_steps)
            if bool(_all_sum([float(bool(stop_after))], proc)[0]) and not last_epoch:
                interrupted = True
                break

    if proc.main and not interrupted:
        save_pretrained(model, run_dir / "model")
        if classes is not None:
            (run_dir / "model" / CLASSES_FILE).write_text(json.dumps(classes))
        write_json_atomic(run_dir / "result.json", {"steps": step, "history": history})
    if proc.distributed:
        dist.barrier()
    model.eval()
    return TrainResult(run_dir, model, history, step, interrupted, last_ckpt, classes)


def _restore(source: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any, proc: _Proc) -> tuple[int, int, int, list[float], list[dict[str, Any]]]:
    saved_model, state = load_checkpoint(source)
    saved_config = json.loads(state["train_config"])
    diff = describe_mismatch(_trajectory(saved_config), _trajectory(config.to_dict()))
    if diff:
        raise CheckpointError(f"{source}: saved by a run with another configuration; cannot resume this one: "
                              + "; ".join(diff[:8]))
    model.load_state_dict(saved_model.state_dict())
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{source}: optimiser/scheduler state does not fit this run ({err})") from err
    _set_rng_state(state["rng"])
    log.info("resumed from %s at step %d (epoch %d, batch %d)", source, state["step"], state["epoch"], state["batch"])
    return state["step"], state["epoch"], state["batch"], list(state["sums"]), json.loads(state["history"])


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop the lines logged after the checkpoint (they will be logged again)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))
