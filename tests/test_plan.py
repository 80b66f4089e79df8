"""The study's presets for a GPU and their arithmetic: ``python -m tsf reproduce --preset gpu --dry-run``."""

from __future__ import annotations

import dataclasses
import json
import sys

import pytest
import torch

pytest.importorskip("pandas")  # the study's optional dependencies (the notebooks extra)

from tsf.__main__ import main  # noqa: E402
from tsf.config import preset  # noqa: E402
from tsf.cost import count_macs  # noqa: E402
from tsf.reproduce import NOTEBOOK_DIR, NOTEBOOKS  # noqa: E402
from tsf.study import plan  # noqa: E402
from tsf.study.presets import STUDY_PRESETS  # noqa: E402
from tsf.study.runs import config_key  # noqa: E402


def test_dry_run_prints_each_notebook_its_flops_and_time(capsys):
    assert main(["reproduce", "--preset", "gpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("preset gpu: 'small' model on 4 frames of 32 px, 2560 clips x 7 epochs")
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in (*NOTEBOOKS, "all")}
    assert list(rows) == [*NOTEBOOKS, "all"]
    notebooks = plan.plan(STUDY_PRESETS["gpu"])
    total = sum(nb.seconds for nb in notebooks)
    assert rows["all"][-1] == plan.format_minutes(total) and rows["03_cost"][1] == "0"
    assert float(rows["all"][-2]) == pytest.approx(sum(nb.flops for nb in notebooks) / 1e15, abs=0.005)
    assert "one NVIDIA H200: 396.0 TFLOP/s" in out and "4 run(s) at a time" in out


def test_the_gpu_preset_fits_eight_minutes_on_one_h200_and_gpu_full_does_not():
    assert plan.total_seconds(STUDY_PRESETS["gpu"]) <= 8 * 60
    assert plan.total_seconds(STUDY_PRESETS["gpu-full"]) > 60 * 60  # hours: its estimate is in the README


def test_the_gpu_preset_is_larger_than_cpu_in_clips_epochs_and_seeds():
    cpu, gpu, full = STUDY_PRESETS["cpu"], STUDY_PRESETS["gpu"], STUDY_PRESETS["gpu-full"]
    assert gpu.train_samples > cpu.train_samples and gpu.val_samples > cpu.val_samples
    assert gpu.epochs > cpu.epochs and gpu.motion_epochs > cpu.motion_epochs
    assert len(gpu.seeds) > len(cpu.seeds) and len(gpu.ablation_seeds) > len(cpu.ablation_seeds)
    assert (gpu.device, full.device, cpu.device, STUDY_PRESETS["smoke"].device) == ("cuda", "cuda", "cpu", "cpu")
    assert (full.model, full.num_frames, full.train_samples, full.epochs) == ("medium", 16, 16384, 20)


def test_the_new_preset_fields_leave_every_cpu_and_smoke_run_as_it_was():
    """Logging, checkpoint spacing and the GPU's side-by-side runs are not part of a run's key, and the
    cpu and smoke presets keep the engine's defaults (a step logged each step, a checkpoint each epoch)."""
    for name in ("cpu", "smoke"):
        study = STUDY_PRESETS[name]
        assert (study.log_every, study.checkpoint_epochs, study.gpu_runs) == (1, 1, 1)
        gpu_like = dataclasses.replace(study, device="cuda", gpu_runs=4, log_every=20, checkpoint_epochs=4)
        for task in ("appearance", "motion", "long_range"):
            assert config_key(gpu_like.train_config(task, "divided", 0)) == config_key(study.train_config(task, "divided", 0))


def test_a_runs_arithmetic():
    study = STUDY_PRESETS["gpu"]
    config = study.train_config("motion", "divided", 0)
    cost = plan.run_cost("motion", config, curve_every=160)
    steps = 2560 // 32 * 14
    assert (cost.steps, cost.train_clips) == (steps, steps * 32)
    points = -(-steps // 160) + 1  # every 160 steps and the start
    assert cost.stretches == points - 1 and cost.eval_clips == 2 * 1024 + points * 256
    macs = count_macs(preset("small", attention="divided", num_frames=4))
    assert cost.flops == 2 * macs * (3 * steps * 32 + cost.eval_clips)
    assert plan.run_cost("appearance", study.train_config("appearance", "space", 0), 0).stretches == 1


def test_the_plan_asks_for_what_the_notebooks_call_and_counts_each_run_once():
    for notebook, calls in plan.NOTEBOOK_RUNS.items():
        code = "\n".join("".join(c["source"]) for c in json.loads((NOTEBOOK_DIR / f"{notebook}.ipynb").read_text())[
            "cells"] if c["cell_type"] == "code")
        for call, _ in calls:
            assert call.split(".")[-1] + "(" in code and call.split(".")[0] in code, (notebook, call)
    assert list(plan.NOTEBOOK_RUNS) == list(NOTEBOOKS)
    notebooks = plan.plan(STUDY_PRESETS["smoke"])
    names = [r.name for nb in notebooks for r in nb.runs]
    assert len(names) == len(set(names))
    assert names[0] == "image-pretrain" and "motion-divided-s0" in names
    assert notebooks[-1].runs == []  # the attention notebook's models are Table 1's


def test_a_gpu_preset_without_cuda_fails_at_once(monkeypatch, capsys):
    """Before anything else: not even papermill is imported (it is blocked here)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "papermill", None)
    for command in (["reproduce", "--preset", "gpu"], ["calibrate", "--preset", "gpu-full"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "sized for a CUDA GPU and none is visible here" in err and "--dry-run" in err
    assert main(["reproduce", "--preset", "gpu-small"]) == 2
    assert "unknown study preset 'gpu-small'" in capsys.readouterr().err


def test_make_reproduce_with_another_python_builds_no_venv_and_imports_the_tree_by_absolute_path():
    import subprocess

    from tsf.reproduce import ROOT

    def recipe(*args: str) -> str:
        return subprocess.run(["make", "--no-print-directory", "-s", "-n", *args], capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout

    gpu = recipe("reproduce", "PRESET=gpu", "PY=python3")
    assert "venv" not in gpu and "pip install" not in gpu
    assert gpu.strip().startswith(f'PYTHONPATH="{ROOT}:') and gpu.strip().endswith("python3 -m tsf reproduce --preset gpu")
    assert recipe("reproduce").strip().endswith(".venv/bin/python -m tsf reproduce --preset cpu")
    check = recipe("gpu-check", "CHECK_ARGS=--dry-run")
    assert f'PYTHONPATH="{ROOT}:' in check and "python3 tools/gpu_check.py --out gpu-check --dry-run" in check


def test_the_notebooks_kernel_gets_the_repository_on_an_absolute_pythonpath(tmp_path, monkeypatch):
    import os

    from tsf.reproduce import ROOT, kernel_pythonpath

    monkeypatch.chdir(tmp_path)
    path = kernel_pythonpath(os.pathsep.join(["site", "/opt/x", "", str(ROOT)]))
    assert path.split(os.pathsep) == [str(ROOT), str(tmp_path / "site"), "/opt/x"]
    assert kernel_pythonpath("") == str(ROOT)


def test_the_study_page_states_the_estimates_the_plan_gives():
    """docs/study.md's table of estimates is tsf.study.plan.format_estimates(), one row per preset."""
    from .helpers import doc_block

    table = plan.format_estimates()
    assert doc_block("docs/study.md", "plan-estimates") == table
    assert [line.split()[0] for line in table.splitlines()[2:]] == list(STUDY_PRESETS)


def test_the_cpu_assumption_is_the_rate_the_committed_study_runs_reached():
    """CPU2's rate is two side-by-side runs' training FLOP/s as figures/cpu/table1_runs.csv records them
    (within 15%): regenerate the figures on another machine and the estimate's assumption must follow."""
    import statistics

    import pandas as pd

    from .helpers import ROOT

    runs = pd.read_csv(ROOT / "figures" / "cpu" / "table1_runs.csv")
    study = STUDY_PRESETS["cpu"]
    rates = [6 * count_macs(study.train_config(r.task, r.scheme, r.seed).model) * study.batch_size * r.steps
             / r.train_seconds for r in runs.itertuples()]
    assert plan.CPU2.flops == pytest.approx(study.workers * statistics.median(rates), rel=0.15)
