"""The study's experiments: one function per table or figure of the paper.

Each function trains what it needs through the shared run cache (``Runs``), writes its
table, figure and summary lines into an ``Output`` folder, and returns the table. The
synthetic tasks stand in for the datasets: *appearance* for Kinetics-400 (a single frame
tells the class) and *motion* for Something-Something-V2 (only the order of the frames
does: every class has a mirror twin made of the same frames reversed).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..attention import SCHEMES
from ..config import ATTENTION_SCHEMES, preset
from ..cost import count_macs, count_params
from ..data.synthetic import cue_visibility
from . import paper
from .presets import StudyPreset
from .pretrain import image_model
from .report import Output
from .runs import CURVE_CLIPS, Runs

TITLES = {name: scheme.title for name, scheme in SCHEMES.items()}
#: the criteria of the claims' verdicts: "at chance" within 5 points of a pair's 50%, "learned" at 60% or more
CHANCE_MARGIN = 0.05
LEARNED_PAIR_ACC = 0.6

TASK_TITLES = {"appearance": "appearance (Kinetics-like)", "motion": "motion (SSv2-like)",
               "long_range": "long-range order"}


def _mean_std(values: pd.Series) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _pct(mean: float, std: float | None = None) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std else "")


def _task_columns(runs: pd.DataFrame, paper_row: dict[str, float]) -> dict[str, Any]:
    """Mean and std of the held-out accuracy per task (and the motion pair accuracy) of some runs,
    beside the paper's number for the dataset the task stands in for."""
    row: dict[str, Any] = {}
    for task, dataset in (("appearance", "k400"), ("motion", "ssv2")):
        part = runs[runs.task == task]
        row[f"{task}_acc"], row[f"{task}_acc_std"] = _mean_std(part.val_acc)
        if task == "motion":
            row["motion_pair_acc"], row["motion_pair_acc_std"] = _mean_std(part.pair_acc)
        row[f"paper_{dataset}"] = paper_row[dataset]
    return row


def run_rows(records: dict[str, Any], **columns: Any) -> list[dict[str, Any]]:
    rows = []
    for name, record in records.items():
        s = record.scores
        rows.append({"run": name, **columns.get(name, {}), "val_acc": s["val_acc"], "pair_acc": s.get("pair_acc"),
                     "chance": s["chance"], "train_acc": s.get("train_acc"), "steps": s["steps"],
                     "train_seconds": s["train_seconds"]})
    return rows


# -- Table 1: the five schemes on both tasks ------------------------------------------------

def scheme_runs(study: StudyPreset, runs: Runs, tasks: tuple[str, ...] = ("appearance", "motion"),
                schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> pd.DataFrame:
    """Train (or fetch) every scheme x task x seed; one row per run."""
    specs, meta = {}, {}
    init = image_model(study, runs)
    for task in tasks:
        for scheme in schemes:
            for seed in study.seeds:
                name = f"{task}-{scheme}-s{seed}"
                specs[name] = study.train_config(task, scheme, seed, init=init)
                meta[name] = {"task": task, "scheme": scheme, "seed": seed}
    return pd.DataFrame(run_rows(runs.get(specs, desc="Table 1"), **meta))


def table1(study: StudyPreset, runs: Runs, out: Output) -> pd.DataFrame:
    """Table 1: parameters at ViT-B/16 (exact) and accuracy of the five schemes on both tasks."""
    per_run = scheme_runs(study, runs)
    out.table("table1_runs", per_run)
    rows = []
    for scheme in ATTENTION_SCHEMES:
        rows.append({"scheme": scheme, "title": TITLES[scheme],
                     "params_vit_b": count_params(preset("base", attention=scheme, num_classes=174)),
                     "paper_params_m": paper.TABLE1[scheme]["params_m"],
                     "params_study_model": count_params(preset(study.model, attention=scheme)),
                     **_task_columns(per_run[per_run.scheme == scheme], paper.TABLE1[scheme])})
    table = pd.DataFrame(rows)
    out.table("table1", table)
    _plot_table1(table, per_run, study, out)
    out.summary("table1", "Table 1: attention schemes", _table1_lines(table, per_run), note=(
        f"Accuracy on held-out synthetic clips, mean ± std over {len(study.seeds)} seed(s), '{study.model}' model "
        f"inflated from the same image model (the ImageNet stand-in) and fine-tuned with the same budget for every "
        f"scheme. Motion pair accuracy: how often the true class "
        f"beats its mirror twin (chance 50%). Parameters are exact counts at ViT-B/16 8 x 224 with 174 classes."))
    return table


def _table1_lines(table: pd.DataFrame, per_run: pd.DataFrame) -> list[dict[str, Any]]:
    lines = []
    for r in table.itertuples():
        lines.append({"what": f"{r.title}: parameters (ViT-B/16, 174 classes)", "ours": f"{r.params_vit_b:,}",
                      "paper": f"{r.paper_params_m}M",
                      "verdict": "yes" if round(r.params_vit_b / 1e6, 1) == r.paper_params_m else "no"})
    for r in table.itertuples():
        lines.append({"what": f"{r.title}: appearance top-1 (K400 stand-in)",
                      "ours": _pct(r.appearance_acc, r.appearance_acc_std), "paper": f"{r.paper_k400} (K400)"})
    for r in table.itertuples():
        lines.append({"what": f"{r.title}: motion top-1 / pair accuracy (SSv2 stand-in)",
                      "ours": f"{_pct(r.motion_acc, r.motion_acc_std)} / {_pct(r.motion_pair_acc, r.motion_pair_acc_std)}",
                      "paper": f"{r.paper_ssv2} (SSv2)"})
    claims = table1_claims(table)
    lines += [{"what": c["claim"], "ours": c["measured"], "paper": c["paper"], "verdict": c["verdict"]} for c in claims]
    return lines


def table1_claims(table: pd.DataFrame) -> list[dict[str, str]]:
    """The paper's claims about Table 1, checked against our numbers."""
    t = table.set_index("scheme")
    app = t.appearance_acc
    spread = app.max() - app.min()
    space_pair, space_pair_std = t.loc["space", "motion_pair_acc"], t.loc["space", "motion_pair_acc_std"]
    temporal = t.drop(index="space")
    motion_rank = list(t.motion_acc.sort_values(ascending=False).index)
    best = t.motion_acc.max()
    return [
        {"claim": "appearance: the five schemes are close",
         "measured": f"spread {100 * spread:.1f} points ({TITLES[app.idxmin()]} lowest)",
         "paper": "spread 4.5 points on K400 (73.5-78.0)",
         "verdict": "yes" if spread <= 0.10 else "no"},
        {"claim": "motion: Space stays at chance within each mirror pair",
         "measured": f"Space pair accuracy {_pct(space_pair, space_pair_std)} (chance 50)",
         "paper": "Space 36.6 vs 56-60 on SSv2",
         "verdict": "yes" if abs(space_pair - 0.5) <= CHANCE_MARGIN else "no"},
        {"claim": "motion: the schemes that attend across time learn it",
         "measured": f"pair accuracy {_pct(temporal.motion_pair_acc.min())}-{_pct(temporal.motion_pair_acc.max())}",
         "paper": "56.2-59.5 on SSv2",
         "verdict": "yes" if temporal.motion_pair_acc.min() >= LEARNED_PAIR_ACC else "no"},
        {"claim": "motion: Divided among the best",
         "measured": f"Divided ranks {motion_rank.index('divided') + 1} of 5 ({_pct(t.loc['divided', 'motion_acc'])} vs best "
                     f"{_pct(best)})",
         "paper": "Divided best (59.5)",
         "verdict": "yes" if best - t.loc["divided", "motion_acc"] <= 0.03 else "no"},
    ]


def _plot_table1(table: pd.DataFrame, per_run: pd.DataFrame, study: StudyPreset, out: Output) -> None:
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    xs = range(len(table))
    panels = (("appearance_acc", "appearance: top-1", None), ("motion_acc", "motion: top-1", None),
              ("motion_pair_acc", "motion: true class vs its mirror twin", 0.5))
    for ax, (col, title, chance) in zip(axes, panels):
        ax.bar(xs, table[col], yerr=table[col + "_std"], capsize=4, color=[f"C{i}" for i in xs])
        task, _, metric = col.partition("_")
        seeds = per_run[per_run.task == task].groupby("scheme", sort=False)[
            "pair_acc" if "pair" in col else "val_acc"]
        for i, scheme in enumerate(table.scheme):
            ys = seeds.get_group(scheme).values
            ax.scatter([i] * len(ys), ys, color="k", s=10, zorder=3)
        level = chance if chance is not None else per_run[per_run.task == task].chance.iloc[0]
        ax.axhline(level, color="0.3", ls="--", lw=1)
        ax.text(len(table) - 0.5, level, " chance", va="bottom", ha="right", fontsize=8, color="0.3")
        ax.set_xticks(list(xs), [TITLES[s] for s in table.scheme], rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel(f"held-out accuracy (mean ± std, {len(study.seeds)} seeds; dots: seeds)")
    fig.suptitle(f"Table 1 on synthetic data: the five schemes, '{study.model}' model, same budget")
    fig.tight_layout()
    out.figure("table1", fig)


# -- Table 4: positional embeddings -----------------------------------------------------------

POS_TITLES = {"none": "none", "space": "space only", "space_time": "space + time"}


def time_embedding_verdict(pair_without: float, pair_with: float) -> str:
    """Table 4's claim needs a contrast: at chance without the time embedding, learned with it.

    Without it Divided is order-blind by construction, so chance there alone proves nothing
    about the embedding; if the model with it is at chance too, the claim is not tested.
    """
    if abs(pair_without - 0.5) > CHANCE_MARGIN:
        return "no"
    if pair_with >= LEARNED_PAIR_ACC:
        return "yes"
    return "not tested: with it also at chance"


def table4(study: StudyPreset, runs: Runs, out: Output) -> pd.DataFrame:
    """Table 4: divided attention without position embeddings, with spatial only, with both."""
    specs, meta = {}, {}
    for task in ("appearance", "motion"):
        for pos in ("none", "space", "space_time"):
            for seed in study.ablation_seeds:
                # the space_time runs are Table 1's divided runs (same name, same config)
                name = f"{task}-divided-s{seed}" if pos == "space_time" else f"{task}-divided-pos_{pos}-s{seed}"
                init = image_model(study, runs, with_position=pos != "none")
                specs[name] = study.train_config(task, "divided", seed, pos_embed=pos, init=init)
                meta[name] = {"task": task, "pos_embed": pos, "seed": seed}
    per_run = pd.DataFrame(run_rows(runs.get(specs, desc="Table 4"), **meta))
    out.table("table4_runs", per_run)
    rows = []
    for pos in ("none", "space", "space_time"):
        rows.append({"pos_embed": pos, "title": POS_TITLES[pos],
                     **_task_columns(per_run[per_run.pos_embed == pos], paper.TABLE4[pos])})
    table = pd.DataFrame(rows)
    out.table("table4", table)
    _plot_grouped(table, "title", [("appearance_acc", "appearance top-1"), ("motion_acc", "motion top-1"),
                                   ("motion_pair_acc", "motion pair accuracy")],
                  f"Table 4 on synthetic data: position embeddings of Divided attention ('{study.model}' model)",
                  out, "table4", chance_for={"motion_pair_acc": 0.5})
    lines = [{"what": f"{r.title}: appearance / motion top-1 / motion pair accuracy",
              "ours": f"{_pct(r.appearance_acc)} / {_pct(r.motion_acc)} / {_pct(r.motion_pair_acc)}",
              "paper": f"{r.paper_k400} / {r.paper_ssv2}"} for r in table.itertuples()]
    t = table.set_index("pos_embed")
    no_time = max(t.loc["none", "motion_pair_acc"], t.loc["space", "motion_pair_acc"])
    lines.append({"what": "without the time embedding the motion task is unlearnable",
                  "ours": f"pair accuracy at most {_pct(no_time)} without it, {_pct(t.loc['space_time', 'motion_pair_acc'])} with it",
                  "paper": "SSv2 45.8 (none), 52.5 (space) vs 59.5",
                  "verdict": time_embedding_verdict(no_time, t.loc["space_time", "motion_pair_acc"])})
    out.summary("table4", "Table 4: positional embeddings (Divided)", lines, note=(
        "Without a time embedding Divided attention is blind to frame order: the temporal step is "
        "permutation-equivariant over frames and the cls is averaged over frames, so a clip and its "
        "reversal give the same output."))
    return table


def _plot_grouped(table: pd.DataFrame, label_col: str, metrics: list[tuple[str, str]], title: str, out: Output,
                  name: str, chance_for: dict[str, float] | None = None) -> None:
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8))
    for ax, (col, label) in zip(axes, metrics):
        ax.bar(range(len(table)), table[col], yerr=table.get(col + "_std"), capsize=4,
               color=[f"C{i}" for i in range(len(table))])
        ax.set_xticks(range(len(table)), table[label_col], fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.set_title(label, fontsize=10)
        if chance_for and col in chance_for:
            ax.axhline(chance_for[col], color="0.3", ls="--", lw=1)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    out.figure(name, fig)


# -- Figures 4 and 5: clip length and data size ---------------------------------------------------

def frames_curve(study: StudyPreset, runs: Runs, out: Output, attention: str = "divided") -> pd.DataFrame:
    """Accuracy against the number of frames seen, on the long-range task (Figure 5, left)."""
    specs, meta = {}, {}
    for frames in study.frames_sweep:
        for seed in study.ablation_seeds:
            name = f"long_range-{attention}-T{frames}-s{seed}"
            specs[name] = study.train_config("long_range", attention, seed, num_frames=frames,
                                             source_frames=study.source_frames, init=image_model(study, runs))
            meta[name] = {"frames": frames, "seed": seed}
    per_run = pd.DataFrame(run_rows(runs.get(specs, desc="clip length"), **meta))
    out.table("frames_runs", per_run)
    rows = []
    for frames in study.frames_sweep:
        part = per_run[per_run.frames == frames]
        mean, std = _mean_std(part.val_acc)
        seen = cue_visibility(frames, source_frames=study.source_frames, split="val")
        rows.append({"frames": frames, "val_acc": mean, "val_acc_std": std, "both_cues_seen": seen["both_cues"],
                     "a_cue_seen": seen["at_least_one_cue"], "reading_both": 0.5 + 0.5 * seen["both_cues"],
                     "chance": float(part.chance.iloc[0]),
                     "gmacs_per_clip": _gmacs(study, attention, frames)})
    table = pd.DataFrame(rows)
    out.table("frames", table)
    _plot_frames(table, study, attention, out)
    rising = all(b >= a - 0.02 for a, b in zip(table.val_acc, table.val_acc[1:]))
    lines = [{"what": f"{r.frames} frames: long-range top-1 (both cues seen in {100 * r.both_cues_seen:.0f}% of clips)",
              "ours": _pct(r.val_acc, r.val_acc_std), "paper": "-"} for r in table.itertuples()]
    lines.append({"what": "more frames help on the long-range task",
                  "ours": f"{_pct(table.val_acc.iloc[0])} at {table.frames.iloc[0]} frames -> "
                          f"{_pct(table.val_acc.iloc[-1])} at {table.frames.iloc[-1]}",
                  "paper": "K400: 8 -> 96 frames raises top-1 (Figure 5)",
                  "verdict": "yes" if rising and table.val_acc.iloc[-1] > table.val_acc.iloc[0] + 0.05 else "no"})
    out.summary("frames", "Figure 5: clip length (long-range task)", lines, note=(
        f"The class is which of two brief cues came first in a {study.source_frames}-frame video; the model "
        f"sees frames spread evenly over it. 'Reading both' is what a model that reads the order whenever "
        f"it sees both cues and guesses otherwise would reach (one cue alone still hints at the order)."))
    return table


def _gmacs(study: StudyPreset, attention: str, frames: int) -> float:
    return count_macs(preset(study.model, attention=attention, num_frames=frames)) / 1e9


def _plot_frames(table: pd.DataFrame, study: StudyPreset, attention: str, out: Output) -> None:
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(table.frames, table.val_acc, yerr=table.val_acc_std, marker="o", capsize=4,
                label=f"{TITLES[attention]}, held-out")
    ax.plot(table.frames, table.reading_both, ls=":", color="0.3", marker=".",
            label="reading both cues when seen, guessing otherwise")
    ax.axhline(table.chance.iloc[0], color="0.5", ls="--", lw=1, label="chance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(table.frames), [str(f) for f in table.frames])
    ax.set_xlabel(f"frames seen (of {study.source_frames})")
    ax.set_ylabel("top-1")
    ax.set_ylim(0.4, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Clip length on the long-range task (Figure 5)", fontsize=10)
    fig.tight_layout()
    out.figure("frames", fig)


def data_size_curve(study: StudyPreset, runs: Runs, out: Output,
                    schemes: tuple[str, ...] = ("space", "divided")) -> pd.DataFrame:
    """Accuracy against the number of training clips, on both tasks (Figure 4)."""
    specs, meta = {}, {}
    seed = study.ablation_seeds[0]
    for task in ("appearance", "motion"):
        for scheme in schemes:
            for n in study.data_sweep:
                # the largest size is Table 1's run (same config)
                name = f"{task}-{scheme}-s{seed}" if n == study.train_samples else f"{task}-{scheme}-n{n}-s{seed}"
                specs[name] = study.train_config(task, scheme, seed, train_samples=n, init=image_model(study, runs))
                meta[name] = {"task": task, "scheme": scheme, "train_clips": n, "seed": seed}
    table = pd.DataFrame(run_rows(runs.get(specs, desc="data size"), **meta))
    out.table("data_size", table)
    _plot_data_size(table, study, out)
    lines = []
    for (task, scheme), part in table.groupby(["task", "scheme"], sort=False):
        part = part.sort_values("train_clips")
        metric = "pair_acc" if task == "motion" else "val_acc"
        lines.append({"what": f"{TITLES[scheme]}, {task}: {'pair accuracy' if task == 'motion' else 'top-1'} "
                              f"from {part.train_clips.iloc[0]} to {part.train_clips.iloc[-1]} clips",
                      "ours": " -> ".join(_pct(v) for v in part[metric]), "paper": "rises with data (Figure 4)"})
    out.summary("data_size", "Figure 4: training-set size", lines, note=(
        f"Seed {seed}; every size trained for the same {study.epochs} epochs from the same image model."))
    return table


def _plot_data_size(table: pd.DataFrame, study: StudyPreset, out: Output) -> None:
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, task in zip(axes, ("appearance", "motion")):
        metric = "pair_acc" if task == "motion" else "val_acc"
        for scheme, part in table[table.task == task].groupby("scheme", sort=False):
            part = part.sort_values("train_clips")
            ax.plot(part.train_clips, part[metric], marker="o", label=TITLES[scheme])
        chance = 0.5 if task == "motion" else table[table.task == task].chance.iloc[0]
        ax.axhline(chance, color="0.5", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training clips")
        ax.set_ylabel("pair accuracy (vs mirror twin)" if task == "motion" else "top-1")
        ax.set_ylim(0, 1.02)
        ax.set_title(TASK_TITLES[task], fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle("Training-set size (Figure 4)", fontsize=11)
    fig.tight_layout()
    out.figure("data_size", fig)


# -- The cost of the authors' zero time embedding at a small budget ------------------------------

INIT_TITLES = {"study": "the study's start", "zero": "the authors' zeros"}


def time_embedding_curves(study: StudyPreset, runs: Runs, out: Output, attention: str = "divided") -> pd.DataFrame:
    """Motion pair accuracy against optimiser step: the study's time-embedding start beside the
    authors' zeros, the same recipe otherwise, over the study's seeds (the study-start runs are
    Table 1's)."""
    specs, meta = {}, {}
    init = image_model(study, runs)
    for seed in study.seeds:
        for start, kind in (("study", None), ("zero", "zeros")):
            name = f"motion-{attention}-s{seed}" if start == "study" else f"motion-{attention}-te0-s{seed}"
            specs[name] = study.train_config("motion", attention, seed, init=init, time_embed_init=kind)
            meta[name] = {"start": start, "seed": seed, "time_embed_init": specs[name].model.time_embed_init}
    records = runs.get(specs, desc="time-embedding curves")
    rows = [{"run": name, **meta[name], **point} for name, record in records.items() for point in record.curve]
    curves = pd.DataFrame(rows)
    out.table("time_embed_curves", curves)
    _plot_curves(curves, study, attention, out)
    lines = []
    for (start, seed), part in curves.groupby(["start", "seed"], sort=False):
        learned = part[part.pair_acc >= LEARNED_PAIR_ACC]
        first = f"step {int(learned.step.iloc[0])}" if len(learned) else f"not within {int(part.step.max())} steps"
        lines.append({"what": f"{INIT_TITLES[start]} ({part.time_embed_init.iloc[0]}), seed {seed}: "
                              f"first pair accuracy >= {100 * LEARNED_PAIR_ACC:.0f}%",
                      "ours": f"{first}; at the end {_pct(part.pair_acc.iloc[-1])}", "paper": "-"})
    out.summary("curves", "The time embedding's start: pair accuracy by optimiser step", lines, note=(
        f"{TITLES[attention]} on the motion task, the study's recipe, {len(study.seeds)} seeds; held-out pair accuracy "
        f"on {CURVE_CLIPS} clips every {study.curve_every} steps. The authors start the "
        "time embedding (and temporal_fc) at zero, so an inflated model starts order-blind; the study starts "
        f"it {study.time_embed_init} (RMS {study.time_embed_init_std:g}) instead."))
    return curves


def _plot_curves(curves: pd.DataFrame, study: StudyPreset, attention: str, out: Output) -> None:
    import matplotlib.pyplot as plt  # optional (the notebooks extra)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    styles = ("-", "--", ":", "-.")
    for (start, seed), part in curves.groupby(["start", "seed"], sort=False):
        colour = "C0" if start == "study" else "C3"
        index = list(study.seeds).index(seed) if seed in study.seeds else 0
        ax.plot(part.step, part.pair_acc, color=colour, ls=styles[index % len(styles)], marker=".",
                label=f"{INIT_TITLES[start]} ({part.time_embed_init.iloc[0]}), seed {seed}")
    ax.axhline(0.5, color="0.5", ls="--", lw=1)
    ax.text(curves.step.max(), 0.5, "chance ", va="bottom", ha="right", fontsize=8, color="0.4")
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("held-out pair accuracy (vs mirror twin)")
    ax.set_title(f"{TITLES[attention]} on motion: where the time embedding starts", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.figure("time_embed_curves", fig)
