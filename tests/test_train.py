"""The training engine: schedules, configs, exact resume, signals, crash safety, DDP, evaluation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from tsf.train import OptimConfig, TrainConfig, apply_overrides, evaluate, fit, load_config, lr_factor, train_preset
from tsf.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from tsf.weights import CheckpointError

from .helpers import ROOT, wait_for
from .toy import ColourClips


def smoke(tmp: Path, **overrides) -> TrainConfig:
    return apply_overrides(train_preset("smoke"), {"output_dir": str(tmp), "progress": False, **overrides})


def losses(run_dir: Path) -> list[tuple[int, float]]:
    lines = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(l["step"], l["loss"]) for l in lines if l["event"] == "step"]


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- configuration ------------------------------------------------------------------------

def test_authors_recipe_preset():
    cfg = train_preset("authors")
    o = cfg.optim
    assert (o.optimizer, o.lr, o.momentum, o.nesterov, o.weight_decay) == ("sgd", 0.005, 0.9, True, 1e-4)
    assert (o.schedule, o.milestones, o.gamma, o.epochs) == ("step", (11, 14), 0.1, 15)
    assert o.batch_size * o.accum_steps == 64
    assert (cfg.model.num_frames, cfg.model.img_size, cfg.model.embed_dim) == (8, 224, 768)


def test_step_schedule_decays_at_epochs_11_and_14():
    cfg = train_preset("authors")
    per_epoch = 10
    factors = [lr_factor(e * per_epoch, per_epoch, cfg) for e in range(15)]
    assert factors[:11] == [1.0] * 11
    assert factors[11:14] == pytest.approx([0.1] * 3)
    assert factors[14] == pytest.approx(0.01)


def test_warmup_then_cosine():
    cfg = TrainConfig(optim=OptimConfig(epochs=10, warmup_epochs=2, min_lr_ratio=0.0))
    f = [lr_factor(s, 10, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.05) and f[19] == pytest.approx(1.0)  # linear warm-up over 20 steps
    assert all(a >= b for a, b in zip(f[20:], f[21:]))  # then monotone decay
    assert f[-1] < 0.01


def test_overrides_yaml_and_errors(tmp_path):
    cfg = apply_overrides(train_preset("scratch"), ["model.attention=joint", "optim.lr=3e-4", "data.task=appearance"])
    assert (cfg.model.attention, cfg.optim.lr, cfg.data.task) == ("joint", 3e-4, "appearance")
    assert apply_overrides(cfg, {"data.source_frames": "64", "optim.clip_grad": "null"}).data.source_frames == 64
    cfg = apply_overrides(cfg, {"model.preset": "tiny"})
    assert cfg.model.embed_dim == 32 and cfg.model.attention == "joint"
    (tmp_path / "run.yaml").write_text("optim:\n  epochs: 3\n  batch_size: 8\nmodel:\n  attention: axial\nseed: 5\n")
    cfg = load_config("scratch", tmp_path / "run.yaml", ["optim.epochs=4"])
    assert (cfg.optim.epochs, cfg.optim.batch_size, cfg.model.attention, cfg.seed) == (4, 8, "axial", 5)
    with pytest.raises(ValueError, match="unknown config key 'optim.learning_rate'"):
        apply_overrides(cfg, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="not key=value"):
        apply_overrides(cfg, ["optim.lr"])
    with pytest.raises(ValueError, match="unknown attention scheme"):
        apply_overrides(cfg, ["model.attention=cubic"])
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="must be a mapping"):
        load_config("scratch", tmp_path / "bad.yaml")
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


# -- the loop ---------------------------------------------------------------------------------

def test_run_folder_contents(tmp_path):
    result = fit(smoke(tmp_path, **{"optim.epochs": 1}), train_dataset=ColourClips(64), val_dataset=ColourClips(32, 1))
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "env.json", "metrics.jsonl", "checkpoints",
                                                   "model", "result.json"}
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["machine"]["versions"]["torch"] == torch.__version__ and env["device"] == "cpu"
    assert json.loads((tmp_path / "config.json").read_text())["model"]["num_classes"] == 4
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [l["event"] for l in lines].count("step") == result.steps == 4
    assert lines[-1]["event"] == "epoch" and {"train_loss", "val_acc", "val_top5"} <= set(lines[-1])
    assert json.loads((tmp_path / "model" / "classes.json").read_text()) == ColourClips.classes


def test_exact_resume_matches_an_uninterrupted_run(tmp_path):
    """Interrupted mid-epoch and resumed: the same losses and bit-identical weights, with
    stochastic depth on and augmentation noise from the global RNG."""
    overrides = {"optim.epochs": 3, "checkpoint_every": 3, "model.drop_path_rate": 0.3}
    data = dict(train_dataset=ColourClips(64), val_dataset=ColourClips(32, 1))
    full = fit(smoke(tmp_path / "full", **overrides), **data)
    part = fit(smoke(tmp_path / "part", **overrides, stop_after_steps=5), **data)
    assert part.interrupted and part.steps == 5 and part.checkpoint.name == "step-00000005"
    rest = fit(smoke(tmp_path / "part", **overrides), resume=True, **data)
    assert not rest.interrupted and rest.steps == full.steps == 12
    assert losses(tmp_path / "part") == losses(tmp_path / "full")
    for key, value in weights(full.model).items():
        assert torch.equal(value, weights(rest.model)[key]), key
    assert [h["val_acc"] for h in rest.history] == [h["val_acc"] for h in full.history]


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_multi_tensor_optimiser_trains_the_per_tensor_loops_run_bit_for_bit(tmp_path, monkeypatch, optimizer):
    import tsf.train.engine as engine

    overrides = {"optim.optimizer": optimizer, "optim.epochs": 2, "model.drop_path_rate": 0.1}
    data = dict(train_dataset=ColourClips(64), val_dataset=ColourClips(32, 1))
    fast = fit(smoke(tmp_path / "foreach", **overrides), **data)
    config = smoke(tmp_path / "unused", **overrides)
    assert all(group["foreach"] for group in engine.build_optimizer(fast.model, config).param_groups)
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD
    monkeypatch.setattr(cls, "__init__", _without_foreach(cls.__init__))
    slow = fit(smoke(tmp_path / "loop", **overrides), **data)
    assert losses(tmp_path / "foreach") == losses(tmp_path / "loop")
    for key, value in weights(slow.model).items():
        assert torch.equal(value, weights(fast.model)[key]), key


def _without_foreach(init):
    def loop(self, *args, **kwargs):
        kwargs["foreach"] = False
        init(self, *args, **kwargs)
    return loop


def test_resume_refuses_another_configuration(tmp_path):
    data = dict(train_dataset=ColourClips(64), val_dataset=None)
    fit(smoke(tmp_path, stop_after_steps=2), **data)
    with pytest.raises(CheckpointError, match=r"optim\.lr: checkpoint 0\.001 vs now 0\.01"):
        fit(smoke(tmp_path, **{"optim.lr": 0.01}), resume=True, **data)


def test_resume_follows_its_start_weights_when_they_move_but_not_other_weights(tmp_path):
    """A run that started from a weights file resumes after the file (a moved checkout, a copied
    run cache) lies elsewhere, exactly as if it had never stopped; other weights at the new place
    are another run."""
    from tsf.weights import save_pretrained
    from tsf.model import TimeSformer

    data = dict(train_dataset=ColourClips(64), val_dataset=None)
    start = smoke(tmp_path / "scratch")
    torch.manual_seed(5)
    save_pretrained(TimeSformer(start.model.replace(num_classes=len(ColourClips.classes))), tmp_path / "a" / "init")
    here, there = tmp_path / "a" / "init", tmp_path / "b" / "init"
    full = fit(smoke(tmp_path / "full", init=str(here), **{"optim.epochs": 2}), **data)
    part = fit(smoke(tmp_path / "part", init=str(here), stop_after_steps=3, **{"optim.epochs": 2}), **data)
    assert part.interrupted
    there.parent.mkdir()
    here.rename(there)
    rest = fit(smoke(tmp_path / "part", init=str(there), **{"optim.epochs": 2}), resume=True, **data)
    assert rest.steps == full.steps and losses(tmp_path / "part") == losses(tmp_path / "full")
    for key, value in weights(full.model).items():
        assert torch.equal(value, weights(rest.model)[key]), key
    fit(smoke(tmp_path / "other", init=str(there), stop_after_steps=3, **{"optim.epochs": 2}), **data)
    torch.manual_seed(6)
    save_pretrained(TimeSformer(start.model.replace(num_classes=len(ColourClips.classes))), there)  # other weights
    with pytest.raises(CheckpointError, match="init"):
        fit(smoke(tmp_path / "other", init=str(there), **{"optim.epochs": 2}), resume=True, **data)


def test_corrupt_checkpoint_is_a_clear_error_and_the_previous_is_kept(tmp_path, caplog):
    data = dict(train_dataset=ColourClips(64), val_dataset=None)
    fit(smoke(tmp_path, checkpoint_every=1, stop_after_steps=3), **data)
    good, bad = list_checkpoints(tmp_path)[-2:]
    state = bad / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{bad}: trainer_state.pt does not match"):
        fit(smoke(tmp_path), resume=bad, **data)  # asked for by name: a clear error
    assert good.is_dir()
    result = fit(smoke(tmp_path), resume=True, **data)  # the newest that verifies, saying which
    assert f"resuming from {good}, the newest checkpoint that verifies" in caplog.text
    assert result.steps == 8


KILL_WHILE_SAVING = textwrap.dedent("""
    import os, sys, torch
    sys.path.insert(0, {root!r})
    from tests.toy import ColourClips
    from tsf.train import apply_overrides, fit, train_preset
    import tsf.train.checkpoint as ck

    real_save, calls = torch.save, []
    def dying_save(obj, f, *a, **k):  # f: a path or an open file, as the checkpoint writer passes it
        calls.append(f)
        if len(calls) == 3:  # the third checkpoint: write half a file, then die
            if hasattr(f, "write"):
                f.write(b"half")
                f.flush()
            else:
                with open(f, "wb") as handle:
                    handle.write(b"half")
            os._exit(9)
        return real_save(obj, f, *a, **k)
    ck.torch.save = dying_save
    cfg = apply_overrides(train_preset("smoke"), {{"output_dir": {out!r}, "progress": False, "checkpoint_every": 1}})
    fit(cfg, train_dataset=ColourClips(64), val_dataset=None)
""")


@pytest.mark.slow  # a subprocess trains until killed
def test_a_process_killed_while_writing_a_checkpoint_loses_nothing(tmp_path):
    script = KILL_WHILE_SAVING.format(root=str(ROOT), out=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000001", "step-00000002"]
    assert list((tmp_path / "checkpoints").glob(".step-00000003.tmp-*")), "the half-written folder is hidden"
    model, state = load_checkpoint(latest_checkpoint(tmp_path))  # the previous one still loads
    assert state["step"] == 2
    result = fit(smoke(tmp_path, checkpoint_every=1), resume=True, train_dataset=ColourClips(64), val_dataset=None)
    assert result.steps == 8
    assert not list((tmp_path / "checkpoints").glob(".step-*")), "stale temporary folders are cleaned up"


SIGNAL_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from tests.toy import ColourClips
    from tsf.train import apply_overrides, fit, train_preset
    cfg = apply_overrides(train_preset("smoke"), {{"output_dir": {out!r}, "progress": False,
                                                   "optim.epochs": 400, "log_every": 1}})
    result = fit(cfg, train_dataset=ColourClips(64), val_dataset=None, resume=True)
    sys.exit(3 if result.interrupted else 0)
""")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_save_a_checkpoint_and_exit_cleanly(tmp_path, sig):
    script = SIGNAL_RUN.format(root=str(ROOT), out=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "metrics.jsonl"
    # the signal goes only once six steps are logged (the run's handlers are installed by then)
    wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 6, proc, 120,
             "six logged steps")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "saving a checkpoint" in err
    ckpt = latest_checkpoint(tmp_path)
    _, state = load_checkpoint(ckpt)
    logged = losses(tmp_path)
    assert state["step"] == logged[-1][0] >= 6  # the checkpoint is at the last logged step


@pytest.mark.slow
def test_two_gloo_processes_match_one_with_the_same_global_batch(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(ROOT)!r})
        torch.set_num_threads(1)
        from tests.toy import ColourClips
        from tsf.train import apply_overrides, fit, train_preset
        cfg = apply_overrides(train_preset("smoke"), {{"output_dir": sys.argv[1], "progress": False,
                                                       "optim.batch_size": int(sys.argv[2]), "optim.epochs": 1}})
        fit(cfg, train_dataset=ColourClips(64), val_dataset=ColourClips(16, 1))
    """))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one"), "16"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert one.returncode == 0, one.stderr
    # --standalone: the rendezvous store binds port 0 itself, so no port is picked, released and hoped for
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(tmp_path / "two"), "8"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr
    from safetensors.torch import load_file

    a = load_file(tmp_path / "one" / "model" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert [l for _, l in losses(tmp_path / "one")] == pytest.approx([l for _, l in losses(tmp_path / "two")], rel=1e-4)
    steps = [s for s, _ in losses(tmp_path / "two")]
    assert steps == list(range(1, len(steps) + 1)), "only rank 0 writes: every step logged once"


# -- evaluation -------------------------------------------------------------------------------

class FixedLogits(nn.Module):
    """A stand-in model whose logits are read from the clip itself: clip[c, 0, 0, 0] for class c."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"num_classes": num_classes})()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0, 0] + self.dummy


class Views(torch.utils.data.Dataset):
    """Videos of 3 views; each view alone may be wrong, their sum decides."""

    def __init__(self, items: list[tuple[list[list[float]], int]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        logits, label = self.items[i]
        views = torch.zeros(len(logits), 3, 1, 1, 1)
        views[:, :, 0, 0, 0] = torch.tensor(logits)
        return views, label, i


def test_multi_view_protocol_sums_the_logits_of_all_views(tmp_path):
    data = Views([
        ([[3, 0, 0], [0, 1, 0], [0, 1, 0]], 0),  # 1 of 3 views right; the sum says class 0: right
        ([[0, 0, 1], [0, 0, 1], [5, 0, 0]], 2),  # 2 of 3 views right; the sum says class 0: wrong
        ([[0, 2, 0], [0, 2, 0], [0, 2, 0]], 1),  # all right
    ])
    out = evaluate(FixedLogits(3), data, batch_size=2, progress=False, classes=["a", "b", "c"],
                   output=tmp_path / "eval.json")
    assert out["videos"] == 3 and out["views_per_video"] == 3
    assert out["top1"] == pytest.approx(2 / 3)
    assert out["clip_top1"] == pytest.approx(6 / 9)
    assert out["top5"] == 1.0
    assert out["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert out["per_class"] == {"a": 1.0, "b": 1.0, "c": 0.0}
    assert json.loads((tmp_path / "eval.json").read_text())["top1"] == out["top1"]


def test_evaluate_single_view_and_empty():
    model = FixedLogits(2)
    single = [(torch.tensor([1.0, 0.0]).view(2, 1, 1, 1), 0), (torch.tensor([0.0, 1.0]).view(2, 1, 1, 1), 0)]
    out = evaluate(model, single, progress=False)
    assert out["top1"] == 0.5 and out["views_per_video"] == 1 and out["per_class"] == {"0": 0.5, "1": None}
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [], progress=False)


# -- learning, and the command line on real video files ------------------------------------

@pytest.mark.slow  # a minute of training
def test_a_small_model_learns_the_synthetic_appearance_task(tmp_path):
    """Under a minute on CPU: held-out accuracy well above chance (10 classes: 0.1)."""
    cfg = smoke(tmp_path, **{"model.img_size": 32, "model.patch_size": 8, "model.num_frames": 4,
                             "data.task": "appearance", "data.train_samples": 2048, "data.val_samples": 200,
                             "optim.epochs": 6, "optim.batch_size": 32, "optim.lr": 2e-3})
    result = fit(cfg)
    assert result.model.config.num_classes == 10
    assert result.final["val_acc"] >= 0.3, result.history
    assert result.final["train_loss"] < result.history[0]["train_loss"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tsf", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.slow  # three subprocesses, mp4 files
def test_train_eval_predict_on_mp4_files_from_the_command_line(tmp_path):
    from tsf.data import make_synthetic

    videos = tmp_path / "videos"
    for split, num in (("train", 48), ("val", 12)):
        make_synthetic("appearance", videos, num=num, num_frames=8, size=32, split=split, progress=False)
    run = tmp_path / "run"
    sets = ["data.kind=kinetics", f"data.root={videos}", f"data.train_annotations={videos / 'train.txt'}",
            f"data.val_annotations={videos / 'val.txt'}", f"data.labels={videos / 'labels.json'}",
            "data.sampling=segment", "data.flip=false", "model.img_size=32", "model.patch_size=8",
            "model.num_frames=8", "optim.epochs=1", "optim.batch_size=8", "progress=false"]
    proc = run_cli("train", "--preset", "smoke", "--output", str(run), *[a for s in sets for a in ("--set", s)],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["steps"] == 6

    proc = run_cli("eval", str(run / "model"), "--clips", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((run / "model" / "eval.json").read_text())
    assert report["videos"] == 12 and report["views_per_video"] == 3  # segment sampling: 1 clip x 3 crops
    assert len(report["confusion"]) == 10 and sum(map(sum, report["confusion"])) == 12
    assert report["classes"][0] == "warm disk"

    clip = sorted((videos / "val").rglob("*.mp4"))[0]
    proc = run_cli("predict", str(run / "model"), str(clip), "--sampling", "segment", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(str(clip)) and "(3 views)" in lines[0]
    assert len(lines) == 6 and all(any(name in l for name in report["classes"]) for l in lines[1:])

    proc = run_cli("predict", str(run / "model"), str(tmp_path / "missing.mp4"), cwd=tmp_path)
    assert proc.returncode == 2 and "missing.mp4" in proc.stderr and "Traceback" not in proc.stderr


def test_a_seeded_item_draws_as_under_torch_manual_seed_and_leaves_the_callers_generators():
    """SeededDataset seeds torch's CPU generator alone (torch.manual_seed also queues accelerator seeds,
    which costs a stack trace per item where CUDA is not initialised): the items must not change."""
    import random

    import numpy as np

    from tsf.train.sampling import SeededDataset

    class Draws(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            return torch.rand(3), torch.randint(0, 100, (2,)), random.random(), float(np.random.rand())

    def by_torch_manual_seed(seed):  # the former implementation
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % (1 << 32))
            try:
                return Draws()[0]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)

    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    before = torch.rand(1), random.random(), np.random.rand()
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    for seed in (0, 12345, 2**40 + 3):
        got, want = SeededDataset(Draws())[(1, seed)], by_torch_manual_seed(seed)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and got[2:] == want[2:]
    assert (torch.rand(1), random.random(), np.random.rand()) == before, "the caller's streams go on untouched"
