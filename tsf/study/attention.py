"""Attention maps of the study's trained models: the explorer, figures, and "is it meaningful?".

The models are Table 1's motion runs (seed 0 of the study preset, one per scheme), so this
notebook trains nothing new when Table 1 has run. On the motion task the deciding object's
mask is known in every frame: a map is scored by the share of its mass on the object against
the share of the frame the object covers (chance), for trained and untrained models.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from .. import explain
from ..config import ATTENTION_SCHEMES
from ..data.synthetic import SyntheticVideos
from ..model import TimeSformer
from .presets import StudyPreset
from .pretrain import image_model
from .report import Output
from .runs import RunRecord, Runs, Specs

TASK = "motion"


def motion_specs(study: StudyPreset, image: Callable[..., str],
                 schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> Specs:
    """Table 1's motion run of every scheme at the first seed."""
    seed, init = study.seeds[0], image()
    specs = {f"{TASK}-{s}-s{seed}": study.train_config(TASK, s, seed, init=init) for s in schemes}
    return specs, {name: {} for name in specs}


def motion_runs(study: StudyPreset, runs: Runs, schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> dict[str, RunRecord]:
    """Table 1's motion run of every scheme at the first seed (trained here if Table 1 has not run)."""
    specs, _ = motion_specs(study, partial(image_model, study, runs), schemes)
    records = runs.get(specs, desc="motion models")
    seed = study.seeds[0]
    return {s: records[f"{TASK}-{s}-s{seed}"] for s in schemes}


def held_out(study: StudyPreset, num: int):
    """The held-out motion clips the maps are scored on (the study's validation split)."""
    cfg = study.train_config(TASK, "divided", 0)
    return SyntheticVideos(TASK, num, num_frames=cfg.model.num_frames, size=cfg.model.img_size, seed=0, split="val",
                           design=cfg.data.design)


def explorer(study: StudyPreset, runs: Runs, scheme: str = "divided", clip: int = 0):
    """The AttentionExplorer on a trained motion model and one held-out clip (class names, the object's outline)."""
    from ..viz import AttentionExplorer  # plotly and ipywidgets are optional (the notebooks extra)

    model = motion_runs(study, runs, (scheme,))[scheme].load_model()
    data = held_out(study, clip + 1)
    video, _ = data[clip]
    return AttentionExplorer(model, video, classes=data.classes, mask=data.sample(clip).mask)


def static_figures(study: StudyPreset, runs: Runs, out: Output, scheme: str = "divided", clip: int = 0) -> list[Path]:
    """A frames x layers rollout grid, a gradient-rollout strip and the standalone HTML page."""
    from ..viz import plot_frame_strip, plot_layer_grid  # matplotlib is optional (the notebooks extra)

    model = motion_runs(study, runs, (scheme,))[scheme].load_model()
    data = held_out(study, clip + 1)
    video, label = data[clip]
    label_text = f"trained {scheme} model ({study.model}), held-out clip {clip}: {data.classes[label]}"
    logits, maps = explain.attention_maps(model, video)
    layers = explain.rollout_by_layer(maps)[:, 0]  # (blocks, T, H', W')
    grid = plot_layer_grid(video, layers, out.folder / f"attention_layers_{scheme}.png",
                           title=f"rollout by layer: {label_text}",
                           caption=f"row k: rollout of blocks 1..k, mean over heads; {out.label}")
    gradient = explain.explain(model, video, "gradient", target=label)[0]
    strip = plot_frame_strip(video, gradient, out.folder / f"attention_gradient_{scheme}.png",
                             title=f"gradient rollout for the true class: {label_text}",
                             caption=f"positive part of gradient x attention, mean over heads; {out.label}")
    from ..viz import AttentionExplorer  # plotly and ipywidgets are optional

    page = AttentionExplorer(model, video, classes=data.classes, mask=data.sample(clip).mask).to_html(
        out.folder / f"attention_{scheme}.html")
    del grid, strip
    return [out.folder / f"attention_layers_{scheme}.png", out.folder / f"attention_gradient_{scheme}.png", page]


def meaningful(study: StudyPreset, runs: Runs, out: Output, methods: tuple[str, ...] = ("rollout", "gradient"),
               schemes: tuple[str, ...] = ATTENTION_SCHEMES) -> pd.DataFrame:
    """Share of each map's mass on the deciding object, trained vs untrained, per scheme and method."""
    from ..viz import plot_mask_scores  # matplotlib is optional (the notebooks extra)

    trained = motion_runs(study, runs, schemes)
    models: list[tuple[str, torch.nn.Module]] = []
    for scheme in schemes:
        model = trained[scheme].load_model()
        torch.manual_seed(0)
        untrained = TimeSformer(model.config).eval()
        models += [(f"{scheme} trained", model), (f"{scheme} untrained", untrained)]
    data = held_out(study, study.explain_clips)
    samples = [(data[i][0], data.sample(i).mask) for i in range(len(data))]
    rows = []
    for method in methods:
        rows += explain.score_models(models, samples, method=method, progress=False)
    frame = pd.DataFrame(rows)
    out.table("attention_scores_frames", frame)
    summary = pd.DataFrame(explain.summarise_scores([r for r in rows if r["method"] == methods[0]])
                           + [s for m in methods[1:] for s in explain.summarise_scores(
                               [r for r in rows if r["method"] == m])])
    summary[["scheme", "state"]] = summary.model.str.split(" ", expand=True)
    out.table("attention_scores", summary)
    for method in methods:
        plot_mask_scores([r for r in rows if r["method"] == method], out.folder / f"attention_scores_{method}.png",
                         title=f"{method}: share of the map on the deciding object, motion task",
                         caption=f"{len(samples)} held-out clips; chance = the share of the frame the object covers; "
                                 f"{out.label}")
    lines = []
    for method in methods:
        part = summary[summary.method == method].set_index("model")
        for scheme in schemes:
            t, u = part.loc[f"{scheme} trained"], part.loc[f"{scheme} untrained"]
            lines.append({"what": f"{method}, {scheme}: map mass on the object (chance {100 * t.chance:.1f}%)",
                          "ours": f"trained {100 * t.share:.1f}% (lift {t.lift:.2f}), "
                                  f"untrained {100 * u.share:.1f}% (lift {u.lift:.2f})",
                          "paper": "Figure 7: rollout shows the cls attending to the objects of the action"})
    out.summary("attention", "Figure 7: is the attention on the object?", lines, note=(
        "Lift = share of the map on the object / share of the frame the object covers (1 = chance). "
        "An untrained model's gradient rollout already finds bright objects, so a trained map means "
        "something only where it clearly beats its untrained twin."))
    return summary
