"""Float32 CPU products on oneDNN (tsf.cpu_matmul): only where they stay float32, restored after,
the model's function unchanged, and the runs that use it say so."""

import json

import pytest
import torch

import tsf
from tsf import cpu_matmul
from tsf.attention import EXPLICIT_MAX_LENGTH, EXPLICIT_MAX_LENGTH_ONEDNN, explicit_path
from tsf.cpu_matmul import onednn_active, onednn_keeps_fp32, onednn_matmul
from tsf.train import TrainConfig

from .test_train import smoke
from .toy import ColourClips

CPU = torch.device("cpu")


def test_the_switch_follows_the_probe_and_is_restored():
    before = torch.backends.mkldnn.matmul.fp32_precision
    with onednn_matmul("auto") as on:
        assert on == onednn_keeps_fp32() and onednn_active() == on
    assert torch.backends.mkldnn.matmul.fp32_precision == before and not onednn_active()
    with pytest.raises(RuntimeError), onednn_matmul("auto"):
        raise RuntimeError("a failing run")
    assert torch.backends.mkldnn.matmul.fp32_precision == before


def test_default_and_a_failed_probe_leave_pytorch_alone(monkeypatch):
    with onednn_matmul("default") as on:
        assert not on and not onednn_active()
    with onednn_matmul("auto", torch.device("meta")) as on:  # work on another device than the CPU
        assert not on and not onednn_active()
    monkeypatch.setattr(cpu_matmul, "onednn_keeps_fp32", lambda: False)
    with onednn_matmul("auto") as on:
        assert not on and not onednn_active()


def test_unknown_modes_are_refused():
    with pytest.raises(ValueError, match="cpu_matmul must be one of auto, default"):
        with onednn_matmul("fast"):
            pass
    with pytest.raises(ValueError, match="cpu_matmul"):
        TrainConfig(cpu_matmul="bf16")


def test_products_inside_stay_float32():
    """What bfloat16 inputs would round away survives: 1 + 2^-10 (bf16 keeps 8 bits) at the model's sizes."""
    x = torch.full((2080, 128), 1 + 2**-10)
    linear = torch.nn.Linear(128, 384, bias=True)
    with torch.no_grad():
        linear.weight.fill_(1.0)
        linear.bias.zero_()
    with onednn_matmul("auto"), torch.no_grad():
        y = linear(x)
        z = torch.bmm(x.view(32, 65, 128), torch.ones(32, 128, 17))
    assert bool((y == 128 * (1 + 2**-10)).all()) and bool((z == 128 * (1 + 2**-10)).all())


def test_attention_takes_the_explicit_path_for_longer_groups_under_onednn():
    assert not explicit_path(65, CPU)
    with onednn_matmul("auto") as on:
        assert explicit_path(65, CPU) == on and explicit_path(EXPLICIT_MAX_LENGTH_ONEDNN + 1, CPU) is False
    assert explicit_path(EXPLICIT_MAX_LENGTH, CPU) and not explicit_path(65, torch.device("meta"))


@pytest.mark.parametrize("attention", ["joint", "divided", "local_global", "axial", "space"])
def test_the_model_computes_the_same_function_on_either_kernels(attention):
    """Logits and gradients agree to float32 rounding (another summation order, another attention path)."""
    config = tsf.preset("tiny", attention=attention, num_frames=4, img_size=32, patch_size=8, num_classes=5)
    torch.manual_seed(0)
    model = tsf.TimeSformer(config)
    video = torch.randn(3, 3, 4, 32, 32)

    def run():
        model.zero_grad()
        logits = model(video)
        logits.square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    ref_logits, ref_grads = run()
    with onednn_matmul("auto"):
        logits, grads = run()
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-5)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-5)


def test_a_run_records_which_kernels_made_it(tmp_path):
    for mode in ("auto", "default"):
        folder = tmp_path / mode
        tsf.train.fit(smoke(folder, **{"optim.epochs": 1, "cpu_matmul": mode}), train_dataset=ColourClips(64),
                      val_dataset=ColourClips(32, 1))
        env = json.loads((folder / "env.json").read_text())
        expected = "oneDNN" if mode == "auto" and onednn_keeps_fp32() else "PyTorch's default"
        assert env["cpu_float32_products"] == expected
    assert not onednn_active()  # fit gave the setting back


def test_the_cost_notebooks_timing_runs_on_the_studys_kernels_and_says_so():
    pytest.importorskip("pandas")  # the study's optional dependencies (the notebooks extra)
    from tsf.study import cost

    auto = cost.measure_time("tiny", ("divided",), batch_size=1, repeats=1, warmup=0)
    expected = "oneDNN" if onednn_keeps_fp32() else "PyTorch's default"
    assert set(auto.kernels) == {expected} and not onednn_active()
    assert cost._how(auto.iloc[0]) == "cpu fp32" + (" on oneDNN" if expected == "oneDNN" else "")
    default = cost.measure_time("tiny", ("divided",), batch_size=1, repeats=1, warmup=0, cpu_matmul="default")
    assert set(default.kernels) == {"PyTorch's default"} and cost._how(default.iloc[0]) == "cpu fp32"
