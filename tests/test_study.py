"""Study building blocks: the mirror-pair metric, the run cache, summaries, calibration."""

from __future__ import annotations

import json
from dataclasses import replace

import pandas as pd
import pytest
import torch

from tsf.model import TimeSformer, randomise_zero_inits
from tsf.study import setup
from tsf.study.calibration import calibrate
from tsf.study.metrics import pair_accuracy
from tsf.study.presets import study_preset
from tsf.study.report import Output, write_summary
from tsf.study.runs import Runs, config_key, legacy_config_key
from tsf.weights.io import weights_fingerprint


def test_pair_accuracy_compares_each_class_with_its_twin_only():
    pairs = [(0, 1), (2, 3)]
    logits = torch.tensor([[2.0, 1.0, 9.0, 0.0],   # label 0: beats twin 1 (class 2 is irrelevant)
                           [2.0, 1.0, 0.0, 0.0],   # label 1: loses to twin 0
                           [0.0, 0.0, 1.0, 3.0],   # label 2: loses to twin 3
                           [0.0, 9.0, 1.0, 3.0]])  # label 3: beats twin 2
    assert pair_accuracy(logits, torch.tensor([0, 1, 2, 3]), pairs) == 0.5
    assert pair_accuracy(logits[[0, 3]], torch.tensor([0, 3]), pairs) == 1.0
    with pytest.raises(ValueError, match="mirror pair"):
        pair_accuracy(logits[:1], torch.tensor([7]), pairs)


def test_config_key_ignores_logging_but_not_what_a_run_computes():
    study = study_preset("smoke")
    a = study.train_config("motion", "divided", 0)
    assert config_key(a) == config_key(a.__class__.from_dict({**a.to_dict(), "output_dir": "x", "progress": False}))
    assert config_key(a) != config_key(study.train_config("motion", "divided", 1))
    assert config_key(a) != config_key(study.train_config("motion", "joint", 0))
    assert study.with_seed(5).seeds == (5,) and study_preset("cpu").with_seed(3).seeds == (3, 4)
    mirrored = replace(a, data=replace(a.data, mirrored_val=True))
    assert config_key(mirrored) != config_key(a), "another held-out set is another run"
    assert config_key(a) == config_key(replace(a, data=replace(a.data, mirrored_val=False)))
    assert "mirrored_val" in a.to_dict()["data"], "the field is in the config (the key leaves it out when unset)"


def test_the_pool_starts_the_longest_runs_first(tmp_path, monkeypatch):
    """Two workers: the runs go out longest first, so a long one never starts while the other worker idles."""
    import concurrent.futures

    import tsf.study.runs as runs_module

    started = []

    class InlinePool:  # the pool's interface, running each job at once in this process
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, config_json, name, threads, curve_every):
            started.append(name)
            future = concurrent.futures.Future()
            future.set_result(str(tmp_path))
            return future

    monkeypatch.setattr(runs_module, "ProcessPoolExecutor", InlinePool)
    monkeypatch.setattr(runs_module.Runs, "_record", lambda self, name, cfg: None if len(started) < 3 else "done")
    study = study_preset("smoke")
    specs = {f"n{n}": study.train_config("motion", "divided", 0, train_samples=n) for n in (64, 256, 128)}
    runs_module.Runs(tmp_path, workers=2, progress=False).get(specs)
    assert started == ["n256", "n128", "n64"]


def test_an_order_blind_model_scores_exactly_chance_on_the_controls_held_out_pairs():
    from tsf.data.synthetic import SyntheticVideos
    from tsf.study.control import control_config
    from tsf.study.metrics import predict_logits, scores_on

    cfg = control_config(study_preset("smoke"), "divided", 0, pos_embed="space")
    assert cfg.data.mirrored_val and cfg.model.pos_embed == "space" and cfg.model.time_embed_init != "zeros"
    val = SyntheticVideos("ramp", 64, num_frames=4, size=16, split="val", mirrored=True)
    torch.manual_seed(0)
    blind = TimeSformer(cfg.model).eval()
    randomise_zero_inits(blind, std=0.5)
    torch.nn.init.normal_(blind.head.weight, std=1.0)
    logits, _ = predict_logits(blind, val, cfg)
    with torch.no_grad():  # centred: it answers "brightening" for about half the clips, not for all
        blind.head.bias[1] -= (logits[:, 1] - logits[:, 0]).median() + 1e-3
    scores = scores_on(blind, val, cfg)
    assert scores["val_acc"] == 0.5 and scores["pair_acc"] == 0.5, "one clip of each pair right, whatever the weights"
    logits, _ = predict_logits(blind, val, cfg)
    predicted = logits.argmax(1)
    assert min((predicted == 0).sum(), (predicted == 1).sum()) >= 8, "not a model that answers one class throughout"
    assert torch.allclose(logits[0::2], logits[1::2], atol=1e-5), "blind: a clip and its reversal score the same"


@pytest.mark.slow  # study runs
def test_runs_are_trained_once_and_reused(tmp_path):
    study, runs, out = setup("smoke", 0, str(tmp_path / "figures"), str(tmp_path / "runs"), progress=False)
    spec = {"one": study.train_config("appearance", "space", 0)}
    first = runs.get(spec)["one"]
    stamp = (first.run_dir / "study.json").stat().st_mtime_ns
    again = runs.get(spec)["one"]
    assert (again.run_dir / "study.json").stat().st_mtime_ns == stamp, "a cached run is not trained again"
    assert again.scores == first.scores and {"val_acc", "chance", "steps", "train_seconds"} <= set(again.scores)
    assert again.load_model().config == again.config.model


def test_summary_gathers_sections_in_study_order(tmp_path):
    out = Output.create(tmp_path, "cpu")
    out.summary("cost", "Cost", [{"what": "a", "ours": "1", "paper": "1", "verdict": "yes"}])
    out.summary("table1", "Table 1", [{"what": "b", "ours": "2", "paper": "3"}], note="a note")
    text = write_summary(tmp_path).read_text()
    assert text.index("## Table 1") < text.index("## Cost") and "a note" in text
    assert "| a | 1 | 1 | yes |" in text and "| b | 2 | 3 |" in text
    assert "Generated by the notebooks (`make reproduce`)" in text
    alone = Output.create(tmp_path / "calibration", "cpu")  # a folder that only `calibrate` wrote says so
    alone.summary("calibration", "Calibration", [{"what": "c", "ours": "4", "paper": "-"}])
    assert "Generated by `python -m tsf calibrate`" in write_summary(alone.folder).read_text()


@pytest.mark.slow  # the calibration runs
def test_calibration_writes_its_evidence(tmp_path):
    from tsf.study.calibration import CALIBRATION_SEEDS, steps

    study, runs, out = setup("smoke", 0, str(tmp_path / "figures"), str(tmp_path / "runs"), progress=False)
    assert min(CALIBRATION_SEEDS) >= 100 and not set(CALIBRATION_SEEDS) & set(study_preset("cpu").seeds)
    cpu = study_preset("cpu")
    ladder = steps(cpu)
    kept = [s for s in ladder if s.kept]
    assert len(kept) == 1 and (kept[0].frames, kept[0].design, kept[0].time_embed_init, kept[0].epochs) == (
        cpu.num_frames, cpu.motion_design, cpu.time_embed_init, cpu.motion_epochs), "the kept step is the cpu preset's"
    assert kept[0].optim["batch_size"] == cpu.batch_size, "the kept step trains with the preset's batch"
    assert ladder[0].time_embed_init == "zeros" and ladder[0].design == "fine", "it starts from the first study's"
    frame = calibrate(study, runs, out, seeds=(100,), only=("first",))
    assert list(frame.scheme) == ["divided", "space"] and set(frame.seed) == {100}
    assert frame.pair_acc.between(0, 1).all() and {"pair_right", "pair_appearing"} <= set(frame.columns)
    saved = pd.read_csv(out.folder / "calibration.csv")
    assert saved.run.tolist() == frame.run.tolist()
    lines = json.loads((out.folder / "calibration.summary.json").read_text())["lines"]
    assert lines[0]["what"] == "the set-up the rule picks from these runs"


def test_the_calibration_rule_picks_the_cheapest_setup_that_reads_motion():
    from tsf.study.calibration import choose

    def rows(step, macs, start, divided, space=None, task="motion", model="small", **others):
        common = dict(step=step, task=task, model=model, train_macs=macs, time_embed_init=start)
        out = [dict(common, scheme="divided", pair_acc=p, val_acc=p) for p in divided]
        out += [dict(common, scheme="space", pair_acc=p, val_acc=p) for p in space or []]
        return out + [dict(common, scheme=k, pair_acc=p, val_acc=p) for k, ps in others.items() for p in ps]

    frame = pd.DataFrame(rows("first", 8, "zeros", [0.5, 0.52], [0.5, 0.5]) + rows("study", 4, "sinusoidal",
                         [0.9, 0.88], [0.51, 0.49]) + rows("zeros", 4, "zeros", [0.9, 0.80]))
    assert choose(frame) == "study", "zeros misses 85% in one seed"
    frame.loc[(frame.step == "zeros") & (frame.pair_acc == 0.80), "pair_acc"] = 0.86
    assert choose(frame) == "zeros", "as cheap and closer to the authors"
    cheap = rows("cheap", 2, "sinusoidal", [0.9, 0.9], [0.5, 0.5], model="compact", axial=[0.74, 0.68])
    spread = rows("cheap", 2, "sinusoidal", [0.95, 0.95], task="appearance", model="compact", joint=[0.9, 0.9])
    assert choose(pd.concat([frame, pd.DataFrame(cheap + spread)])) == "cheap", "the fewest multiply-adds"
    cheap[-1]["pair_acc"] = 0.6  # Axial's mean falls below 70%
    assert choose(pd.concat([frame, pd.DataFrame(cheap + spread)])) == "zeros"
    cheap[-1]["pair_acc"] = 0.7
    spread[-1]["val_acc"] = 0.7  # appearance 15 points apart
    assert choose(pd.concat([frame, pd.DataFrame(cheap + spread)])) == "zeros"
    for row in spread:
        row["step"] = "other"  # another step's appearance runs do not count for it
    assert choose(pd.concat([frame, pd.DataFrame(cheap + spread)])) == "cheap"
    frame.loc[frame.scheme == "divided", "pair_acc"] = 0.6
    assert choose(frame) is None


def test_the_calibration_says_where_a_setup_misses_the_rule():
    from tsf.study.calibration import misses

    def row(scheme, acc, task="motion", seed=0):
        return dict(step="s", task=task, model="compact", scheme=scheme, seed=seed, pair_acc=acc, val_acc=acc,
                    train_macs=1, time_embed_init="sinusoidal")

    frame = pd.DataFrame([row("divided", 0.9), row("divided", 0.84, seed=1), row("space", 0.6), row("axial", 0.65),
                          row("joint", 0.95), row("divided", 0.95, "appearance"), row("local_global", 0.8, "appearance")])
    assert misses(frame, "s") == ["Divided pair accuracy 84.0 in a seed (85 needed)", "Space off chance (60.0-60.0)",
                                  "axial pair accuracy 65.0 (70 needed)",
                                  "appearance spread 15.0 points (local_global lowest; 10 allowed)"]
    good = frame.assign(pair_acc=[0.9, 0.86, 0.52, 0.75, 0.95, None, None],
                        val_acc=[0.9, 0.86, 0.52, 0.75, 0.95, 0.95, 0.9])
    assert misses(good, "s") == []


def test_table4_claim_needs_the_contrast_with_and_without_time():
    from tsf.study.experiments import time_embedding_verdict

    assert time_embedding_verdict(0.51, 0.90) == "yes"
    assert time_embedding_verdict(0.51, 0.72) == "no", "learned some, short of the 85% the claim needs"
    assert time_embedding_verdict(0.62, 0.90) == "no"  # order-blind yet above chance: something is wrong
    assert time_embedding_verdict(0.52, 0.51).startswith("not tested")


@pytest.mark.slow  # two study runs
def test_a_curve_run_ends_exactly_where_an_uninterrupted_run_does(tmp_path):
    """The learning curve trains in stretches through checkpoints; resume is exact, so the run's
    weights and history are those of the same run trained in one go."""
    from tsf.study.runs import Runs

    study = study_preset("smoke")
    spec = {"m": study.train_config("motion", "divided", 0)}
    plain = Runs(tmp_path / "plain", progress=False).get(spec)["m"]
    curved = Runs(tmp_path / "curved", progress=False, curve_every=3).get(spec)["m"]
    steps = plain.scores["steps"]
    assert [p["step"] for p in curved.curve] == [0, 3, 6, steps][: len(curved.curve)] and curved.curve[-1]["step"] == steps
    assert all(0 <= p["pair_acc"] <= 1 for p in curved.curve) and not plain.curve
    a, b = plain.load_model().state_dict(), curved.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    untimed = lambda history: [{k: v for k, v in h.items() if k != "epoch_time"} for h in history]  # noqa: E731
    assert curved.scores["val_acc"] == plain.scores["val_acc"] and untimed(curved.history) == untimed(plain.history)


def test_a_curve_run_makes_each_training_clip_once_across_its_stretches(tmp_path, monkeypatch):
    from tsf.data.synthetic import SyntheticVideos
    from tsf.study.runs import Runs

    made = []
    sample = SyntheticVideos.sample

    def counted(self, index, **kwargs):
        made.append((self.split, index))
        return sample(self, index, **kwargs)

    monkeypatch.setattr(SyntheticVideos, "sample", counted)
    study = study_preset("smoke")
    config = study.train_config("motion", "divided", 0)
    per_epoch = config.data.train_samples // config.optim.batch_size
    record = Runs(tmp_path, progress=False, curve_every=per_epoch).get({"m": config})["m"]
    assert len(record.curve) == config.optim.epochs + 1, "one stretch per epoch"
    train = [index for split, index in made if split == "train"]
    assert sorted(train) == list(range(config.data.train_samples)), "each clip made once, kept after"


def test_setup_shares_the_run_cache_with_reproduce_and_writes_to_scratch(tmp_path):
    from tsf.study import ROOT, default_runs_dir

    study, runs, out = setup("smoke", progress=False)
    assert runs.root == default_runs_dir("smoke") == ROOT / "runs" / "smoke"
    assert out.folder == ROOT / "runs" / "smoke" / "figures", "a notebook run by hand never writes figures/"
    study, runs, out = setup("smoke", 0, str(tmp_path / "f"), str(tmp_path / "r"), progress=False)
    assert (runs.root, out.folder) == (tmp_path / "r", tmp_path / "f")


def test_smoke_summary_says_it_only_checks_that_everything_runs(tmp_path):
    for preset in ("smoke", "cpu"):
        out = Output.create(tmp_path / preset, preset)
        out.summary("table1", "Table 1", [{"what": "a", "ours": "1", "paper": "1", "verdict": "yes"}])
        text = write_summary(out.folder).read_text()
        if preset == "smoke":
            assert "only check that every notebook runs" in text.splitlines()[2] and "agrees?" not in text
            assert "| a | 1 | 1 |" in text
        else:
            assert "only check" not in text and "| a | 1 | 1 | yes |" in text


def test_order_control_verdicts_need_every_seed():
    from tsf.study.control import control_verdict

    assert control_verdict("divided", True, 0.96, 1.0) == "yes"
    assert control_verdict("joint", True, 0.60, 1.0) == "no", "one seed at chance fails the control"
    assert control_verdict("space", True, 0.47, 0.53) == "yes"
    assert control_verdict("divided", False, 0.50, 0.58) == "no", "order-blind yet above chance"


@pytest.mark.slow  # three control runs
def test_order_control_runs_through_the_cache_at_the_preset(tmp_path):
    from tsf.study.control import control_config, order_control

    study, runs, out = setup("smoke", 0, str(tmp_path / "f"), str(tmp_path / "r"), progress=False)
    cfg = control_config(study, "divided", 0)
    assert (cfg.data.task, cfg.data.train_samples, cfg.optim.epochs) == ("ramp", study.control_samples,
                                                                         study.control_epochs)
    assert cfg.model.time_embed_init_std == study.time_embed_init_std
    table = order_control(study, runs, out, schemes=("space", "divided"))
    assert len(table) == 3 and (tmp_path / "f" / "order_control.csv").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "r").glob("ramp-*/study.json")}
    assert len(stamps) == 3
    order_control(study, runs, out, schemes=("space", "divided"))
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "r").glob("ramp-*/study.json")}, "cached"


def test_figure5_verdict_needs_a_rise_that_reaches_the_ceiling():
    from tsf.study.experiments import frames_verdict

    table = lambda acc, ceiling: pd.DataFrame({"val_acc": acc, "ceiling": ceiling})  # noqa: E731
    assert frames_verdict(table([0.55, 0.7, 0.9, 0.97], [0.65, 0.8, 0.95, 1.0])) == "yes"
    assert frames_verdict(table([0.55, 0.7, 0.9, 0.93], [0.65, 0.8, 0.95, 1.0])) == "no", "short of the ceiling"
    assert frames_verdict(table([0.55, 0.8, 0.7, 0.97], [0.65, 0.8, 0.95, 1.0])) == "no", "falls on the way"
    assert frames_verdict(table([0.85, 0.9, 0.95, 0.97], [0.9, 0.95, 0.98, 1.0])) == "no", "no rise to speak of"


def test_the_calibration_ladder_keeps_the_batch_each_step_was_run_with():
    """Every step but the half-clips alternative trained at batch 32 with one epoch of warmup, and
    stays so whatever the preset's batch; that alternative takes the study's optimiser steps and
    warmup steps on half the clips."""
    from dataclasses import replace

    from tsf.study.calibration import BATCH_32, calibration_runs, step_config, steps
    from tsf.study.runs import optimiser_steps

    cpu = study_preset("cpu")
    for preset in (cpu, replace(cpu, batch_size=64, warmup_epochs=2.0)):
        ladder = {s.name: s for s in steps(preset)}
        assert {n for n, s in ladder.items() if s.optim != BATCH_32} == {"half"}
        for name, step in ladder.items():
            if name != "half":
                assert step_config(preset, step, "divided", 100, "").optim.batch_size == 32, name
    ladder = {s.name: s for s in steps(cpu)}
    study, half = (step_config(cpu, ladder[n], "divided", 100, "") for n in ("epochs", "half"))
    assert (study.optim.batch_size, study.optim.epochs) == (cpu.batch_size, cpu.motion_epochs), "the preset's own"
    assert optimiser_steps(study) == optimiser_steps(half) == 768
    clips = [c.optim.epochs * c.data.train_samples for c in (half, study)]
    assert 2 * clips[0] == clips[1], "half the clips"
    per_epoch = [c.data.train_samples // c.optim.batch_size for c in (half, study)]
    assert half.optim.warmup_epochs * per_epoch[0] == study.optim.warmup_epochs * per_epoch[1], "same warmup steps"
    with pytest.raises(ValueError, match="unknown calibration steps"):
        calibration_runs(cpu, None, only=("nonsense",))


def test_make_calibrate_runs_the_kept_step_by_default():
    """The default calibration includes the study's own set-up (the rule must be able to pick it)
    and names only steps of the ladder."""
    from tsf.study.calibration import DEFAULT_STEPS, steps
    ladder = steps(study_preset("cpu"))
    assert set(DEFAULT_STEPS) <= {s.name for s in ladder}
    assert next(s.name for s in ladder if s.kept) in DEFAULT_STEPS
    from tsf.__main__ import build_parser
    calibrate_help = next(a for a in build_parser()._subparsers._group_actions[0].choices["calibrate"]._actions
                          if a.dest == "steps").help
    assert f"(default: {' '.join(DEFAULT_STEPS)})" in calibrate_help, "the command line says what runs by default"


def _table1_frames(seeds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1's frames as the study builds them, made up: the last scheme (Axial) tallest on every panel."""
    from tsf.config import ATTENTION_SCHEMES

    runs, rows = [], []
    for i, scheme in enumerate(ATTENTION_SCHEMES):
        row = {"scheme": scheme}
        for task, chance in (("appearance", 0.1), ("motion", 0.125)):
            accs = [0.3 + 0.15 * i + 0.01 * s for s in range(seeds)]
            pairs = [0.45 + 0.1 * i + 0.01 * s for s in range(seeds)]
            runs += [{"task": task, "scheme": scheme, "seed": s, "val_acc": a, "pair_acc": p, "chance": chance}
                     for s, (a, p) in enumerate(zip(accs, pairs))]
            row[f"{task}_acc"], row[f"{task}_acc_std"] = pd.Series(accs).mean(), pd.Series(accs).std()
            if task == "motion":
                row["motion_pair_acc"], row["motion_pair_acc_std"] = pd.Series(pairs).mean(), pd.Series(pairs).std()
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(runs)


@pytest.mark.parametrize("preset", ["smoke", "cpu"])
def test_table1_figure_says_its_seeds_and_labels_chance_off_the_bars(preset, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle

    from tsf.study.experiments import table1_figure

    study = study_preset(preset)
    table, per_run = _table1_frames(len(study.seeds))
    fig = table1_figure(table, per_run, study)
    renderer = fig.canvas.get_renderer()
    fig.canvas.draw()
    ylabel = fig.axes[0].get_ylabel()
    if len(study.seeds) == 1:
        assert "1 seed)" in ylabel and "seeds" not in ylabel and "±" not in ylabel
    else:
        assert f"mean ± std over {len(study.seeds)} seeds" in ylabel
    for ax in fig.axes:
        labels = [t for t in ax.texts if t.get_text() == "chance"]
        assert len(labels) == 1
        box = labels[0].get_window_extent(renderer)
        assert box.x0 >= ax.get_window_extent(renderer).x1, "the label sits right of the panel"
        bars = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(bars) == len(table)
        assert not any(box.overlaps(bar.get_window_extent(renderer)) for bar in bars)
        others = [a for a in fig.axes if a is not ax]
        assert not any(box.overlaps(a.get_window_extent(renderer)) for a in others), "nor on the next panel"
        line_y = ax.transData.transform((0, ax.lines[-1].get_ydata()[0]))[1]
        assert box.y0 <= line_y <= box.y1, "beside its line"
    Output.create(tmp_path, preset).figure("table1", fig)
    assert (tmp_path / "table1.png").stat().st_size > 10_000


def test_quickstart_figure_draws_every_step_of_a_short_run(tmp_path):
    """At smoke the quickstart model trains 8 steps: the study logs each one (log_every=1), so the
    training curves have a point per step, and the held-out curve is drawn where the run has one."""
    import matplotlib

    matplotlib.use("Agg")
    from tsf.study.quickstart import plot_training
    from tsf.study.runs import RunRecord

    study = study_preset("smoke")
    config = study.train_config("motion", "divided", 0)
    assert config.log_every == 1
    steps = (study.train_samples // study.batch_size) * study.motion_epochs
    lines = [{"event": "step", "step": k, "epoch": 0, "loss": 2.0 - 0.1 * k, "acc": 0.1} for k in range(1, steps + 1)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    curve = [{"step": k, "val_acc": 0.2, "pair_acc": 0.5} for k in range(0, steps + 1, study.curve_every)]
    record = RunRecord("motion-divided-s0", config, tmp_path, [], {"val_acc": 0.2, "chance": 0.125, "steps": steps,
                                                                   "train_seconds": 9.0}, curve)
    fig = plot_training(record)
    loss, acc = fig.axes
    assert len(loss.lines[0].get_xdata()) == steps >= 8
    assert [len(line.get_xdata()) for line in acc.lines[:3]] == [steps, len(curve), len(curve)]
    matplotlib.pyplot.close(fig)


def test_the_cache_counts_only_finished_runs(tmp_path):
    from tsf.study.runs import Runs

    assert Runs(tmp_path / "absent").finished() == 0
    (tmp_path / "done-abc").mkdir()
    (tmp_path / "done-abc" / "study.json").write_text("{}")
    (tmp_path / "interrupted-def").mkdir()  # a run with no scores yet: trained again by get
    (tmp_path / "notebooks").mkdir()
    assert Runs(tmp_path).finished() == 1


def test_a_runs_key_counts_its_start_weights_by_content_not_by_where_they_lie(tmp_path):
    study = study_preset("smoke")
    here, there = tmp_path / "a" / "vit.safetensors", tmp_path / "b" / "moved.safetensors"
    for path in (here, there):
        path.parent.mkdir()
        path.write_bytes(b"the same weights")
    a, b = study.train_config("motion", "divided", 0, init=str(here)), study.train_config("motion", "divided", 0,
                                                                                          init=str(there))
    assert config_key(a) == config_key(b), "a moved checkout or a copied cache keeps its runs"
    there.write_bytes(b"other weights")
    assert config_key(a) != config_key(b), "other start weights are another run"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"the same weights")
    assert weights_fingerprint(folder).startswith("sha256:"), "a folder counts its files by name too"
    assert weights_fingerprint(folder) != weights_fingerprint(here)
    assert weights_fingerprint("<image model>") == "<image model>", "a placeholder (the plan's) is its own string"
    assert config_key(study.train_config("motion", "divided", 0)) == legacy_config_key(
        study.train_config("motion", "divided", 0)), "runs from scratch keep the key they had"


def test_a_run_cached_under_the_former_key_is_adopted(tmp_path):
    study = study_preset("smoke")
    init = tmp_path / "vit.safetensors"
    init.write_bytes(b"weights")
    config = study.train_config("motion", "divided", 0, init=str(init))
    runs = Runs(tmp_path / "runs", progress=False)
    old = tmp_path / "runs" / f"motion-divided-s0-{legacy_config_key(config)}"
    old.mkdir(parents=True)
    (old / "study.json").write_text("{}")
    new = runs.path("motion-divided-s0", config)
    assert new.name == f"motion-divided-s0-{config_key(config)}" and new != old
    assert (new / "study.json").is_file() and not old.exists()
    assert runs.path("motion-divided-s0", config) == new, "and found there from then on"


def test_a_copied_run_cache_is_found_where_it_was_copied_to(tmp_path, monkeypatch):
    """The runs that start from the image model are found in a cache copied elsewhere (a moved
    checkout), although the image model's path in their configs is another one."""
    import shutil

    import tsf.study.runs as runs_module
    from tsf.study.pretrain import image_model

    study = study_preset("smoke")

    def motion_run(root):
        runs = Runs(root, progress=False)
        config = study.train_config("motion", "space", 0, init=image_model(study, runs))
        return runs, {"motion-space-s0": config}

    runs, specs = motion_run(tmp_path / "here")
    trained = runs.get(specs)["motion-space-s0"]
    shutil.copytree(tmp_path / "here", tmp_path / "there")
    shutil.rmtree(tmp_path / "here")
    monkeypatch.setattr(runs_module, "_run_one", lambda *a, **k: pytest.fail("a cached run was trained again"))
    runs, specs = motion_run(tmp_path / "there")
    found = runs.get(specs)["motion-space-s0"]
    assert found.run_dir.parent == tmp_path / "there" and found.run_dir.name == trained.run_dir.name
    assert found.scores == trained.scores
