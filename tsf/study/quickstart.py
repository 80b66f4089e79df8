"""The quickstart notebook's steps: a model and its cost, a short training run, predictions."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial

import pandas as pd
import torch

from ..config import ATTENTION_SCHEMES, TimeSformerConfig
from ..cost import cost_row
from ..data.synthetic import SyntheticVideos
from .presets import StudyPreset
from .pretrain import image_model
from .report import Output
from .runs import RunRecord, Runs, Specs


def model_card(config: TimeSformerConfig, views: int = 3) -> pd.DataFrame:
    """Parameters and inference cost of ``config`` under every scheme (the row of ``config``'s first)."""
    schemes = [config.attention] + [s for s in ATTENTION_SCHEMES if s != config.attention]
    return pd.DataFrame([cost_row(config.replace(attention=s), views=views) for s in schemes])


def quickstart_specs(study: StudyPreset, image: Callable[..., str], attention: str = "divided") -> Specs:
    """The quickstart's run: Table 1's motion run of ``attention`` at the first seed."""
    seed = study.seeds[0]
    name = f"motion-{attention}-s{seed}"
    return {name: study.train_config("motion", attention, seed, init=image())}, {name: {}}


def train_motion_model(study: StudyPreset, runs: Runs, attention: str = "divided") -> RunRecord:
    """A model trained on the motion task with the study's recipe: Table 1's run for seed 0, so
    the schemes notebook reuses it."""
    specs, _ = quickstart_specs(study, partial(image_model, study, runs), attention)
    return next(iter(runs.get(specs, desc="quickstart").values()))


def plot_training(record: RunRecord, out: Output | None = None, name: str = "quickstart_training"):
    """Loss and accuracy per logged step, with the held-out scores along the run (its learning
    curve, where the run recorded one) and at its end."""
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    lines = [json.loads(line) for line in (record.run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["event"] == "step"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    a.plot([r["step"] for r in steps], [r["loss"] for r in steps], marker="." if len(steps) < 30 else None)
    a.set_xlabel("optimiser step")
    a.set_ylabel("training loss (per batch)")
    b.plot([r["step"] for r in steps], [r["acc"] for r in steps], color="0.6", lw=0.8, label="training batch top-1")
    if record.curve:
        curve_steps = [p["step"] for p in record.curve]
        b.plot(curve_steps, [p["val_acc"] for p in record.curve], marker="o", ms=3, color="C0", label="held-out top-1")
        if "pair_acc" in record.curve[0]:
            b.plot(curve_steps, [p["pair_acc"] for p in record.curve], marker="o", ms=3, color="C3",
                   label="held-out pair accuracy")
    else:
        b.axhline(record.scores["val_acc"], color="C0", ls="--", label="held-out top-1, end of training")
    b.axhline(record.scores["chance"], color="0.5", ls=":", label="chance (top-1)")
    b.set_xlabel("optimiser step")
    b.set_ylabel("accuracy")
    b.set_ylim(0, 1.02)
    b.legend(fontsize=7)
    cfg = record.config
    fig.suptitle(f"{cfg.model.attention} attention on the {cfg.data.task} task: {cfg.optim.epochs} epochs of "
                 f"{cfg.data.train_samples} clips, {record.scores['steps']} steps "
                 f"({record.scores['train_seconds']:.0f} s)", fontsize=10)
    fig.tight_layout()
    if out is not None:
        out.figure(name, fig)
    return fig


@torch.no_grad()
def predict_examples(study: StudyPreset, record: RunRecord, out: Output | None = None, count: int = 6,
                     name: str = "quickstart_predictions") -> pd.DataFrame:
    """Top-3 predictions on held-out clips, with a strip of each clip's frames."""
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    model = record.load_model()
    cfg = record.config
    data = SyntheticVideos(cfg.data.task, count, num_frames=cfg.model.num_frames, size=cfg.model.img_size,
                           seed=cfg.data.seed, split="val", source_frames=cfg.data.source_frames,
                           design=cfg.data.design)
    rows = []
    fig, axes = plt.subplots(count, cfg.model.num_frames, figsize=(1.1 * cfg.model.num_frames, 1.25 * count),
                             squeeze=False)
    for i in range(count):
        clip, label = data[i]
        probs = model(clip[None]).softmax(-1)[0]
        top = probs.topk(3)
        guesses = [(data.classes[j], float(p)) for p, j in zip(top.values, top.indices)]
        rows.append({"clip": i, "true": data.classes[label], "predicted": guesses[0][0], "p": guesses[0][1],
                     "2nd": guesses[1][0], "3rd": guesses[2][0], "correct": guesses[0][0] == data.classes[label]})
        frames = data.sample(i).frames
        for t in range(cfg.model.num_frames):
            ax = axes[i, t]
            ax.imshow(frames[t].numpy())
            ax.axis("off")
        mark = "✓" if rows[-1]["correct"] else "✗"
        axes[i, 0].set_title(f"{mark} true: {rows[-1]['true']}; predicted: {guesses[0][0]} ({guesses[0][1]:.0%})",
                             fontsize=8, loc="left")
    fig.tight_layout()
    if out is not None:
        out.figure(name, fig)
    return pd.DataFrame(rows)
