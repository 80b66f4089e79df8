"""``python -m tsf bench``: its plumbing on tiny models, its arithmetic, and the committed results.

The benchmark itself is not a unit test: these run one or two rounds of tiny models.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex

import pytest
import torch
from torch import nn

import tsf
from tsf.cpu_matmul import onednn_active, onednn_keeps_fp32
from tsf.bench import memory, models, profile, steps, timing
from tsf.__main__ import canonical_argv, main
from tsf.study import cost

from .helpers import ROOT, doc_block

TINY = models.Case("tiny", "tiny", schemes=("divided", "local_global"), batch_size=2, warmup=1, repeats=2)


def test_quartiles_and_model_flops_utilisation():
    assert timing.quartiles([3.0]) == (3.0, 3.0, 3.0)
    assert timing.quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 3.0, 4.0)
    # count_macs counts multiply-adds: 2 FLOPs each; a training step is three forward passes' worth
    assert models.model_flops_utilisation(10**9, 100.0, 1.0, "infer") == pytest.approx(0.2)
    assert models.model_flops_utilisation(10**9, 100.0, 1.0, "train") == pytest.approx(0.6)
    assert models.model_flops_utilisation(tsf.count_macs(tsf.preset("base")), 1000.0, 989.0, "infer") == \
        pytest.approx(2 * 196.3e9 * 1000 / 989e12, rel=0.01)
    with pytest.raises(ValueError, match="mode"):
        models.model_flops_utilisation(1, 1.0, 1.0, "eval")


def test_quartile_bars_never_leave_the_data():
    """Two or three timed rounds are common: the bars must stay within [min, max] (the "exclusive"
    method extrapolates below the minimum, which drew bars below 0 ms). One function serves every
    figure: the study's time panel uses the bench's."""
    import random

    rng = random.Random(0)
    for n in range(1, 12):
        for _ in range(50):
            values = [rng.expovariate(1.0) * rng.choice((1e-3, 1.0, 1e3)) for _ in range(n)]
            q1, med, q3 = timing.quartiles(values)
            assert min(values) <= q1 <= med <= q3 <= max(values), values
    assert timing.quartiles([1.0, 9.0]) == (3.0, 5.0, 7.0)
    assert cost.quartiles is timing.quartiles and models.quartiles is timing.quartiles
    others = [str(path) for path in (ROOT / "tsf").rglob("*.py") if path.name != "timing.py"
              and re.search(r"quantiles?\(|percentile\(", path.read_text())]
    assert not others, f"quartiles computed outside tsf.bench.timing: {others}"
    frame = cost.measure_time("tiny", ("divided",), batch_size=1, repeats=2, warmup=0)
    assert (frame.q1 <= frame.ms_per_clip).all() and (frame.ms_per_clip <= frame.q3).all() and (frame.q1 > 0).all()


def test_rounds_are_interleaved_and_rotated_and_warmup_is_dropped():
    calls: list[str] = []
    seconds = timing.time_interleaved({k: (lambda k=k: calls.append(k)) for k in "abc"}, warmup=2, repeats=3,
                                     progress=False)
    assert calls == list("abc" "bca" "cab" "abc" "bca")
    assert {k: len(v) for k, v in seconds.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(s >= 0 for v in seconds.values() for s in v)


def test_each_turn_settles_then_times_a_block_and_the_orders_are_recorded():
    calls: list[str] = []
    orders: list[list[str]] = []
    seconds = timing.time_interleaved({k: (lambda k=k: calls.append(k)) for k in "ab"}, warmup=1, repeats=2,
                                     progress=False, block=2, settle=1, orders=orders)
    assert calls == list("aaabbb" "bbbaaa" "aaabbb")  # each turn: one untimed call, then two timed ones
    assert orders == [list("ba"), list("ab")]  # the kept rounds only
    assert {k: len(v) for k, v in seconds.items()} == {"a": 4, "b": 4}


def test_the_ratio_by_order_takes_each_rounds_block():
    # two kept rounds of 2 timed steps: ours first (we take 1 s, they 2 s), then theirs first (4 s, 2 s)
    seconds = {"tsf": [1.0, 1.0, 4.0, 4.0], "hf": [2.0, 2.0, 2.0, 2.0]}
    by_order = models.ratio_by_order(seconds, [["tsf", "hf"], ["hf", "tsf"]], "tsf", "hf", block=2)
    assert by_order == {"tsf first": 2.0, "hf first": 0.5}


def test_matmul_rate_is_measured():
    rate = models.matmul_rate("cpu", n=128, repeats=2)
    assert rate["n"] == 128 and rate["dtype"] == "float32" and rate["tflops"] > 0


def test_same_weights_same_logits_and_a_mismatch_is_an_error():
    cfg = TINY.config("divided")
    models = steps.build_models(cfg)
    assert set(models) == {"tsf", "hf"} and set(steps.build_models(TINY.config("axial"))) == {"tsf"}
    batch = steps.clip_batch(cfg, 2)
    assert torch.equal(batch["hf"][0], batch["tsf"][0].transpose(1, 2))
    parity = steps.check_parity(models, batch)
    assert parity["max_abs_diff"] <= 1e-5 * parity["max_abs_logit"]
    assert models["tsf"].blocks[0].temporal_fc.weight.abs().sum() > 0  # the zero-init paths carry signal
    with torch.no_grad():  # a random change (a constant one vanishes in the LayerNorms)
        weight = models["hf"].hf.timesformer.encoder.layer[0].temporal_dense.weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(RuntimeError, match="logits differ"):
        steps.check_parity(models, batch)


def test_cpu_peak_growth_sees_what_a_step_allocates():
    grown = memory.cpu_peak_growth(lambda: torch.ones(16 * 2**20).sum())  # 64 MiB, touched
    assert 48 * 2**20 < grown < 256 * 2**20


class _Fussy(nn.Module):
    """Our model in Hugging Face's layout, running out of memory above a batch size."""

    def __init__(self, model: nn.Module, most: int) -> None:
        super().__init__()
        self.model, self.most = model, most

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.shape[0] > self.most:
            raise torch.OutOfMemoryError("CUDA out of memory (a test)")
        return self.model(video.transpose(1, 2))


def test_fill_batch_takes_the_largest_batch_every_fitting_model_manages():
    cfg = tsf.preset("tiny")
    ours = tsf.TimeSformer(cfg)
    cpu = torch.device("cpu")
    assert models.fill_batch(cfg, {"tsf": ours}, cpu, "fp32", limit=8) == 8
    assert models.fill_batch(cfg, {"tsf": ours, "hf": _Fussy(ours, 3)}, cpu, "fp32", limit=8) == 2
    assert models.fill_batch(cfg, {"hf": _Fussy(ours, 5)}, cpu, "fp32", limit=8) == 4
    assert models.fill_batch(cfg, {"tsf": ours, "hf": _Fussy(ours, 0)}, cpu, "fp32", limit=4) == 4  # HF: none fit


@pytest.mark.slow  # timed rounds, a memory probe process
def test_run_case_times_both_and_reports_rates_memory_and_ratios():
    result = models.run_case(TINY, progress=False, command=["python", "-m", "tsf", "bench", "test"])
    rows = {(r["impl"], r["scheme"], r["mode"]): r for r in result["rows"]}
    assert set(rows) == {(i, s, m) for s, impls in (("divided", ("tsf", "hf")), ("local_global", ("tsf",)))
                         for i in impls for m in ("train", "infer")}
    for row in rows.values():
        assert row["rounds"] == 2 and row["clips_per_s_q1"] <= row["clips_per_s"] <= row["clips_per_s_q3"]
        assert 0 < row["mfu"] and row["peak_memory_mb"] > 0 and row["batch_size"] == 2
    assert rows[("tsf", "divided", "train")]["peak_memory_mb"] > rows[("tsf", "divided", "infer")]["peak_memory_mb"]
    assert set(result["tsf_over_hf"]) == {"divided/train", "divided/infer"}
    assert result["tsf_over_hf"]["divided/train"] == pytest.approx(
        rows[("tsf", "divided", "train")]["clips_per_s"] / rows[("hf", "divided", "train")]["clips_per_s"])
    assert result["parity"]["local_global"] is None and result["parity"]["divided"]["max_abs_diff"] < 1e-4
    assert result["command"] == "python -m tsf bench test" and set(result["load_average_1min"]) == {"start", "end"}
    assert result["matmul"]["tflops"] > 0 and result["threads"] == torch.get_num_threads()
    # the MFU denominator was timed in each scheme's rounds, and each row's MFU uses its scheme's
    assert set(result["matmul"]["by_scheme"]) == {"divided", "local_global"}
    row = rows[("tsf", "local_global", "train")]
    assert row["mfu"] == pytest.approx(models.model_flops_utilisation(
        int(row["gmacs_per_clip"] * 1e9), row["clips_per_s"], result["matmul"]["by_scheme"]["local_global"], "train"))


def test_each_models_products_run_on_the_kernels_its_users_get(monkeypatch):
    """Ours on oneDNN (as tsf's training runs it, where that stays float32), Hugging Face's on
    PyTorch's choice; the steps see the setting while they run and the case gives it back."""
    seen: dict[str, set[bool]] = {}
    real = models.make_step

    def spying(model, *args, **kwargs):
        impl = "tsf" if type(model).__module__ == "tsf.model" else "hf"  # HF's sits in the bench's adapter
        model.register_forward_hook(  # the training steps' forward passes (not the logits check's)
            lambda *_: torch.is_grad_enabled() and seen.setdefault(impl, set()).add(onednn_active()))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(models, "make_step", spying)
    case = dataclasses.replace(TINY, schemes=("divided",), modes=("train",), repeats=1, warmup=0)
    result = models.run_case(case, memory=False, progress=False)
    onednn = onednn_keeps_fp32()
    assert seen == {"tsf": {onednn}, "hf": {False}}
    expected = "oneDNN" if onednn else "PyTorch's default"
    assert result["float32_products"] == {"tsf": expected, "hf": "PyTorch's default"}
    assert result["matmul"]["kernels"] == expected and not onednn_active()
    # where ours run on oneDNN, the reference product is timed on the default kernels too (the kernels' gain)
    assert ("default_kernels_tflops" in result["matmul"]) == onednn
    if onednn:
        assert result["matmul"]["default_kernels_tflops"] > 0
    text = models.format_results({"device": "cpu", "cases": [result]})
    assert f"float32 products (tsf.cpu_matmul): tsf on {expected}, HF on PyTorch's default (tiny)" in text
    both = models.run_case(dataclasses.replace(case, hf_cpu_matmul="auto"), memory=False, progress=False)
    assert both["float32_products"]["hf"] == expected


def test_a_case_with_one_thread_restores_the_thread_count():
    before = torch.get_num_threads()
    case = dataclasses.replace(TINY, schemes=("space",), modes=("train",), threads=1, repeats=1, warmup=0)
    result = models.run_case(case, memory=False, progress=False)
    assert result["threads"] == 1 and result["matmul"]["threads"] == 1
    assert torch.get_num_threads() == before


def test_memory_curves_loop_records_every_point_and_out_of_memory():
    seen = []

    def fake(fn):  # runs the point for real on the CPU; the largest pretends not to fit
        fn()
        seen.append(1)
        if len(seen) % 4 == 0:
            raise torch.OutOfMemoryError("out of memory (a test)")
        return 1000 * len(seen)

    rows = memory.memory_curves(("joint", "divided"), crops=(16, 24), frames=(2, 4), model_preset="tiny",
                               precision="fp32", device="cpu", measure=fake, progress=False)
    assert [(r["scheme"], r["axis"], r["value"]) for r in rows] == [
        (s, a, v) for s in ("joint", "divided") for a, vs in (("crop", (16, 24)), ("frames", (2, 4))) for v in vs]
    assert [r["oom"] for r in rows] == [False, False, False, True] * 2
    assert rows[0]["peak_gb"] == 1e-6 and rows[3]["peak_gb"] is None
    assert (rows[0]["frames"], rows[0]["crop"], rows[2]["frames"], rows[2]["crop"]) == (4, 16, 2, 16)
    with pytest.raises(RuntimeError, match="CUDA"):
        memory.memory_curves(device="cpu")


def test_run_bench_adds_the_memory_curves(monkeypatch):
    monkeypatch.setattr(models, "memory_curves", lambda **kw: [{"scheme": "joint", "device": str(kw["device"])}])
    result = models.run_bench([], device="cpu", with_memory_curves=True, progress=False)
    assert result["cases"] == [] and result["memory_curves"]["rows"] == [{"scheme": "joint", "device": "cpu"}]
    assert "max_memory_allocated" in result["memory_curves"]["what"]


def test_study_memory_panel_uses_the_bench_implementation():
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA GPU"):
            cost.measure_gpu_memory()
    assert "tsf.bench.memory.memory_curves" in cost.measure_gpu_memory.__doc__


def test_suites_cover_what_the_issue_asks():
    cpu = {c.name: c for c in models.CPU_CASES}
    assert cpu["small-train"].preset == "small" and cpu["small-train"].batch_size == 32
    assert "train" in cpu["small-train"].modes and cpu["base-infer"].batch_size == 1
    gpu = models.GPU_CASES
    assert {(c.preset, c.compile) for c in gpu} == {(p, k) for p in ("base", "hr", "large") for k in (False, True)}
    assert all(c.precision == "bf16" and c.batch_size is None for c in gpu)
    assert all(set(c.schemes) == set(tsf.config.ATTENTION_SCHEMES) for c in gpu if not c.compile)
    assert memory.MEMORY_FRAMES[0] == 8 and memory.MEMORY_FRAMES[-1] == 96
    assert memory.MEMORY_CROPS[0] == 224 and memory.MEMORY_CROPS[-1] == 560
    with pytest.raises(ValueError, match="unknown benchmark case"):
        models.find_case("nope")


@pytest.mark.slow  # two bench runs
def test_cli_writes_merges_plots_and_refuses_gpu_work_without_a_gpu(tmp_path, capsys):
    out, figure = tmp_path / "r.json", tmp_path / "f.png"
    common = ["--attention", "divided", "--repeats", "1", "--warmup", "0", "--batch-size", "2", "--no-memory",
              "--out", str(out), "--figure", str(figure)]
    assert main(["bench", "models", "--cases", "small-train", *common]) == 0
    assert main(["bench", "--cases", "small-train-1thread", "--note", "a test", *common]) == 0  # the old form
    printed = capsys.readouterr().out
    assert "small-train-1thread  train  divided" in printed
    result = json.loads(out.read_text())
    assert [c["case"]["name"] for c in result["cases"]] == ["small-train", "small-train-1thread"]
    assert "note" not in result["cases"][0] and result["cases"][1]["note"] == "a test"
    assert result["cases"][0]["command"].startswith("python -m tsf bench")
    assert result["machine"]["versions"]["transformers"] and figure.stat().st_size > 10_000
    assert models.format_results(result) in printed
    if not torch.cuda.is_available():
        assert main(["bench", "models", "--memory-curves"]) == 2
        assert main(["bench", "models", "--device", "cuda"]) == 2
    with pytest.raises(ValueError, match="another device"):
        models.merge_results({**result, "device": "cuda"}, result)


def test_readme_performance_table_is_the_committed_results(committed):
    result = committed("bench_cpu")
    assert result["device"] == "cpu"
    assert all(canonical_argv(shlex.split(c["command"])[3:])[:2] == ["bench", "models"] for c in result["cases"])
    assert {c["case"]["name"] for c in result["cases"]} == {c.name for c in models.CPU_CASES}
    assert doc_block("docs/performance.md", "bench-cpu") == models.format_results(result)
    before = committed("bench_cpu_before")
    assert doc_block("docs/performance.md", "bench-cpu-before") == models.format_results(before)
    profiled = committed("profile_cpu_small_divided_train")
    assert canonical_argv(shlex.split(profiled["command"])[3:])[:2] == ["bench", "profile"]
    assert doc_block("docs/performance.md", "bench-profile") == profile.format_profile(profiled)
    inference = committed("profile_cpu_small_divided_infer")
    assert inference["mode"] == "infer" and canonical_argv(shlex.split(inference["command"])[3:])[:2] == ["bench", "profile"]
    assert doc_block("docs/performance.md", "bench-profile-infer") == profile.format_profile(inference)


def test_readme_says_which_cpu_speed_targets_are_missed(committed):
    """Issue 15: where a target is missed, README says so, from the committed result file."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    result = committed("bench_cpu")
    summary = models.cpu_targets_summary(result)
    assert summary in readme
    verdicts = models.cpu_verdicts(result)
    assert summary.startswith(f"{sum(v['verdict'] == 'yes' for v in verdicts)} of the {len(verdicts)} ")
    ceiling = committed("profile_cpu_small_divided_train")["impls"]["tsf"]["mfu_ceiling"]
    assert f"would reach {ceiling:.0%} MFU" in readme
    # each missed target appears with what was measured, a met one does not
    lines = [line for line in models.cpu_verdicts(result) if "matmul rate" not in line["target"]]
    missed = {line["target"] for line in lines if line["verdict"] == "no"}
    for line in lines:
        assert (line["target"] in summary) == (line["target"] in missed), line
        if line["verdict"] == "no":
            assert line["measured"] in summary.split(line["target"])[1].split(";")[0], line


def test_op_families_sort_the_operators_that_matter():
    assert profile.op_family("aten::addmm") == profile.op_family("aten::bmm") == "matmul"
    assert profile.op_family("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention kernel"
    assert profile.op_family("aten::native_layer_norm_backward") == "layer norm"
    assert profile.op_family("aten::copy_") == "copies and reshapes"
    assert profile.op_family("aten::something_new") == "other"


@pytest.mark.slow  # the profiler
def test_profile_reports_both_models_by_family(capsys):
    result = profile.profile_steps("small-train", "divided_space_time", rounds=1, warmup=1, batch_size=2)
    assert set(result["impls"]) == {"tsf", "hf"} and result["scheme"] == "divided"
    for impl in result["impls"].values():
        families = impl["self_ms_by_family"]
        assert families["matmul"] > 0 and impl["self_ms_total"] == pytest.approx(sum(families.values()))
        assert impl["top_ops"] == sorted(impl["top_ops"], key=lambda o: -o["self_ms"])
        clips_per_s = 2 / (families["matmul"] / 1e3)  # the step's two clips in its matmuls' time
        assert impl["mfu_ceiling"] == pytest.approx(
            6 * tsf.count_macs(tsf.preset("small", attention="divided")) * clips_per_s / (result["matmul"]["tflops"] * 1e12))
    assert result["matmul"]["n"] == 2048 and result["matmul"]["threads"] == result["threads"]
    table = profile.format_profile(result)
    assert "| matmul |" in table and table.splitlines()[0].endswith("| tsf | hf |")
    assert "MFU ceiling" in table.splitlines()[-1] and "tsf " in table.splitlines()[-1]


@pytest.mark.slow  # the profiler
def test_cli_profile_writes_its_command(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert main(["bench", "profile", "--attention", "joint", "--mode", "infer", "--rounds", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scheme"] == "joint" and result["mode"] == "infer" and "date" in result
    assert result["command"] == f"python -m tsf bench profile --attention joint --mode infer --rounds 1 --out {out}"
    assert "| joint infer step, batch 32 (ms) | tsf | hf |" in capsys.readouterr().out


def test_cpu_targets_are_judged_from_the_cases_ratios_and_mfu():
    def case(name, compile_, ratios, rows):
        return {"case": {"name": name, "compile": compile_}, "tsf_over_hf": ratios, "rows": rows}
    result = {"device": "cpu", "cases": [
        case("small-train", False, {"divided/train": 1.20, "joint/train": 0.99, "divided/infer": 1.05},
             [{"impl": "tsf", "scheme": "divided", "mode": "train", "mfu": 0.81},
              {"impl": "hf", "scheme": "divided", "mode": "train", "mfu": 0.9},
              {"impl": "tsf", "scheme": "axial", "mode": "train", "mfu": 0.5}]),
        case("small-train-compile", True, {"divided/train": 1.0}, [{"impl": "tsf", "scheme": "divided",
                                                                    "mode": "train", "mfu": 0.1}])]}
    got = {(v["case"], v["target"]): (v["measured"], v["verdict"]) for v in models.verdicts(result)}
    assert got == {
        ("small-train", "divided: training at least 1.15x Hugging Face's"): ("1.20x", "yes"),
        ("small-train", "joint: training at least 1x Hugging Face's"): ("0.99x", "no"),
        ("small-train", "divided: inference at least 1.1x Hugging Face's"): ("1.05x", "no"),
        ("small-train", "divided: training at least 80% of the matmul rate"): ("81%", "yes"),
        ("small-train", "axial: training at least 80% of the matmul rate"): ("50%", "no"),
        ("small-train-compile", "divided: compiled training at least 1x Hugging Face's compiled"): ("1.00x", "yes")}
