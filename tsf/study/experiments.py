"""The study's experiments: one function per table or figure of the paper.

Each function trains what it needs through the shared run cache (``Runs``), writes its
table, figure and summary lines into an ``Output`` folder, and returns the table. The
synthetic tasks stand in for the datasets: *appearance* for Kinetics-400 (a single frame
tells the class) and *motion* for Something-Something-V2 (only the order of the frames
does: every class has a mirror twin made of the same frames reversed).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd

from ..attention import SCHEMES
from ..config import ATTENTION_SCHEMES, preset
from ..cost import count_macs, count_params
from ..data.synthetic import MOTION_PAIRS, cue_visibility
from . import paper
from .presets import StudyPreset
from .pretrain import image_model
from .report import Output
from .runs import CURVE_CLIPS, Runs, Specs

#: ``image(with_position=True)``: the weights every run starts from (:func:`tsf.study.pretrain.image_model`,
#: which trains them first if needed; the planner, :mod:`tsf.study.plan`, passes names instead)
Image = Callable[..., str]

TITLES = {name: scheme.title for name, scheme in SCHEMES.items()}
#: The criteria of the claims' verdicts, in one place: "at chance" within 5 points of a pair's 50%;
#: a scheme that attends across time "learns" the direction at 70% pair accuracy or more; Divided
#: "reads" it at 85%; "close" on appearance within 10 points; "among the best" within 3 points.
CHANCE_MARGIN = 0.05
LEARNED_PAIR_ACC = 0.70
DIVIDED_PAIR_ACC = 0.85
CLOSE = 0.10
AMONG_BEST = 0.03

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


#: one column per mirror pair of the motion task, named by its forward class ("pair_right", ...)
PAIR_COLUMNS: dict[str, str] = {f"pair_{a.split()[-1]}": f"{a} / {b}" for a, b in MOTION_PAIRS}


def run_rows(records: dict[str, Any], **columns: Any) -> list[dict[str, Any]]:
    """One row per run: its columns, held-out scores (by mirror pair too, where the task has them)."""
    rows = []
    for name, record in records.items():
        s = record.scores
        by_pair = dict(zip(PAIR_COLUMNS, s["pair_acc_by_pair"])) if "pair_acc_by_pair" in s else {}
        rows.append({"run": name, **columns.get(name, {}), "val_acc": s["val_acc"], "pair_acc": s.get("pair_acc"),
                     **by_pair, "chance": s["chance"], "train_acc": s.get("train_acc"), "steps": s["steps"],
                     "train_seconds": s["train_seconds"]})
    return rows


# -- Table 1: the five schemes on both tasks ------------------------------------------------

def table1_specs(study: StudyPreset, image: Image, tasks: tuple[str, ...] = ("appearance", "motion"),
                 schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> Specs:
    """Every scheme x task x seed of Table 1: ``{name: config}`` and ``{name: columns}``."""
    specs, meta = {}, {}
    init = image()
    for task in tasks:
        for scheme in schemes:
            for seed in study.seeds:
                name = f"{task}-{scheme}-s{seed}"
                specs[name] = study.train_config(task, scheme, seed, init=init)
                meta[name] = {"task": task, "scheme": scheme, "seed": seed}
    return specs, meta


def scheme_runs(study: StudyPreset, runs: Runs, tasks: tuple[str, ...] = ("appearance", "motion"),
                schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> pd.DataFrame:
    """Train (or fetch) every scheme x task x seed; one row per run."""
    specs, meta = table1_specs(study, partial(image_model, study, runs), tasks, schemes)
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
    out.figure("table1", table1_figure(table, per_run, study))
    out.summary("table1", "Table 1: attention schemes", _table1_lines(table, per_run), note=(
        f"Accuracy on held-out synthetic clips, {_spread(study.seeds)}, '{study.model}' model "
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
         "verdict": "yes" if spread <= CLOSE else "no"},
        {"claim": "motion: Space stays at chance within each mirror pair",
         "measured": f"Space pair accuracy {_pct(space_pair, space_pair_std)} (chance 50)",
         "paper": "Space 36.6 vs 56-60 on SSv2",
         "verdict": "yes" if abs(space_pair - 0.5) <= CHANCE_MARGIN else "no"},
        {"claim": "motion: every scheme that attends across time learns the direction",
         "measured": f"pair accuracy {_pct(temporal.motion_pair_acc.min())}-{_pct(temporal.motion_pair_acc.max())} "
                     f"({TITLES[temporal.motion_pair_acc.idxmin()]} lowest; {100 * LEARNED_PAIR_ACC:.0f} needed)",
         "paper": "56.2-59.5 on SSv2",
         "verdict": "yes" if temporal.motion_pair_acc.min() >= LEARNED_PAIR_ACC else "no"},
        {"claim": "motion: Divided reads the direction",
         "measured": f"Divided pair accuracy {_pct(t.loc['divided', 'motion_pair_acc'], t.loc['divided', 'motion_pair_acc_std'])} "
                     f"({100 * DIVIDED_PAIR_ACC:.0f} needed)",
         "paper": "Divided 59.5 on SSv2",
         "verdict": "yes" if t.loc["divided", "motion_pair_acc"] >= DIVIDED_PAIR_ACC else "no"},
        {"claim": "motion: Divided among the best",
         "measured": f"Divided ranks {motion_rank.index('divided') + 1} of 5 ({_pct(t.loc['divided', 'motion_acc'])} vs best "
                     f"{_pct(best)})",
         "paper": "Divided best (59.5)",
         "verdict": "yes" if best - t.loc["divided", "motion_acc"] <= AMONG_BEST else "no"},
    ]


def motion_pairs(study: StudyPreset, runs: Runs, out: Output) -> pd.DataFrame:
    """Which motions each scheme reads: Table 1's motion runs, pair accuracy by mirror pair."""
    per_run = scheme_runs(study, runs, tasks=("motion",))
    table = per_run.groupby("scheme", sort=False)[list(PAIR_COLUMNS)].mean().reset_index()
    out.table("table1_pairs", table)
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(PAIR_COLUMNS)
    for k, (column, title) in enumerate(PAIR_COLUMNS.items()):
        ax.bar([i + (k - (len(PAIR_COLUMNS) - 1) / 2) * width for i in range(len(table))], table[column], width,
               label=title, color=f"C{k}")
    ax.axhline(0.5, color="0.3", ls="--", lw=1)
    ax.set_xticks(range(len(table)), [TITLES[s] for s in table.scheme], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel(f"pair accuracy (mean of {_seeds(study.seeds)}); chance 0.5")
    ax.legend(fontsize=7, ncol=len(PAIR_COLUMNS), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    ax.set_title("Which motions each scheme reads: true class vs its mirror twin, by pair", fontsize=10)
    fig.tight_layout()
    out.figure("table1_pairs", fig)
    return table


def _seeds(seeds: tuple[int, ...]) -> str:
    return f"{len(seeds)} seed" + ("" if len(seeds) == 1 else "s")


def _spread(seeds: tuple[int, ...]) -> str:
    """What a bar over ``seeds`` shows: one run, or the mean and std of several."""
    return "1 seed" if len(seeds) == 1 else f"mean ± std over {len(seeds)} seeds"


def _chance_line(ax, level: float, *, color: str = "0.3"):
    """A dashed line at ``level`` labelled "chance" just outside the axes' right edge, so the
    label never sits on a bar or a curve; returns the label."""
    ax.axhline(level, color=color, ls="--", lw=1)
    return ax.annotate("chance", xy=(1, level), xycoords=("axes fraction", "data"), xytext=(3, 0),
                       textcoords="offset points", ha="left", va="center", fontsize=8, color=color,
                       annotation_clip=False)


def table1_figure(table: pd.DataFrame, per_run: pd.DataFrame, study: StudyPreset):
    """Table 1's figure: a panel per task and metric, a bar per scheme (``table``), a dot per run
    (``per_run``), the chance level labelled beside each panel."""
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
        _chance_line(ax, level)
        ax.set_xticks(list(xs), [TITLES[s] for s in table.scheme], rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
    dots = "" if len(study.seeds) == 1 else "; dots: seeds"
    axes[0].set_ylabel(f"held-out accuracy\n({_spread(study.seeds)}{dots})")
    fig.suptitle(f"Table 1 on synthetic data: the five schemes, '{study.model}' model, same budget")
    fig.tight_layout()
    return fig


# -- Table 4: positional embeddings -----------------------------------------------------------

POS_TITLES = {"none": "none", "space": "space only", "space_time": "space + time"}


def time_embedding_verdict(pair_without: float, pair_with: float) -> str:
    """Table 4's claim needs a contrast: at chance without the time embedding, learned with it.

    Without it Divided is order-blind by construction, so chance there alone proves nothing
    about the embedding; if the model with it is at chance too, the claim is not tested.
    """
    if abs(pair_without - 0.5) > CHANCE_MARGIN:
        return "no"
    if pair_with >= DIVIDED_PAIR_ACC:
        return "yes"
    if abs(pair_with - 0.5) <= CHANCE_MARGIN:
        return "not tested: with it also at chance"
    return "no"


def table4_specs(study: StudyPreset, image: Image) -> Specs:
    """Divided attention with each position embedding, both tasks, the ablation seeds."""
    specs, meta = {}, {}
    for task in ("appearance", "motion"):
        for pos in ("none", "space", "space_time"):
            for seed in study.ablation_seeds:
                # the space_time runs are Table 1's divided runs (same name, same config)
                name = f"{task}-divided-s{seed}" if pos == "space_time" else f"{task}-divided-pos_{pos}-s{seed}"
                init = image(with_position=pos != "none")
                specs[name] = study.train_config(task, "divided", seed, pos_embed=pos, init=init)
                meta[name] = {"task": task, "pos_embed": pos, "seed": seed}
    return specs, meta


def table4(study: StudyPreset, runs: Runs, out: Output) -> pd.DataFrame:
    """Table 4: divided attention without position embeddings, with spatial only, with both."""
    specs, meta = table4_specs(study, partial(image_model, study, runs))
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

def frames_specs(study: StudyPreset, image: Image, attention: str = "divided") -> Specs:
    """The long-range task at every clip length of the sweep, the ablation seeds."""
    specs, meta = {}, {}
    for frames in study.frames_sweep:
        for seed in study.ablation_seeds:
            name = f"long_range-{attention}-T{frames}-s{seed}"
            specs[name] = study.train_config("long_range", attention, seed, num_frames=frames,
                                             source_frames=study.source_frames, init=image())
            meta[name] = {"frames": frames, "seed": seed}
    return specs, meta


def frames_curve(study: StudyPreset, runs: Runs, out: Output, attention: str = "divided") -> pd.DataFrame:
    """Accuracy against the number of frames seen, on the long-range task (Figure 5, left)."""
    specs, meta = frames_specs(study, partial(image_model, study, runs), attention)
    per_run = pd.DataFrame(run_rows(runs.get(specs, desc="clip length"), **meta))
    out.table("frames_runs", per_run)
    rows = []
    for frames in study.frames_sweep:
        part = per_run[per_run.frames == frames]
        mean, std = _mean_std(part.val_acc)
        seen = cue_visibility(frames, num_samples=CEILING_CLIPS, source_frames=study.source_frames, split="val")
        rows.append({"frames": frames, "val_acc": mean, "val_acc_std": std, "both_cues_seen": seen["both_cues"],
                     "a_cue_seen": seen["at_least_one_cue"], "ceiling": seen["ceiling"],
                     "chance": float(part.chance.iloc[0]), "gmacs_per_clip": _gmacs(study, attention, frames)})
    table = pd.DataFrame(rows)
    out.table("frames", table)
    _plot_frames(table, study, attention, out)
    lines = [{"what": f"{r.frames} frames: long-range top-1 (both cues seen in {100 * r.both_cues_seen:.0f}% of clips; "
                      f"ceiling {_pct(r.ceiling)})",
              "ours": _pct(r.val_acc, r.val_acc_std), "paper": "-"} for r in table.itertuples()]
    first, last = table.iloc[0], table.iloc[-1]
    lines.append({"what": "more frames help on the long-range task, up to what the frames show",
                  "ours": f"{_pct(first.val_acc)} at {first.frames} frames (ceiling {_pct(first.ceiling)}) -> "
                          f"{_pct(last.val_acc)} at {last.frames} (ceiling {_pct(last.ceiling)})",
                  "paper": "K400: 8 -> 96 frames raises top-1 (Figure 5)", "verdict": frames_verdict(table)})
    out.summary("frames", "Figure 5: clip length (long-range task)", lines, note=(
        f"The class is which of two brief cues came first in a {study.source_frames}-frame video; the model "
        f"sees frames spread evenly over it. The ceiling is the best any model can do from the frames it sees "
        f"(the Bayes rule over which sampled frames show which cue, on {CEILING_CLIPS} held-out clips): with both "
        f"cues seen the order is certain, with one, where it was seen still hints at it. Agrees means: accuracy "
        f"never falls by more than {100 * FRAMES_NOISE:.0f} points as frames are added, rises by at least "
        f"{100 * FRAMES_RISE:.0f} from the shortest clip to the longest, and ends within {100 * CHANCE_MARGIN:.0f} "
        f"points of its ceiling."))
    return table


#: held-out clips the long-range ceiling is estimated on
CEILING_CLIPS = 2000
#: Figures 4 and 5's criteria: a dip of at most this from one point to the next, a rise of at least that in all
FRAMES_NOISE, FRAMES_RISE = 0.02, 0.2


def frames_verdict(table: pd.DataFrame) -> str:
    """``yes`` where accuracy rises with the frames seen and, at the longest clip, reaches its ceiling."""
    acc = list(table.val_acc)
    return "yes" if rises(acc) and table.ceiling.iloc[-1] - acc[-1] <= CHANCE_MARGIN else "no"


def _gmacs(study: StudyPreset, attention: str, frames: int) -> float:
    return count_macs(preset(study.model, attention=attention, num_frames=frames)) / 1e9


def _plot_frames(table: pd.DataFrame, study: StudyPreset, attention: str, out: Output) -> None:
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(table.frames, table.val_acc, yerr=table.val_acc_std, marker="o", capsize=4,
                label=f"{TITLES[attention]}, held-out")
    ax.plot(table.frames, table.ceiling, ls=":", color="0.3", marker=".",
            label="ceiling: the best any model can do from the frames seen")
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


def data_size_specs(study: StudyPreset, image: Image, schemes: tuple[str, ...] = ("space", "divided")) -> Specs:
    """Both tasks at every training-set size of the sweep, the first ablation seed."""
    specs, meta = {}, {}
    seed = study.ablation_seeds[0]
    for task in ("appearance", "motion"):
        for scheme in schemes:
            for n in study.data_sweep:
                # the largest size is Table 1's run (same config)
                name = f"{task}-{scheme}-s{seed}" if n == study.train_samples else f"{task}-{scheme}-n{n}-s{seed}"
                specs[name] = study.train_config(task, scheme, seed, train_samples=n, init=image())
                meta[name] = {"task": task, "scheme": scheme, "train_clips": n, "seed": seed}
    return specs, meta


def data_size_curve(study: StudyPreset, runs: Runs, out: Output,
                    schemes: tuple[str, ...] = ("space", "divided")) -> pd.DataFrame:
    """Accuracy against the number of training clips, on both tasks (Figure 4)."""
    specs, meta = data_size_specs(study, partial(image_model, study, runs), schemes)
    seed = study.ablation_seeds[0]
    table = pd.DataFrame(run_rows(runs.get(specs, desc="data size"), **meta))
    out.table("data_size", table)
    _plot_data_size(table, study, out)
    lines = []
    for (task, scheme), part in table.groupby(["task", "scheme"], sort=False):
        part = part.sort_values("train_clips")
        metric = "pair_acc" if task == "motion" else "val_acc"
        line = {"what": f"{TITLES[scheme]}, {task}: {'pair accuracy' if task == 'motion' else 'top-1'} "
                        f"from {part.train_clips.iloc[0]} to {part.train_clips.iloc[-1]} clips",
                "ours": " -> ".join(_pct(v) for v in part[metric]), "paper": "rises with data (Figure 4)"}
        if task == "motion":  # the claim on motion: order-blind Space stays at chance, the others rise
            blind = scheme == "space"
            line["paper"] = "Space: blind to order at any size" if blind else "rises with data (Figure 4)"
            line["verdict"] = ("yes" if (part[metric] - 0.5).abs().max() <= CHANCE_MARGIN else "no") if blind else (
                "yes" if rises(list(part[metric])) else "no")
        lines.append(line)
    out.summary("data_size", "Figure 4: training-set size", lines, note=(
        f"Seed {seed}; every size trained for the same epochs ({study.epochs}, motion {study.motion_epochs}) from the "
        f"same image model, so fewer clips also mean fewer steps. Agrees means: on motion, Space stays within "
        f"{100 * CHANCE_MARGIN:.0f} points of chance, and Divided's pair accuracy never falls by more than "
        f"{100 * FRAMES_NOISE:.0f} points with more clips and rises by at least {100 * FRAMES_RISE:.0f} over the sweep."))
    return table


def rises(values: list[float]) -> bool:
    """Never falls by more than ``FRAMES_NOISE`` from one point to the next, and rises by ``FRAMES_RISE`` in all."""
    return all(b >= a - FRAMES_NOISE for a, b in zip(values, values[1:])) and values[-1] >= values[0] + FRAMES_RISE


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


def curve_specs(study: StudyPreset, image: Image, attention: str = "divided") -> Specs:
    """The motion runs of the study's time-embedding start and of the authors' zeros, the study's seeds."""
    specs, meta = {}, {}
    init = image()
    for seed in study.seeds:
        for start, kind in (("study", None), ("zero", "zeros")):
            name = f"motion-{attention}-s{seed}" if start == "study" else f"motion-{attention}-te0-s{seed}"
            specs[name] = study.train_config("motion", attention, seed, init=init, time_embed_init=kind)
            meta[name] = {"start": start, "seed": seed, "time_embed_init": specs[name].model.time_embed_init}
    return specs, meta


def time_embedding_curves(study: StudyPreset, runs: Runs, out: Output, attention: str = "divided") -> pd.DataFrame:
    """Motion pair accuracy against optimiser step: the study's time-embedding start beside the
    authors' zeros, the same recipe otherwise, over the study's seeds (the study-start runs are
    Table 1's)."""
    specs, meta = curve_specs(study, partial(image_model, study, runs), attention)
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
        f"{TITLES[attention]} on the motion task, the study's recipe, {_seeds(study.seeds)}; held-out pair accuracy "
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
    _chance_line(ax, 0.5, color="0.4")
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("held-out pair accuracy (vs mirror twin)")
    ax.set_title(f"{TITLES[attention]} on motion: where the time embedding starts", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")  # empty there: every curve starts near chance
    fig.tight_layout()
    out.figure("time_embed_curves", fig)
