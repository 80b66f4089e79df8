"""``make gpu-check`` (tools/gpu_check.py): its runner with stand-in stages, and its dry run on the CPU."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest

from .helpers import ROOT

spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def _ok(ctx):
    print("a stage's output goes to log.txt")
    return {"value": 1, "limit": ctx["limit"]}


def _fails(ctx):
    raise ValueError("a planted failure")


def _hangs(ctx):
    time.sleep(60)
    return {}


def _bench_file(ctx):
    (gpu_check.Path(ctx["out"]) / "bench_gpu.json").write_text(json.dumps({"cases": []}))
    return {"verdicts": []}


def test_each_stage_runs_apart_under_its_limit_and_the_deadline(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "STAGES", (
        ("env.json", _ok, 30, 30),
        ("correctness.json", _fails, 30, 30),
        ("bench_gpu.json", _bench_file, 30, 30),
        ("train.json", _hangs, 30, 2),  # killed at 2 s in the dry run
        ("extra.json", _ok, 1e9, 1e9),  # what is left of the deadline
    ))
    monkeypatch.setattr(gpu_check, "SHORTEST", 1.0)
    (tmp_path / "stale.json").write_text("{}")
    began = time.perf_counter()
    summary = gpu_check.run_check(tmp_path, dry_run=True, deadline=30)
    assert time.perf_counter() - began < 25
    states = {name: s["status"] for name, s in summary["stages"].items()}
    assert states == {"env.json": "ok", "correctness.json": "error", "bench_gpu.json": "ok", "train.json": "timeout",
                      "extra.json": "ok"}
    assert json.loads((tmp_path / "env.json").read_text())["value"] == 1
    assert "a planted failure" in json.loads((tmp_path / "correctness.json").read_text())["error"]
    assert json.loads((tmp_path / "train.json").read_text())["limit_s"] == 2
    extra = json.loads((tmp_path / "extra.json").read_text())
    assert extra["limit"] < 30 - 2  # the deadline, less what the stages before it took
    assert json.loads((tmp_path / "bench_gpu.json").read_text()) == {"cases": []}  # the stage's own file
    log = (tmp_path / "log.txt").read_text()
    assert "a stage's output goes to log.txt" in log and "ValueError: a planted failure" in log
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["bench_gpu.json", "check.json", "correctness.json", "env.json", "extra.json", "log.txt",
                     "train.json"]  # seven small files, none left from before
    assert json.loads((tmp_path / "check.json").read_text())["stages"]["train.json"]["status"] == "timeout"


def test_no_environment_stops_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "STAGES", (("env.json", _fails, 30, 30), ("correctness.json", _ok, 30, 30)))
    summary = gpu_check.run_check(tmp_path, dry_run=True, deadline=30)
    assert list(summary["stages"]) == ["env.json"] and "stage 1 failed" in summary["stopped"]


def test_the_wheels_list_pins_constraints_versions_and_the_check_reads_it(tmp_path):
    constraints = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            constraints[name.strip().lower().replace("_", "-")] = version.strip()
    listed = gpu_check.wheels_status(folder=tmp_path)
    assert {"papermill", "nbclient", "nbformat", "jupyter-client", "ipykernel", "ipywidgets", "plotly",
            "anywidget"} <= set(listed["packages"])
    for name, row in listed["packages"].items():
        assert constraints[name] == row["wanted"], name
        assert row["wheel"] is False  # none in an empty folder
    (tmp_path / "papermill-2.7.0-py3-none-any.whl").write_text("")
    assert gpu_check.wheels_status(folder=tmp_path)["packages"]["papermill"]["wheel"] is True


@pytest.mark.slow  # five stage processes: half a minute to a minute on the shared 2-core machine
def test_make_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    proc = subprocess.run(["make", "--no-print-directory", "gpu-check", f"GPU_PY={sys.executable}",
                           f"CHECK_OUT={out}", "CHECK_ARGS=--dry-run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "check.json").read_text())
    assert summary["dry_run"] and all(s["status"] == "ok" for s in summary["stages"].values())
    assert len(list(out.iterdir())) == 7
    correctness = json.loads((out / "correctness.json").read_text())
    assert correctness["all_pass"] and set(correctness["schemes"]) == {"space", "joint", "divided", "local_global",
                                                                       "axial"}
    bench = json.loads((out / "bench_gpu.json").read_text())
    assert [c["case"]["name"] for c in bench["cases"]] == ["tiny-check", "tiny-check-extra"]
    assert all(c["matmul"]["n"] == 256 for c in bench["cases"])  # the dry run's small MFU denominator
    train = json.loads((out / "train.json").read_text())
    assert train["resume"]["bit_identical"] and train["clips_per_s"]["workers"]["workers"] == 1
    assert json.loads((out / "extra.json").read_text())["joint_long_clip_train"]["trains"]
    assert "divided" in proc.stdout and "files in" in proc.stdout.splitlines()[-1]
