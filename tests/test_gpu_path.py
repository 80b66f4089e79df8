"""The GPU path, tested on a CPU: device placement under torchrun, running sums kept on the device,
DataLoader workers, checkpoint spacing and the devices of the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from tsf.train import TrainConfig, apply_overrides, evaluate, fit, train_preset
from tsf.train import engine

from .toy import ColourClips

BEFORE = json.loads((Path(__file__).parent / "metrics_before_device_sums.json").read_text())


def smoke(tmp: Path, **overrides) -> TrainConfig:
    return apply_overrides(train_preset("smoke"), {"output_dir": str(tmp), "progress": False, **overrides})


def records(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k not in ("clips_per_s", "epoch_time")} for line in lines]


# -- torchrun on GPUs -------------------------------------------------------------------------

@pytest.fixture
def fake_gpus(monkeypatch):
    """``torchrun`` environment and a machine with ``gpus`` CUDA devices, seen through mocks; the calls made."""
    calls: list[tuple] = []

    def make(gpus: int, *, world: int, local_rank: int) -> list[tuple]:
        monkeypatch.setenv("WORLD_SIZE", str(world))
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(world))
        monkeypatch.setenv("LOCAL_RANK", str(local_rank))
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
        monkeypatch.setattr(dist, "is_initialized", lambda: False)
        monkeypatch.setattr(dist, "init_process_group",
                            lambda backend, device_id=None: calls.append(("init", backend, device_id)))
        monkeypatch.setattr(dist, "get_rank", lambda: local_rank)
        return calls

    return make


def test_ddp_sets_the_device_before_nccl_starts_and_names_it(fake_gpus):
    calls = fake_gpus(2, world=2, local_rank=1)
    proc = engine._setup(TrainConfig(device="cuda"))
    gpu = torch.device("cuda", 1)
    assert calls == [("set_device", gpu), ("init", "nccl", gpu)]
    assert (proc.device, proc.rank, proc.world, proc.distributed) == (gpu, 1, 2, True)


def test_more_processes_than_gpus_is_a_clear_error_before_nccl(fake_gpus):
    calls = fake_gpus(1, world=4, local_rank=0)
    with pytest.raises(ValueError, match=r"4 training processes on this machine but 1 GPU\(s\).*nproc_per_node=1"):
        engine._setup(TrainConfig(device="auto"))
    assert calls == []  # neither the device nor NCCL was touched
