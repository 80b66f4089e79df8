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


# -- running sums on the device -----------------------------------------------------------------

RUNS = {"plain": {"optim.epochs": 2},
        "accum": {"optim.epochs": 2, "optim.accum_steps": 2, "optim.batch_size": 8, "model.drop_path_rate": 0.2}}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_device_sums_log_what_host_sums_logged(tmp_path, name):
    """Every step and epoch record, and evaluate's scores, equal those the engine wrote when it
    added ``.item()`` values on the host (recorded before the change, in metrics_before_device_sums.json)."""
    result = fit(smoke(tmp_path, **RUNS[name]), train_dataset=ColourClips(64), val_dataset=ColourClips(32, 1))
    got, want = records(tmp_path), BEFORE[name]
    assert [r["event"] for r in got] == [r["event"] for r in want]
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key, value in w.items():
            expected = value if isinstance(value, str) else pytest.approx(value, rel=1e-6, abs=1e-9)
            assert g[key] == expected, (g["step"], key)
    scores = evaluate(result.model, ColourClips(40, 2), batch_size=16, progress=False)
    for key, value in BEFORE[f"{name}_eval"].items():
        assert scores[key] == (value if key == "confusion" else pytest.approx(value, rel=1e-6)), key


def test_logging_less_often_reads_the_same_sums(tmp_path):
    """log_every=3 writes every third step's record, identical to log_every=1's; the epoch sums are
    the clip-weighted mean of the steps' (read from the device at the epoch's end)."""
    every = fit(smoke(tmp_path / "every", **{"optim.epochs": 2, "log_every": 1}), train_dataset=ColourClips(64))
    third = fit(smoke(tmp_path / "third", **{"optim.epochs": 2, "log_every": 3}), train_dataset=ColourClips(64))
    steps = {r["step"]: r for r in records(tmp_path / "every") if r["event"] == "step"}
    logged = [r for r in records(tmp_path / "third") if r["event"] == "step"]
    assert [r["step"] for r in logged] == [3, 6] and all(r == steps[r["step"]] for r in logged)
    for a, b in zip(third.history, every.history, strict=True):
        assert (a["train_loss"], a["train_acc"]) == (b["train_loss"], b["train_acc"])
    first_epoch = [steps[s] for s in range(1, 5)]
    assert every.history[0]["train_loss"] == pytest.approx(sum(r["loss"] for r in first_epoch) / 4)
    assert every.history[0]["train_acc"] == pytest.approx(sum(r["acc"] for r in first_epoch) / 4)


def test_evaluate_keeps_the_logits_it_scored(tmp_path):
    model = fit(smoke(tmp_path, **{"optim.epochs": 1}), train_dataset=ColourClips(64)).model
    scores = evaluate(model, ColourClips(20, 3), batch_size=8, progress=False, keep_logits=True)
    assert scores["logits"].shape == (20, 4) and scores["labels"].tolist() == [i % 4 for i in range(20)]
    top1 = (scores["logits"].argmax(1) == scores["labels"]).float().mean().item()
    assert top1 == pytest.approx(scores["top1"])
    assert "logits" not in evaluate(model, ColourClips(20, 3), batch_size=8, progress=False)


# -- DataLoader workers ---------------------------------------------------------------------------

def test_workers_auto_is_none_on_a_cpu_and_every_core_but_one_on_cuda(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert engine.loader_workers(-1, torch.device("cpu")) == 0
    assert engine.loader_workers(-1, torch.device("cuda")) == 15
    assert engine.loader_workers(-1, torch.device("cuda"), processes=8) == 1
    assert engine.loader_workers(3, torch.device("cuda")) == 3 and engine.loader_workers(2, torch.device("cpu")) == 2
    assert TrainConfig().data.num_workers == -1


def test_persistent_workers_give_the_same_run_as_none(tmp_path, monkeypatch):
    """Clips made in two persistent workers (seeds from the sampler) train exactly as clips made in
    the training process; a dataset that changes every epoch (set_epoch) gets fresh workers."""
    made = []
    real = engine.DataLoader

    def spy(*args, **kwargs):
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "DataLoader", spy)
    overrides = {"optim.epochs": 2, "checkpoint_every": 3}
    none = fit(smoke(tmp_path / "none", **overrides, **{"data.num_workers": 0}), train_dataset=ColourClips(64))
    two = fit(smoke(tmp_path / "two", **overrides, **{"data.num_workers": 2}), train_dataset=ColourClips(64))
    assert [(k["num_workers"], k["persistent_workers"]) for k in made] == [(0, False), (2, True)]
    assert records(tmp_path / "none") == records(tmp_path / "two")
    for key, value in none.model.state_dict().items():
        assert torch.equal(value, two.model.state_dict()[key]), key

    class PerEpoch(ColourClips):
        def set_epoch(self, epoch: int) -> None:
            self.seed = epoch

    fit(smoke(tmp_path / "per-epoch", **{"optim.epochs": 1, "data.num_workers": 1}), train_dataset=PerEpoch(64))
    assert made[-1]["persistent_workers"] is False


# -- checkpoints every few epochs ------------------------------------------------------------------

def test_checkpoint_epochs_spaces_the_epoch_end_checkpoints(tmp_path):
    from tsf.train.checkpoint import list_checkpoints

    cfg = smoke(tmp_path / "run", **{"optim.epochs": 5, "checkpoint_epochs": 2, "keep_checkpoints": 10})
    result = fit(cfg, train_dataset=ColourClips(64))
    assert [c.name for c in list_checkpoints(tmp_path / "run")] == [f"step-{s:08d}" for s in (8, 16, 20)]
    # a run stopped at an epoch's end between them still leaves a checkpoint there, and resumes exactly
    part = smoke(tmp_path / "part", **{"optim.epochs": 5, "checkpoint_epochs": 2, "stop_after_steps": 12})
    stopped = fit(part, train_dataset=ColourClips(64))
    assert stopped.interrupted and stopped.checkpoint.name == "step-00000012"
    rest = fit(smoke(tmp_path / "part", **{"optim.epochs": 5, "checkpoint_epochs": 2}), train_dataset=ColourClips(64),
               resume=True)
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, rest.model.state_dict()[key]), key
    assert TrainConfig().checkpoint_epochs == 1


# -- the command line's devices ----------------------------------------------------------------------

def test_pick_device():
    assert engine.pick_device("cpu") == torch.device("cpu")
    assert engine.pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        engine.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            engine.pick_device("cuda:0")


def test_eval_and_predict_take_a_device(tmp_path, capsys):
    from tsf.__main__ import main

    cfg = smoke(tmp_path / "run", **{"optim.epochs": 1, "data.train_samples": 32, "data.val_samples": 16})
    fit(cfg)
    assert main(["eval", str(tmp_path / "run" / "model"), "--device", "cpu", "--output", str(tmp_path / "e.json")]) == 0
    assert json.loads(capsys.readouterr().out.split("\nfull report")[0])["videos"] == 16
    if not torch.cuda.is_available():
        for command in (["eval", str(tmp_path / "run" / "model")], ["predict", str(tmp_path / "run" / "model"), "x.mp4"]):
            assert main([*command, "--device", "cuda"]) == 2
            assert "CUDA is not available" in capsys.readouterr().err


# -- the cost notebook on a GPU ------------------------------------------------------------------------

def test_measured_time_says_its_precision_and_the_memory_note_what_measured_it(monkeypatch, tmp_path):
    pytest.importorskip("pandas")  # the study's optional dependencies (the notebooks extra)
    from tsf.study import cost

    auto = cost.measure_time("tiny", ("divided",), batch_size=2, repeats=1, warmup=0)
    assert set(auto.precision) == {"fp32"} and set(auto.device) == {"cpu"}  # what the study trains in on a CPU
    bf16 = cost.measure_time("tiny", ("divided",), batch_size=2, repeats=1, warmup=0, precision="bf16")
    assert set(bf16.precision) == {"bf16"}
    assert cost.memory_note(False) == "No GPU measured it here."
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H200")
    assert "NVIDIA H200" in cost.memory_note(True) and "No GPU" not in cost.memory_note(True)


def test_the_memory_panel_draws_measured_memory_labelled_as_such(tmp_path):
    pytest.importorskip("matplotlib")
    from tsf.study import cost
    from tsf.study.report import Output

    flops = cost.flops_curves(crops=(224, 336), frames=(8, 16))
    measured = flops.assign(peak_gb=flops.train_memory_gb / 4, oom=flops.value == 16, gpu="NVIDIA H200")
    fig = cost.plot_flops(flops, Output.create(tmp_path, "gpu"), measured=measured)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any("measured, NVIDIA H200" in label for label in labels)
    assert not any("analytic" in label for label in labels)
    assert (tmp_path / "cost_flops.png").is_file()


# -- the benchmark: results after each case, a budget, the targets' verdicts ----------------------

def test_bench_writes_after_each_case_and_skips_what_no_longer_fits(monkeypatch, tmp_path):
    from tsf.bench import models

    clock = [0.0]  # each case takes 10 s of a fake clock

    def fake_case(case, **kwargs):
        clock[0] += 10.0
        return {"case": {"name": case.name}, "rows": []}

    monkeypatch.setattr(models, "run_case", fake_case)
    monkeypatch.setattr(models.time, "perf_counter", lambda: clock[0])
    seen = []
    cases = [models.Case(f"c{i}", "tiny") for i in range(4)]
    result = models.run_bench(cases, budget=25, progress=False,
                              on_case=lambda so_far: seen.append([c["case"]["name"] for c in so_far["cases"]]))
    assert seen == [["c0"], ["c0", "c1"]]  # written as each case ends; c2 would end at 30 s > 25
    assert [s["case"] for s in result["skipped"]] == ["c2", "c3"]
    assert result["skipped"][0]["why"] == "20 s of the 25 s budget spent; the longest case took 10 s"
    assert models.run_bench(cases[:2], progress=False).get("skipped") is None


def _gpu_result(train_ratio: float, infer_mfu: float) -> dict:
    case = {"name": "base-bf16", "preset": "base", "precision": "bf16", "compile": False,
            "schemes": ["divided"], "modes": ["train", "infer"]}
    rows = [{"impl": impl, "scheme": "divided", "mode": mode, "batch_size": 64, "clips_per_s": rate,
             "clips_per_s_q1": rate, "clips_per_s_q3": rate, "mfu": mfu}
            for impl, mode, rate, mfu in (("tsf", "train", 100.0 * train_ratio, 0.4), ("hf", "train", 100.0, 0.2),
                                          ("tsf", "infer", 900.0, infer_mfu), ("hf", "infer", 500.0, 0.3))]
    return {"device": "cuda", "cases": [{"case": case, "threads": 16, "rows": rows,
                                         "tsf_over_hf": {"divided/train": train_ratio, "divided/infer": 1.8},
                                         "matmul": {"tflops": 790.0, "dtype": "bfloat16", "threads": 16}}]}


def test_bench_prints_the_gpu_targets_verdicts():
    from tsf.bench import models

    lines = models.format_results(_gpu_result(2.4, 0.55)).splitlines()
    train = next(line for line in lines if "divided: training at least 2x Hugging Face's" in line)
    infer = next(line for line in lines if "divided: inference at least 50% of the bf16 matmul rate" in line)
    assert train.split()[-2:] == ["2.40x", "yes"] and infer.split()[-2:] == ["55%", "yes"]
    assert [v["verdict"] for v in models.verdicts(_gpu_result(2.4, 0.55))] == ["yes", "yes"]
    assert [v["verdict"] for v in models.verdicts(_gpu_result(1.5, 0.3))] == ["no", "no"]
    as_cpu = models.verdicts({**_gpu_result(2.4, 0.55), "device": "cpu"})  # a CPU result: the CPU targets only
    assert as_cpu == models.cpu_verdicts(_gpu_result(2.4, 0.55)) and not any("bf16" in v["target"] for v in as_cpu)
    cut = {**_gpu_result(2.4, 0.55), "skipped": [{"case": "hr-bf16", "why": "..."}, {"case": "large-bf16"}]}
    assert models.format_results(cut).endswith("skipped (--budget): hr-bf16, large-bf16")


# -- the study's held-out scores ------------------------------------------------------------------------

def test_held_out_scores_are_fits_evaluation_with_the_same_logits(tmp_path):
    """The study scores held-out clips through evaluate (bf16 and workers on a GPU); on a CPU the
    logits are those of the plain float32 loop it replaced, with or without workers."""
    import dataclasses

    from tsf.data.synthetic import SyntheticVideos
    from tsf.model import TimeSformer
    from tsf.study.metrics import cached_clips, predict_logits
    from tsf.study.presets import study_preset

    config = study_preset("smoke").train_config("motion", "divided", 0)
    torch.manual_seed(0)
    model = TimeSformer(config.model.replace(num_classes=10)).eval()
    data = SyntheticVideos("motion", 70, num_frames=config.model.num_frames, size=config.model.img_size)
    with torch.no_grad():
        want = torch.cat([model(torch.stack([data[i][0] for i in range(a, min(a + 64, 70))])) for a in (0, 64)])
    logits, labels = predict_logits(model, data, config)
    assert torch.equal(logits, want) and labels.tolist() == [i % 10 for i in range(70)]
    workers = dataclasses.replace(config, data=dataclasses.replace(config.data, num_workers=2))
    assert torch.equal(predict_logits(model, data, workers)[0], want)
    assert torch.equal(predict_logits(model, cached_clips(data, 70), workers)[0], want)  # in memory: no workers


def test_study_runs_on_a_gpu_get_their_share_of_the_cores_as_workers(tmp_path):
    import dataclasses

    from tsf.study.presets import study_preset
    from tsf.study.runs import Runs, config_key

    runs = Runs(tmp_path, workers=2, gpu_workers=4)
    config = study_preset("gpu").train_config("motion", "divided", 0)
    job = runs._job("motion-divided-s0", config, data_workers=3)
    assert (job.data.num_workers, job.progress, job.output_dir) == (3, False, str(runs.path("motion-divided-s0", config)))
    assert config_key(job) == config_key(config)  # the same run, whatever its workers and folder
    fixed = dataclasses.replace(config, data=dataclasses.replace(config.data, num_workers=0))
    assert runs._job("x", fixed, data_workers=3).data.num_workers == 0  # a config's own choice stands
    assert runs._job("x", config, data_workers=None).data.num_workers == -1  # on a CPU: the engine's default


def test_a_study_run_stopped_by_a_signal_is_not_cached_as_finished(tmp_path, monkeypatch):
    """A SIGTERM mid-run (seen once under papermill on the shared machine) leaves a checkpoint and no
    study.json: the cache resumes the run next time instead of reading a run that never finished."""
    from tsf.study import runs as study_runs

    real = study_runs.fit

    def stopped(config, **kwargs):
        result = real(TrainConfig.from_dict({**config.to_dict(), "stop_after_steps": 2}), **kwargs)
        return result

    monkeypatch.setattr(study_runs, "fit", stopped)
    config = smoke(tmp_path / "run", **{"optim.epochs": 1})
    with pytest.raises(RuntimeError, match="stopped at step 2 by a signal"):
        study_runs._run_one(config.to_json(), "a-run", 1)
    assert not (tmp_path / "run" / "study.json").exists() and (tmp_path / "run" / "checkpoints").is_dir()
