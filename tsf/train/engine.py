"""The training engine: one loop from a CPU notebook to many GPUs under torchrun.

``fit(config)`` trains, evaluates and checkpoints; ``python -m tsf train`` calls it. Under
``torchrun --nproc_per_node=N`` the same call uses DistributedDataParallel (nccl on GPU,
gloo on CPU), each process taking its share of every global batch; only rank 0 writes.

Rank 0 locks the run folder for the run's life (``tsf.train.rundir``). A non-finite loss or
gradient stops the run before the optimiser step it would poison, with a checkpoint of the
state before that step and a :class:`NonFiniteError`; no checkpoint is written from
non-finite weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
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
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..cpu_matmul import kernels_name, onednn_active, onednn_matmul
from ..data.datasets import mix_seed
from ..model import TimeSformer, autocast
from ..provenance import machine, utc_now
from ..version import __version__
from ..weights import CheckpointError, load_pretrained
from ..weights.io import weights_fingerprint
from .checkpoint import (
    STATE_VERSION,
    describe_mismatch,
    load_checkpoint,
    newest_good_checkpoint,
    save_checkpoint,
    write_json_atomic,
    write_model_folder,
)
from .config import TrainConfig
from .data import build_datasets, dataset_classes
from .evaluate import evaluate
from .rundir import METRICS_FILE, RunFolderError, RunLock, append_metrics, prepare_run_dir, sync_metrics, truncate_metrics
from .sampling import EpochSampler, SeededDataset

log = logging.getLogger(__name__)

# Fields that change what a run computes; a checkpoint saved under other values of these
# cannot continue this run. (Output folder, logging, workers and the like may change.)
_TRAJECTORY = ("model", "data", "optim", "seed", "precision", "init")
_NOT_TRAJECTORY_DATA = ("num_workers", "on_error", "root", "decode_timeout")


class NonFiniteError(RuntimeError):
    """The loss, a gradient or the weights stopped being finite; the message says where and
    which checkpoint holds the last finite state."""


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


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU where CUDA is available, else the CPU; or ``cpu``, ``cuda``, ``cuda:N``.
    CUDA asked for where there is none is an error (a clear one, before anything runs)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not name.startswith(("cpu", "cuda")):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def _setup(config: TrainConfig) -> _Proc:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = pick_device(config.device).type == "cuda"
    if world > 1:
        device = torch.device("cpu")
        if cuda:  # the device first: NCCL's communicator binds to the current device when it starts
            local, local_world = int(os.environ.get("LOCAL_RANK", "0")), int(os.environ.get("LOCAL_WORLD_SIZE", world))
            device = _local_gpu(local, local_world)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
        return _Proc(dist.get_rank(), world, device, True)
    return _Proc(0, 1, pick_device(config.device), False)


def _local_gpu(local_rank: int, local_world: int) -> torch.device:
    """This process's GPU under torchrun: one per process on the machine, or a clear error if there are too few."""
    count = torch.cuda.device_count()
    if local_world > count or local_rank >= count:
        raise ValueError(f"{local_world} training processes on this machine but {count} GPU(s) visible: start at most "
                         f"{count} (torchrun --nproc_per_node={count}), or train on the CPU (device=cpu)")
    return torch.device("cuda", local_rank)


def run_precision(config: TrainConfig, device: torch.device) -> str:
    """The run's precision: ``auto`` is bf16 autocast on CUDA, float32 on a CPU."""
    auto = "bf16" if device.type == "cuda" else "fp32"
    return auto if config.precision == "auto" else config.precision


def run_autocast(config: TrainConfig, device: torch.device):
    return autocast(device, run_precision(config, device))


def loader_workers(requested: int, device: torch.device, processes: int = 1) -> int:
    """DataLoader workers: ``requested`` if it is >= 0; ``-1`` (auto) is none on a CPU, where the
    cores train and the clips are made in the training process, and on CUDA every core this
    process may use but one (shared among the ``processes`` on the machine), for the clips."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, processes) - 1)


def environment(proc: _Proc) -> dict[str, Any]:
    """``env.json``: the run's start, its processes and device, and the machine (:func:`tsf.provenance.machine`)."""
    return {"time": utc_now(), "tsf": __version__, "host": socket.gethostname(), "device": str(proc.device),
            "world_size": proc.world, "machine": machine(proc.device),
            "cpu_float32_products": kernels_name(onednn_active())}


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
    """AdamW or SGD over :func:`_param_groups`, in the multi-tensor (``foreach``) form on every
    device (torch picks it by itself only on a GPU): a few operations over all the tensors instead
    of a few per tensor. On a CPU it gives the per-tensor loop's values bit for bit
    (tests/test_train.py)."""
    o = config.optim
    groups = _param_groups(model, o.weight_decay)
    if o.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, foreach=True)
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, foreach=True)


def epoch_line(summary: dict[str, Any], epochs: int) -> str:
    """An epoch's summary as the one line ``train`` prints (epochs counted from 1, as the bars do;
    metrics.jsonl keeps the record itself, with ``epoch`` counted from 0)."""
    line = (f"epoch {summary['epoch'] + 1}/{epochs}: train loss {summary['train_loss']:.4f}, "
            f"acc {summary['train_acc']:.1%}")
    if "val_loss" in summary:
        line += f" | val loss {summary['val_loss']:.4f}, acc {summary['val_acc']:.1%}, top-5 {summary['val_top5']:.1%}"
    return line + f" | step {summary['step']}, {summary['epoch_time']:.1f} s"


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


@dataclass
class Sums:
    """Running sums over clips: the loss (summed per clip), the correct predictions and the clips."""

    loss: float = 0.0
    correct: float = 0.0
    clips: float = 0.0

    def add(self, other: "Sums") -> None:
        self.loss, self.correct, self.clips = self.loss + other.loss, self.correct + other.correct, self.clips + other.clips

    def as_list(self) -> list[float]:
        """``[loss, correct, clips]``, as checkpoints store them."""
        return [self.loss, self.correct, self.clips]

    @property
    def mean_loss(self) -> float:
        return self.loss / self.clips

    @property
    def accuracy(self) -> float:
        return self.correct / self.clips


class DeviceSums:
    """Running sums kept where the model runs: the loss (summed per clip) and the correct
    predictions in a float64 tensor on the device, the clips on the host. Adding never waits
    for a GPU; :meth:`read` does, so the loop reads only when it logs, checkpoints or ends an
    epoch (the same float64 sums, in the same order, as adding ``.item()`` values on the host)."""

    def __init__(self, device: torch.device, start: Sums | None = None) -> None:
        start = start or Sums()
        self.values = torch.tensor([start.loss, start.correct], dtype=torch.float64, device=device)
        self.clips = start.clips

    def add(self, values: Tensor, clips: int) -> None:
        """``values``: ``[loss summed over the clips, correct predictions]`` of a micro-batch, on the device."""
        self.values += values
        self.clips += clips

    def reset(self) -> None:
        self.values.zero_()
        self.clips = 0.0

    def read(self) -> Sums:
        loss, correct = self.values.tolist()
        return Sums(loss, correct, self.clips)

    def copy(self) -> "DeviceSums":
        """A snapshot that stays on the device (no wait)."""
        snapshot = DeviceSums.__new__(DeviceSums)
        snapshot.values, snapshot.clips = self.values.clone(), self.clips
        return snapshot


def _summed(proc: _Proc, *sums: Sums) -> list[Sums]:
    """``sums`` added over all processes, in one all-reduce."""
    flat = _all_sum([v for s in sums for v in s.as_list()], proc)
    return [Sums(*flat[3 * k:3 * k + 3]) for k in range(len(sums))]


def _resolve(config: TrainConfig, train: Dataset) -> TrainConfig:
    """Fit the model's class count to the data's (the data knows how many classes it has)."""
    n = getattr(train, "num_classes", None)
    if n is not None and n != config.model.num_classes:
        log.info("model.num_classes set to %d, the number of classes in the data", n)
        return TrainConfig.from_dict({**config.to_dict(), "model": config.model.replace(num_classes=n).to_dict()})
    return config


def _build_model(config: TrainConfig) -> TimeSformer:
    """The model to train: ``config.init``'s weights, or a fresh one (seeded by ``config.seed``)."""
    torch.manual_seed(config.seed)
    if config.init:
        # every field: what shapes cannot tell (heads, eps, dropout) comes from the config, the rest is checked
        model = load_pretrained(config.init, **config.model.to_dict())
        model.train()
    else:
        model = TimeSformer(config.model)
    model.set_grad_checkpointing(config.grad_checkpointing)
    return model


class _Run:
    """One call of :func:`fit`: the model, its optimiser and schedule, the data, and where the run stands.

    ``step`` counts optimiser steps; ``start_epoch``, ``start_batch`` and ``start_sums`` say
    where a resumed run picks up inside an epoch.
    """

    def __init__(self, config: TrainConfig, proc: _Proc, train_dataset: Dataset, val_dataset: Dataset | None) -> None:
        self.config, self.proc = config, proc
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.classes = dataset_classes(train_dataset)
        self.run_dir = Path(config.output_dir)
        o = config.optim
        self.model = _build_model(config)
        # what the run starts from, by content: its checkpoints record it, resume compares it
        self.init_fingerprint = weights_fingerprint(config.init) if config.init else ""
        self.sampler = EpochSampler(len(train_dataset), o.batch_size, config.seed, world_size=proc.world,
                                    rank=proc.rank)
        self.steps_per_epoch = self.sampler.batches_per_epoch // o.accum_steps
        if self.steps_per_epoch == 0:
            raise ValueError(f"{len(train_dataset)} clips give no full optimiser step of "
                             f"{o.batch_size} x {o.accum_steps} accumulation x {proc.world} processes")
        self.micro_per_epoch = self.steps_per_epoch * o.accum_steps
        self.model.to(proc.device)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, self.steps_per_epoch, config))
        self.step, self.start_epoch, self.start_batch, self.start_sums = 0, 0, 0, Sums()
        self.history: list[dict[str, Any]] = []
        self.last_checkpoint: Path | None = None
        self.interrupted = False

    # -- before the loop ----------------------------------------------------------------

    def resume_from(self, resume: bool | str | Path) -> None:
        """``True``: the newest checkpoint of the run folder that verifies (none: start afresh);
        a path: that checkpoint (damaged: an error)."""
        if not resume:
            return
        if resume is True:
            found = newest_good_checkpoint(self.run_dir)
            if found is None:
                log.info("no checkpoint in %s: starting afresh", self.run_dir)
                return
            source, saved_model, state = found
        else:
            source = Path(resume)
            saved_model, state = load_checkpoint(source)
        self.step, self.start_epoch, self.start_batch, sums, self.history = _restore(
            source, saved_model, state, self.config, self.model, self.optimizer, self.scheduler)
        self.start_sums = Sums(*sums)
        self.last_checkpoint = source

    def prepare(self) -> None:
        """Wrap the model (DDP, compile), write the run folder's config and environment, build the loader."""
        config, proc = self.config, self.proc
        self.net: nn.Module = self.model
        if proc.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[proc.device] if proc.device.type == "cuda" else None)
        if config.compile:
            self.net = torch.compile(self.net)
        if proc.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.run_dir / "config.json", config.to_dict())
            write_json_atomic(self.run_dir / "env.json", environment(proc))
            truncate_metrics(self.run_dir / METRICS_FILE, self.step)
        self.workers = loader_workers(config.data.num_workers, proc.device,
                                      int(os.environ.get("LOCAL_WORLD_SIZE", proc.world)))
        # Workers live through the epochs (every clip's seed comes from the sampler, in this process),
        # unless the dataset itself changes each epoch (set_epoch): then each epoch sends it afresh.
        persistent = self.workers > 0 and not hasattr(self.train_dataset, "set_epoch")
        self.loader = DataLoader(SeededDataset(self.train_dataset), batch_size=config.optim.batch_size,
                                 sampler=self.sampler, num_workers=self.workers,
                                 pin_memory=proc.device.type == "cuda", persistent_workers=persistent)
        self.autocast = run_autocast(config, proc.device)

    # -- the loop -------------------------------------------------------------------------

    def should_stop(self, stop: _StopFlag) -> bool:
        """A signal arrived or ``stop_after_steps`` is reached, on any process."""
        wanted = stop.signal is not None or bool(self.config.stop_after_steps and
                                                 self.step >= self.config.stop_after_steps)
        return bool(_all_sum([float(wanted)], self.proc)[0])

    def weights_finite(self) -> bool:
        return math.isfinite(torch.nn.utils.get_total_norm(list(self.model.parameters())).item())

    def checkpoint(self, epoch: int, batch: int, running: Sums) -> Path:
        """Rank 0 saves the whole state (resume continues exactly from here); every process waits.
        Non-finite weights are never saved: a :class:`NonFiniteError` instead."""
        if not self.weights_finite():  # the same weights on every process, so the same answer
            raise NonFiniteError(f"the weights are not finite at step {self.step}; not saving them. The newest "
                                 f"checkpoint, {self.last_checkpoint}, holds the last finite state")
        if self.proc.main:
            sync_metrics(self.run_dir / METRICS_FILE)  # the log is as durable as the checkpoint
            state = {"format": "tsf-trainer", "version": STATE_VERSION, "step": self.step, "epoch": epoch,
                     "batch": batch,
                     "sums": running.as_list(), "history": json.dumps(self.history),
                     "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": None, "rng": _rng_state(), "train_config": json.dumps(self.config.to_dict()),
                     "init_fingerprint": self.init_fingerprint}
            self.last_checkpoint = save_checkpoint(self.run_dir, self.step, self.model, state, classes=self.classes,
                                                   keep=self.config.keep_checkpoints)
        if self.proc.distributed:
            dist.barrier()
        return self.last_checkpoint

    def micro_step(self, epoch: int, batch: int, clips: Tensor, labels: Tensor) -> tuple[Tensor, int]:
        """Forward and backward of one micro-batch (gradients accumulate); its sums, on the device
        (``[loss summed over its clips, correct predictions]``), and its clips."""
        config, proc, o = self.config, self.proc, self.config.optim
        micro = epoch * self.micro_per_epoch + batch  # global micro-batch index: seeds drop path
        torch.manual_seed(mix_seed(config.seed, 1, micro, proc.rank))
        clips, labels = clips.to(proc.device, non_blocking=True), labels.to(proc.device, non_blocking=True)
        last_micro = (batch + 1) % o.accum_steps == 0
        sync = contextlib.nullcontext() if (last_micro or not proc.distributed) else self.net.no_sync()
        with sync:
            with self.autocast:
                logits = self.net(clips)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=o.label_smoothing)
            (loss / o.accum_steps).backward()
        n = labels.numel()
        return torch.stack((loss.detach().double() * n, (logits.argmax(-1) == labels).sum().double())), n

    def grad_norm(self) -> float:
        """The gradients' total norm, after clipping them if the config says so (the norm before clipping)."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.config.optim.clip_grad is not None:
            return torch.nn.utils.clip_grad_norm_(params, self.config.optim.clip_grad).item()
        return torch.nn.utils.get_total_norm([p.grad for p in params]).item()

    def stop_non_finite(self, what: str, epoch: int, batch: int, before: Sums) -> None:
        """Save the state before this optimiser step (the last finite one) and raise :class:`NonFiniteError`."""
        where = f"at step {self.step + 1} (epoch {epoch + 1}, batch {batch + 1})"
        saved = self.checkpoint(epoch, batch, before)
        raise NonFiniteError(f"{what} {where}: stopping before the optimiser step. The state before it is "
                             f"checkpoint {saved}; a lower optim.lr, optim.clip_grad or another seed may avoid it")

    def optimiser_step(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def train_epoch(self, epoch: int, stop: _StopFlag) -> Sums:
        """One epoch (the rest of it, when resumed inside it); sets ``interrupted`` when it stops early."""
        config, proc, o = self.config, self.proc, self.config.optim
        batch0 = self.start_batch if epoch == self.start_epoch else 0
        running = DeviceSums(proc.device, self.start_sums if epoch == self.start_epoch else None)
        self.sampler.set_epoch(epoch, batch0)
        if hasattr(self.train_dataset, "set_epoch"):  # real video: new random clips every epoch
            self.train_dataset.set_epoch(epoch)
        self.model.train()
        bar = tqdm(total=self.micro_per_epoch, initial=batch0, desc=f"epoch {epoch + 1}/{o.epochs}",
                   disable=not (config.progress and proc.main), leave=True, unit="batch")
        self.epoch_start = time.perf_counter()
        batch = batch0
        step_sums = DeviceSums(proc.device)  # the current optimiser step's micro-batches
        before = running.copy()  # the sums at the last optimiser step, on the device
        for clips, labels in self.loader:
            if batch >= self.micro_per_epoch:
                break
            this, n = self.micro_step(epoch, batch, clips, labels)
            running.add(this, n)
            step_sums.add(this, n)
            batch += 1
            bar.update(1)
            if batch % o.accum_steps:
                continue
            # The non-finite guard reads the step's loss, summed over processes, and the gradient norm:
            # the loop's one wait for the device per optimiser step (the logged sums wait for log_every).
            (this_step,) = _summed(proc, step_sums.read())  # the same on every process
            if not math.isfinite(this_step.loss):
                self.stop_non_finite(f"the loss is {this_step.mean_loss}", epoch, batch - o.accum_steps, before.read())
            norm = self.grad_norm()  # the same on every process: DDP averaged the gradients
            if not math.isfinite(norm):
                self.stop_non_finite(f"the gradient norm is {norm}", epoch, batch - o.accum_steps, before.read())
            self.optimiser_step()
            before = running.copy()
            if config.log_every and self.step % config.log_every == 0:  # the loop waits for the device only here
                total, this_step = _summed(proc, running.read(), step_sums.read())
                rate = (batch - batch0) * o.batch_size * proc.world / max(time.perf_counter() - self.epoch_start, 1e-9)
                bar.set_postfix(loss=f"{total.mean_loss:.3f}", acc=f"{total.accuracy:.3f}", clips_s=f"{rate:.1f}")
                if proc.main:
                    append_metrics(self.run_dir / METRICS_FILE, {
                        "event": "step", "step": self.step, "epoch": epoch, "loss": this_step.mean_loss,
                        "acc": this_step.accuracy, "lr": self.scheduler.get_last_lr()[0], "clips_per_s": rate})
            step_sums.reset()
            stop_now = self.should_stop(stop)
            if batch >= self.micro_per_epoch:  # the epoch's end checkpoints below
                continue
            if stop_now or (config.checkpoint_every and self.step % config.checkpoint_every == 0):
                self.checkpoint(epoch, batch, running.read())
            if stop_now:
                self.interrupted = True
                break
        bar.close()
        return running.read()

    def end_epoch(self, epoch: int, running: Sums, stop: _StopFlag) -> bool:
        """The epoch's summary (training sums, the held-out scores when due), logged; a checkpoint
        every ``checkpoint_epochs`` epochs, at the last and when the run stops here. Whether it stops."""
        config, proc = self.config, self.proc
        (total,) = _summed(proc, running)
        summary: dict[str, Any] = {"event": "epoch", "epoch": epoch, "step": self.step,
                                   "train_loss": total.mean_loss, "train_acc": total.accuracy,
                                   "epoch_time": time.perf_counter() - self.epoch_start}
        last_epoch = epoch == config.optim.epochs - 1
        if self.val_dataset is not None and proc.main and (
                last_epoch or (config.eval_every and (epoch + 1) % config.eval_every == 0)):
            with self.autocast:
                scores = evaluate(self.model, self.val_dataset, batch_size=config.optim.batch_size,
                                  device=proc.device, progress=False, num_workers=self.workers)
            summary.update({"val_loss": scores["loss"], "val_acc": scores["top1"], "val_top5": scores["top5"]})
        self.history.append(summary)
        if proc.main:
            append_metrics(self.run_dir / METRICS_FILE, summary)
            log.info("%s", epoch_line(summary, config.optim.epochs))
        stopping = self.should_stop(stop)
        if last_epoch or stopping or (epoch + 1) % max(1, config.checkpoint_epochs) == 0:
            self.checkpoint(epoch + 1, 0, Sums())
        return stopping

    # -- after the loop -------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """A finished run writes the model and ``result.json``; the model comes back in eval mode."""
        self.loader = None  # its persistent workers end with the run
        if self.proc.main and not self.interrupted:
            write_model_folder(self.run_dir / "model", self.model, classes=self.classes)
            write_json_atomic(self.run_dir / "result.json", {"steps": self.step, "history": self.history})
        if self.proc.distributed:
            dist.barrier()
        self.model.eval()
        return TrainResult(self.run_dir, self.model, self.history, self.step, self.interrupted, self.last_checkpoint,
                           self.classes)


def fit(config: TrainConfig, *, train_dataset: Dataset | None = None, val_dataset: Dataset | None = None,
        resume: bool | str | Path = False, overwrite: bool = False) -> TrainResult:
    """Train ``config.model`` on ``config.data`` (or the datasets given) and return the result.

    ``resume=True`` continues from the newest checkpoint in ``config.output_dir`` that
    verifies (or starts afresh if there is none); a path resumes from that checkpoint folder.
    The rest of the run is then the same as if it had never stopped. Without ``resume``, a
    folder that holds another run is refused unless ``overwrite`` (which deletes that run's
    files). The folder is locked for the run: a second process is refused at once. Datasets
    yield ``(clip (C,T,H,W), label)``.
    """
    proc = _setup(config)
    with _run_folder(Path(config.output_dir), proc, resume=bool(resume), overwrite=overwrite), \
            onednn_matmul(config.cpu_matmul, proc.device):
        return _fit(config, proc, train_dataset, val_dataset, resume)


@contextlib.contextmanager
def _run_folder(run_dir: Path, proc: _Proc, *, resume: bool, overwrite: bool):
    """Rank 0 locks ``run_dir`` for the run and checks a fresh run may start there; every
    process learns whether it could (so none waits at a collective for a run that never starts)."""
    lock = RunLock(run_dir)
    error: RunFolderError | None = None
    if proc.main:
        try:
            lock.acquire()
            prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
        except RunFolderError as err:
            lock.release()
            error = err
    if _all_sum([float(error is not None)], proc)[0]:
        raise error or RunFolderError(f"{run_dir}: rank 0 could not start the run there (see its error)")
    try:
        yield
    finally:
        lock.release()


def _fit(config: TrainConfig, proc: _Proc, train_dataset: Dataset | None, val_dataset: Dataset | None,
         resume: bool | str | Path) -> TrainResult:
    if train_dataset is None:
        train_dataset, built_val = build_datasets(config)
        val_dataset = built_val if val_dataset is None else val_dataset
    config = _resolve(config, train_dataset)
    run = _Run(config, proc, train_dataset, val_dataset)
    run.resume_from(resume)
    run.prepare()
    with _StopFlag() as stop:
        for epoch in range(run.start_epoch, config.optim.epochs):
            running = run.train_epoch(epoch, stop)
            if run.interrupted:
                break
            if run.end_epoch(epoch, running, stop) and epoch < config.optim.epochs - 1:
                run.interrupted = True
                break
    return run.finish()


def _restore(source: Path, saved_model: nn.Module, state: dict[str, Any], config: TrainConfig, model: nn.Module,
             optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[int, int, int, list[float], list[dict[str, Any]]]:
    saved, current = _trajectory(json.loads(state["train_config"])), _trajectory(config.to_dict())
    was, now = state.get("init_fingerprint", ""), weights_fingerprint(config.init) if config.init else ""
    if was.startswith("sha256:") and now.startswith("sha256:"):  # the start weights by content, not by place:
        saved["init"], current["init"] = was, now  # moved ones (a moved checkout) resume, others do not
    diff = describe_mismatch(saved, current)
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
    log.info("resumed from %s at step %d (epoch %d, batch %d)", source, state["step"], state["epoch"] + 1,
             state["batch"])
    return state["step"], state["epoch"], state["batch"], list(state["sums"]), json.loads(state["history"])
