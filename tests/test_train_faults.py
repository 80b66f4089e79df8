"""The training engine under injected faults: nothing lost, nothing silently wrong.

Each test injects one fault and checks what the user is told and what is left on disk: bit
rot in a checkpoint, a checkpoint that does not load back, a non-finite loss or weights, a
fresh run over another, two processes on one folder (one killed with SIGKILL), a torn or
interrupted metrics.jsonl, and a full disk. Where a process must die, it dies in a subprocess.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

import tsf
import tsf.train.engine as engine
from tsf.__main__ import main
from tsf.train import NonFiniteError, fit
from tsf.train.checkpoint import list_checkpoints, load_checkpoint
from tsf.train.rundir import RunFolderError, RunLock
from tsf.train.sampling import EpochSampler
from tsf.weights import CheckpointError
from tsf.weights.io import NoSpaceError

from .helpers import ROOT, wait_for
from .test_train import losses, smoke, weights
from .toy import ColourClips


def data(**kwargs):
    return dict(train_dataset=ColourClips(64, **kwargs), val_dataset=None)


def rot(path: Path, count: int = 4000) -> None:
    """Bit rot that keeps a safetensors file readable: 0xff over the start of its tensor data, size unchanged."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")  # after the length-prefixed JSON header
    count = min(count, len(raw) - start)
    raw[start:start + count] = b"\xff" * count
    path.write_bytes(bytes(raw))


# -- checkpoints --------------------------------------------------------------------------------

def test_bit_rot_is_named_and_resume_falls_back_to_the_newest_checkpoint_that_verifies(tmp_path, caplog):
    every = {"checkpoint_every": 1}
    full = fit(smoke(tmp_path / "full", **every), **data())
    fit(smoke(tmp_path / "part", **every, stop_after_steps=3), **data())
    good, rotten = list_checkpoints(tmp_path / "part")
    rot(rotten / "model.safetensors")
    for reader in (load_checkpoint, tsf.load_pretrained):  # resume, eval and predict all refuse it
        with pytest.raises(CheckpointError, match=f"{rotten}: model.safetensors does not match the SHA-256"):
            reader(rotten)
    rest = fit(smoke(tmp_path / "part", **every), resume=True, **data())
    assert f"skipping a damaged checkpoint: {rotten}: model.safetensors does not match" in caplog.text
    assert f"resuming from {good}, the newest checkpoint that verifies (1 newer one damaged)" in caplog.text
    assert f"{rotten}: model.safetensors does not match the SHA-256 recorded when it was written (damaged on disk " \
           "since); writing it again" in caplog.text  # when the run reached step 3 again
    assert rest.steps == full.steps
    for key, value in weights(full.model).items():  # resumed from step 2: still exactly the uninterrupted run
        assert torch.equal(value, weights(rest.model)[key]), key
    for path in list_checkpoints(tmp_path / "part"):
        load_checkpoint(path)
    for path in list_checkpoints(tmp_path / "part"):
        rot(path / "model.safetensors")
    with pytest.raises(CheckpointError, match=f"no checkpoint of {tmp_path / 'part'} verifies"):
        fit(smoke(tmp_path / "part", **every), resume=True, **data())


def test_a_checkpoint_that_does_not_load_back_never_costs_the_ones_that_do(tmp_path, monkeypatch):
    real, calls = engine._rng_state, []

    def poisoned():  # from the third checkpoint on, a value torch.load(weights_only=True) refuses
        state = real()
        calls.append(1)
        if len(calls) >= 3:
            state["python"] = Fraction(1, 3)
        return state

    monkeypatch.setattr(engine, "_rng_state", poisoned)
    with pytest.raises(CheckpointError, match=r"step-00000003 was written but does not load back, so it is removed"):
        fit(smoke(tmp_path, checkpoint_every=1), **data())
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001", "step-00000002"]
    monkeypatch.setattr(engine, "_rng_state", real)
    assert fit(smoke(tmp_path, checkpoint_every=1), resume=True, **data()).steps == 8


class Overflowing(ColourClips):
    """ColourClips whose sample ``bad`` is finite but so large that the forward pass overflows."""

    def __init__(self, num_samples: int, bad: int) -> None:
        super().__init__(num_samples)
        self.bad = bad

    def __getitem__(self, i: int):
        clip, label = super().__getitem__(i)
        return (clip * 1e30 if i == self.bad else clip), label


def test_a_non_finite_loss_stops_the_run_with_a_checkpoint_of_the_last_finite_state(tmp_path):
    config = smoke(tmp_path / "run")
    step = 2  # optimiser steps taken before the bad clip's batch
    bad = [i for i, _ in EpochSampler(64, config.optim.batch_size, config.seed)][step * config.optim.batch_size]
    with pytest.raises(NonFiniteError, match=rf"the loss is nan at step {step + 1} \(epoch 1, batch {step + 1}\): "
                                             r"stopping before the optimiser step") as err:
        fit(config, train_dataset=Overflowing(64, bad), val_dataset=None)
    saved = list_checkpoints(tmp_path / "run")[-1]
    assert saved.name == f"step-{step:08d}" and str(saved) in str(err.value)
    model, state = load_checkpoint(saved)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the state before the bad batch, exactly: resumed on clean data, it is the clean run
    clean = fit(smoke(tmp_path / "clean"), **data())
    resumed = fit(config, resume=True, **data())
    for key, value in weights(clean.model).items():
        assert torch.equal(value, weights(resumed.model)[key]), key


def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    real = engine.build_optimizer

    def breaking(model, config):  # the third optimiser step leaves an infinite weight
        optimizer, count = real(model, config), []

        def after_step(*_):
            count.append(1)
            if len(count) == 3:
                with torch.no_grad():
                    next(model.parameters()).view(-1)[0] = float("inf")

        optimizer.register_step_post_hook(after_step)
        return optimizer

    monkeypatch.setattr(engine, "build_optimizer", breaking)
    with pytest.raises(NonFiniteError, match=r"the weights are not finite at step 3; not saving them\. The newest "
                                             rf"checkpoint, {tmp_path}/checkpoints/step-00000002, holds the last"):
        fit(smoke(tmp_path, checkpoint_every=1), **data())
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001", "step-00000002"]


def test_a_full_disk_while_checkpointing_names_the_file_and_keeps_the_previous(tmp_path, monkeypatch, capsys):
    real, calls = torch.save, []

    def filling(obj, handle, *args, **kwargs):  # the third trainer state meets a full disk half-way
        calls.append(1)
        if len(calls) == 3:
            handle.write(b"half a trainer state")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", filling)
    with pytest.raises(NoSpaceError) as err:
        fit(smoke(tmp_path, checkpoint_every=1), **data())
    ckpts = tmp_path / "checkpoints"
    assert str(err.value) == (f"no space left on device while writing {ckpts}/step-00000003/trainer_state.pt; "
                              f"the previous checkpoint {ckpts}/step-00000002 is intact")
    assert err.value.errno == errno.ENOSPC
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-00000001", "step-00000002"]  # nothing half-written
    load_checkpoint(ckpts / "step-00000002")
    monkeypatch.setattr(torch, "save", real)
    real_file, files = tsf.weights.io.save_file, []

    def filling_weights(*args, **kwargs):  # safetensors' own writer words it its way
        files.append(1)
        if len(files) == 3:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real_file(*args, **kwargs)

    monkeypatch.setattr(tsf.weights.io, "save_file", filling_weights)
    cli = tmp_path / "cli" / "checkpoints"
    code = main(["train", "--preset", "smoke", "--output", str(cli.parent), "--set", "progress=false",
                 "--set", "checkpoint_every=1"])
    assert code == 1
    assert capsys.readouterr().err.strip() == (
        f"error: no space left on device while writing {cli}/step-00000003/model.safetensors; "
        f"the previous checkpoint {cli}/step-00000002 is intact")


# -- the run folder -----------------------------------------------------------------------------

def test_a_fresh_run_refuses_a_folder_that_holds_another_run_unless_overwrite(tmp_path, capsys):
    fit(smoke(tmp_path, stop_after_steps=2), **data())

    def files() -> dict[str, bytes]:
        return {str(p.relative_to(tmp_path)): p.read_bytes() for p in tmp_path.rglob("*")
                if p.is_file() and p.name != "run.lock"}

    before = files()
    with pytest.raises(RunFolderError, match=rf"{tmp_path} holds another run \(config.json, env.json, "
                                             r"metrics.jsonl, checkpoints\); continue it with --resume, or"):
        fit(smoke(tmp_path, **{"optim.lr": 0.01}), **data())
    assert files() == before
    args = ["train", "--preset", "smoke", "--output", str(tmp_path), "--set", "progress=false",
            "--set", "optim.lr=0.01", "--set", "checkpoint_every=3"]
    assert main(args) == 2
    assert f"error: {tmp_path} holds another run" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["event"] == "step"]
    assert steps == list(range(1, 9))  # the new run's log only
    for path in list_checkpoints(tmp_path):  # only the new run's checkpoints, and they resume
        assert json.loads(load_checkpoint(path)[1]["train_config"])["optim"]["lr"] == 0.01
    assert main(args + ["--resume"]) == 0


def test_a_second_process_is_refused_while_the_folder_is_locked(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunFolderError, match=rf"{tmp_path} is in use by another run \(pid {os.getpid()} on "
                                                 rf"host {socket.gethostname()}, since "):
            fit(smoke(tmp_path), **data())
    assert not (tmp_path / "config.json").exists()  # refused before anything was written
    assert fit(smoke(tmp_path), **data()).steps == 8  # released


LONG_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.toy import ColourClips
    from tsf.train import apply_overrides, fit, train_preset
    cfg = apply_overrides(train_preset("smoke"), {{"output_dir": {out!r}, "progress": False, "optim.epochs": 400,
                                                   "checkpoint_every": 2, "data.num_workers": 2}})
    fit(cfg, train_dataset=ColourClips(64), val_dataset=None)
""")


@pytest.mark.slow  # a subprocess trains until killed
def test_the_lock_names_its_holder_and_dies_with_it_even_under_sigkill(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", LONG_RUN.format(root=str(ROOT), out=str(tmp_path))],
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(list_checkpoints(tmp_path)) >= 2, proc, 120, "two checkpoints")
    long = smoke(tmp_path, **{"optim.epochs": 400})
    with pytest.raises(RunFolderError, match=rf"in use by another run \(pid {proc.pid} on host "
                                             rf"{socket.gethostname()}"):
        fit(long, resume=True, **data())
    proc.kill()  # SIGKILL: no handler runs; its DataLoader workers outlive it for a moment
    proc.communicate(timeout=60)
    result = fit(smoke(tmp_path, **{"optim.epochs": 400, "stop_after_steps": 1}), resume=True, **data())
    assert result.interrupted and result.steps >= 2  # the lock was free at once; the run continued


# -- metrics.jsonl ------------------------------------------------------------------------------

def test_a_torn_last_metrics_line_is_dropped_with_a_warning_and_the_run_resumes(tmp_path, caplog):
    full = tmp_path / "full"
    fit(smoke(full), **data())
    part = tmp_path / "part"
    fit(smoke(part, stop_after_steps=3), **data())
    metrics = part / "metrics.jsonl"
    with open(metrics, "a") as handle:
        handle.write('{"event": "step", "step": 4, "lo')  # what a power loss mid-append leaves
    fit(smoke(part), resume=True, **data())
    assert f"{metrics}: dropping its torn last line" in caplog.text
    assert losses(part) == losses(full)


INTERRUPTED_REWRITE = textwrap.dedent("""
    import builtins, io, os, sys
    sys.path.insert(0, {root!r})
    from tests.toy import ColourClips
    from tsf.train import apply_overrides, fit, train_preset

    real_open = builtins.open

    class Dying:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.handle.close()
        def __getattr__(self, name):
            return getattr(self.handle, name)
        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            os._exit(9)  # killed half-way through rewriting the log

    def dying_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        return Dying(handle) if "w" in mode and "metrics.jsonl" in os.fspath(file) else handle

    builtins.open = io.open = dying_open
    cfg = apply_overrides(train_preset("smoke"), {{"output_dir": {out!r}, "progress": False}})
    fit(cfg, train_dataset=ColourClips(64), val_dataset=None, resume=True)
""")


@pytest.mark.slow  # a subprocess is killed
def test_a_kill_while_the_log_is_rewritten_on_resume_loses_no_history(tmp_path):
    fit(smoke(tmp_path, stop_after_steps=3), **data())
    metrics = tmp_path / "metrics.jsonl"
    history = metrics.read_text()
    with open(metrics, "a") as handle:  # a line past the checkpoint: the resume must rewrite the file
        handle.write(json.dumps({"event": "step", "step": 4, "loss": 1.0}) + "\n")
    script = INTERRUPTED_REWRITE.format(root=str(ROOT), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert metrics.read_text().startswith(history)  # the old file, whole, until the new one replaces it


# -- decoder crashes while training -------------------------------------------------------------

DECODER_RUN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    from tests.helpers import flaky_decoder
    from tsf.data import ClipSampling, VideoDataset, VideoError
    from tsf.train import apply_overrides, fit, train_preset
    policy = sys.argv[1]
    names = ["crash" if i == 5 else "hang" if i == 9 and policy == "skip" else f"v{{i}}" for i in range(32)]
    dataset = VideoDataset([(f"/videos/{{n}}.mp4", i % 2) for i, n in enumerate(names)], ["a", "b"],
                           sampling=ClipSampling(num_frames=4), crop_size=16, scale=(16, 20), on_error=policy,
                           decoder=flaky_decoder, timeout=2)
    cfg = apply_overrides(train_preset("smoke"), {{"output_dir": {out!r}, "progress": False, "data.num_workers": 2,
                                                   "optim.batch_size": 8}})
    try:
        result = fit(cfg, train_dataset=dataset, val_dataset=None)
    except VideoError as err:
        print(json.dumps({{"path": err.path, "reason": err.reason}}))
        sys.exit(2)
    print(json.dumps({{"steps": result.steps, "bad": dataset.bad_indices}}))
""")


@pytest.mark.slow  # subprocesses whose decoder segfaults and hangs inside DataLoader workers
@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_decoder_crash_or_hang_in_a_dataloader_worker(tmp_path, policy):
    script = DECODER_RUN.format(root=str(ROOT), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script, policy], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    sig = int(signal.SIGSEGV)
    if policy == "skip":  # counted and skipped like any bad file; the run goes on
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1]) == {"steps": 8, "bad": [5, 9]}
        assert f"skipping /videos/crash.mp4: decoder crashed (signal {sig})" in proc.stderr
        assert "skipping /videos/hang.mp4: decoder hung (no answer in 2 s)" in proc.stderr
    else:  # the run stops with an error naming the file
        assert proc.returncode == 2, proc.stderr
        assert json.loads(proc.stdout.splitlines()[-1]) == {"path": "/videos/crash.mp4",
                                                             "reason": f"decoder crashed (signal {sig})"}
