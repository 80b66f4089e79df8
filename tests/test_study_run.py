"""``python -m tsf bench study-run``: a study run timed by part, its clock, and the committed result."""

from __future__ import annotations

import csv
import shlex

import pytest

from tsf.__main__ import canonical_argv
from tsf.bench.timing import PartClock
from tsf.data.synthetic import SyntheticVideos
from tsf.study import runtime
from tsf.study.presets import study_preset
from tsf.study.runs import Runs
from tsf.train import engine

from .helpers import ROOT, doc_block


def test_part_clock_counts_each_second_once_in_the_innermost_part(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("tsf.bench.timing.time.perf_counter", lambda: now[0])
    clock = PartClock()

    def tick(seconds):
        now[0] += seconds

    inner = clock.wrap("inner", lambda: tick(2.0))

    def outer_body():
        tick(1.0)
        inner()
        inner()
        tick(0.5)

    outer = clock.wrap("outer", outer_body)
    outer()
    assert clock.seconds == {"outer": 1.5, "inner": 4.0}
    assert clock.calls == {"outer": 1, "inner": 2}
    assert now[0] == sum(clock.seconds.values())


def test_part_clock_puts_every_target_back_even_when_the_block_fails():
    class Owner:
        def work(self):
            return 7

    original = Owner.__dict__["work"]
    clock = PartClock()
    with pytest.raises(RuntimeError):
        with clock.patched([(Owner, "work", "working")]):
            assert Owner().work() == 7
            raise RuntimeError("stop")
    assert Owner.__dict__["work"] is original and clock.calls["working"] == 1
    with pytest.raises(KeyError):  # a target that was renamed is an error, not a part that reads 0
        with clock.patched([(Owner, "renamed", "working")]):
            pass


def test_every_part_reads_a_function_the_study_run_calls():
    owners = {(SyntheticVideos, "sample"), (engine._Run, "micro_step"), (engine, "evaluate")}
    targets = runtime._targets()
    assert owners <= {(owner, name) for owner, name, _ in targets}
    assert {part for _, _, part in targets} == set(runtime.PARTS) - {"the rest"}
    for owner, name, _ in targets:
        assert callable(owner.__dict__[name])


def test_a_timed_smoke_run_is_the_study_run_and_its_parts_add_up(tmp_path):
    study = study_preset("smoke")
    result = runtime.time_study_run(study, repeats=2, threads=1)
    parts = {p["part"]: p for p in result["parts"]}
    assert list(parts) == list(runtime.PARTS)
    assert sum(p["seconds"] for p in parts.values()) == pytest.approx(result["run_seconds"], abs=0.01)
    assert all(p["seconds"] > 0 for name, p in parts.items() if name != "the rest")
    config = study.train_config("motion", "divided", 0)
    d, steps = config.data, result["steps"]
    # each clip drawn once per dataset object: the training clips once, the held-out ones for the
    # run (its stretches share one dataset) and once more for the held-out scores
    assert parts["making clips"]["calls"] == d.train_samples + 2 * d.val_samples
    assert parts["training steps"]["calls"] == 3 * steps  # forward+backward, norm and clipping, optimiser
    points = steps // study.curve_every + 1  # the curve's points, the start's too
    assert parts["evaluation"]["calls"] == points + 2  # the curve, the engine's last pass, the held-out scores
    # the timed run is the study's run: the same scores as the run cache's own
    record = Runs(tmp_path, progress=False, curve_every=study.curve_every).get({"run": config})["run"]
    assert result["scores"] == {k: record.scores[k] for k in ("val_acc", "pair_acc", "train_acc")}
    assert result["bare_step_ms"]["repeats"] == 2 and result["bare_step_clips_per_s"] > 0


def test_the_verdicts_fail_a_part_over_a_tenth_of_the_run():
    def result(clips, evaluation):
        return {"parts": [{"part": "making clips", "share": clips}, {"part": "evaluation", "share": evaluation}]}

    assert [v["verdict"] for v in runtime.verdicts(result(0.05, 0.10))] == ["yes", "yes"]
    assert [v["verdict"] for v in runtime.verdicts(result(0.11, 0.02))] == ["no", "yes"]


def test_performance_page_shows_the_committed_study_run(committed):
    result = committed("study_run_cpu")
    assert canonical_argv(shlex.split(result["command"])[3:])[:2] == ["bench", "study-run"]
    assert result["preset"] == "cpu" and result["threads"] == 1 and result["code"]["modified"] is False
    assert doc_block("docs/performance.md", "bench-study-run") == runtime.format_study_run(result)
    # the timed run is the committed study's run of that name, score for score
    with open(ROOT / "figures" / "cpu" / "table1_runs.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["run"] == result["run"])
    assert {k: float(row[k]) for k in result["scores"]} == result["scores"]
    # the prose's numbers: the in-run step against the bare one, the share of the rest, the rate ratio
    parts = {p["part"]: p for p in result["parts"]}
    text = (ROOT / "docs" / "performance.md").read_text()
    in_run_ms = 1e3 * parts["training steps"]["seconds"] / result["steps"]
    assert f"({in_run_ms:.0f} against {result['bare_step_ms']['median']:.0f} ms)" in text
    assert f"What is left, {parts['the rest']['share']:.0%}," in text
    assert f"makes {result['end_to_end_clips_per_s'] / result['bare_step_clips_per_s']:.0%} of the bare step's" in text

