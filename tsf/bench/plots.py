"""The figures of ``python -m tsf bench models``: clips per second per case, and peak memory against frames and crop.

Figures are built outside pyplot (``matplotlib.figure.Figure``): nothing to close, no backend
switched, and a notebook that calls them keeps its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .steps import IMPLS

def plot_results(result: dict[str, Any], path: str | os.PathLike | None = None):
    """Clips per second (median, quartile bars) of ours and Hugging Face's, a panel per case and mode."""
    from matplotlib.figure import Figure  # matplotlib is optional (the notebooks extra): imported when drawing

    panels = [(c, m) for c in result["cases"] for m in c["case"]["modes"]]
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = Figure(figsize=(5.2 * cols, 3.6 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    colours = {"tsf": "tab:blue", "hf": "tab:orange"}
    for ax, (case, mode) in zip(axes.flat, panels):
        schemes = case["case"]["schemes"]
        rows = {(r["impl"], r["scheme"]): r for r in case["rows"] if r["mode"] == mode}
        for i, impl in enumerate(IMPLS):
            xs, ys, lo, hi = [], [], [], []
            for j, scheme in enumerate(schemes):
                r = rows.get((impl, scheme))
                if r and "clips_per_s" in r:
                    xs.append(j + (i - 0.5) * 0.38)
                    ys.append(r["clips_per_s"])
                    lo.append(r["clips_per_s"] - r["clips_per_s_q1"])
                    hi.append(r["clips_per_s_q3"] - r["clips_per_s"])
            ax.bar(xs, ys, 0.38, yerr=[lo, hi], capsize=2, color=colours[impl],
                   label="tsf" if impl == "tsf" else "Hugging Face")
        for scheme, ratio in case["tsf_over_hf"].items():
            s, m = scheme.split("/")
            if m == mode:
                j = schemes.index(s)
                top = max(r["clips_per_s_q3"] for (impl, sc), r in rows.items() if sc == s and "clips_per_s" in r)
                ax.annotate(f"x{ratio:.2f}", (j, top), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(schemes)), schemes, rotation=20, fontsize=8)
        batch = next((r["batch_size"] for r in case["rows"]), "?")
        extra = ", compiled" if case["case"]["compile"] else ""
        ax.set_title(f"{case['case']['name']}: {mode}, batch {batch}, {case['threads']} thr{extra}", fontsize=9)
        ax.set_ylabel("clips / s")
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    machine = result["machine"]
    where = machine["gpu"]["name"] if "gpu" in machine else f"{machine['cpu']}, {machine['cores']} cores"
    date = min(c["date"] for c in result["cases"])[:10]
    fig.suptitle(f"tsf vs Hugging Face TimeSformer: {where}, torch {machine['versions']['torch']}, "
                 f"transformers {machine['versions'].get('transformers')}, {date}", fontsize=10)
    return _save(fig, path)


def plot_memory_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike | None = None, title: str = ""):
    """Peak memory against frames and crop, one line per scheme; points out of memory marked x."""
    from matplotlib.figure import Figure  # matplotlib is optional (the notebooks extra): imported when drawing

    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, axis in zip(axes, ("frames", "crop")):
        for scheme in dict.fromkeys(r["scheme"] for r in rows):
            part = [r for r in rows if r["scheme"] == scheme and r["axis"] == axis]
            ok = [r for r in part if not r["oom"]]
            line, = ax.plot([r["value"] for r in ok], [r["peak_gb"] for r in ok], marker="o", label=scheme)
            oom = [r["value"] for r in part if r["oom"]]
            if oom:
                top = max((r["peak_gb"] for r in ok), default=1.0)
                ax.plot(oom, [top] * len(oom), "x", color=line.get_color(), ms=9)
        ax.set_yscale("log")
        ax.set_xlabel(_axis_label(rows, axis))
        ax.set_ylabel("peak GB")
    axes[0].legend(fontsize=8)
    what = "training step" if all(r["training"] for r in rows) else "inference"
    batch = ", ".join(str(b) for b in dict.fromkeys(r["batch_size"] for r in rows))
    fig.suptitle(title or f"peak memory, {what}, batch {batch} (x: out of memory)", fontsize=10)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike | None) -> Any:
    """Lay the figure out and, if ``path`` is given, write it there (its folder created)."""
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def _axis_label(rows: Sequence[dict[str, Any]], axis: str) -> str:
    """``frames (at 224 px)`` / ``crop px (at 8 frames)``: the swept axis and the size the rows held fixed."""
    fixed = "crop" if axis == "frames" else "frames"
    values = ", ".join(str(v) for v in dict.fromkeys(r[fixed] for r in rows if r["axis"] == axis))
    return f"frames (at {values} px)" if axis == "frames" else f"crop px (at {values} frames)"


def write_figures(result: dict[str, Any], path: str | os.PathLike) -> list[Path]:
    """:func:`plot_results` to ``path`` and, if the result has them, the memory curves to ``NAME_memory.png``."""
    path = Path(path)
    plot_results(result, path)
    written = [path]
    if result.get("memory_curves"):
        written.append(path.with_name(path.stem + "_memory.png"))
        plot_memory_curves(result["memory_curves"]["rows"], written[-1])
    return written
