"""The cost study: Figure 3 and Tables 2-3 of the paper.

* FLOPs of every scheme at ViT-B/16 as the crop grows (224 to 560 px) and as the clip grows
  (8 to 96 frames): analytic, from ``tsf.count_macs`` (machine-independent).
* Memory: measured peak GPU memory when a GPU is present; otherwise the analytic size of the
  attention probabilities a training step keeps for the backward pass (labelled as such),
  against the paper's 32 GB GPU.
* Measured time per clip of the small study model on this machine (inference and training).
* The cost of the paper's three models beside its 0.59 / 5.11 / 7.14 TFLOPs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from ..attention import SCHEMES
from ..bench.memory import memory_curves
from ..bench.timing import quartiles, time_interleaved
from ..config import ATTENTION_SCHEMES, preset
from ..cpu_matmul import ONEDNN_NAME, kernels_name, onednn_matmul
from ..cost import count_macs, count_params, training_memory_bytes
from ..model import TimeSformer, autocast
from . import paper
from .report import Output

TITLES = {name: scheme.title for name, scheme in SCHEMES.items()}


def flops_curves(schemes: tuple[str, ...] = ATTENTION_SCHEMES, crops: tuple[int, ...] = paper.FIGURE3_CROPS,
                 frames: tuple[int, ...] = paper.FIGURE3_FRAMES, num_classes: int = 400) -> pd.DataFrame:
    """TFLOPs per view of ViT-B/16 for every scheme over crops (at 8 frames) and frames (at 224 px),
    with the analytic memory of a training step per clip (``tsf.cost.training_memory_bytes``)."""
    rows = []
    for scheme in schemes:
        cfg = preset("base", attention=scheme, num_classes=num_classes)
        for axis, values in (("crop", crops), ("frames", frames)):
            for value in values:
                size = dict(img_size=value) if axis == "crop" else dict(num_frames=value)
                memory = training_memory_bytes(cfg, **size)
                rows.append({"scheme": scheme, "axis": axis, "value": value,
                             "frames": size.get("num_frames", cfg.num_frames), "crop": size.get("img_size", cfg.img_size),
                             "tflops": count_macs(cfg, **size) / 1e12,
                             "train_memory_gb": memory["total"] / 1e9,
                             "attention_memory_gb": memory["attention_probabilities"] / 1e9})
    return pd.DataFrame(rows)


def plot_flops(frame: pd.DataFrame, out: Output | None = None, name: str = "cost_flops",
               measured: pd.DataFrame | None = None):
    """Figure 3: TFLOPs against crop and clip length, and the training step's memory: the analytic
    estimate, or ``measured`` peak GPU memory (:func:`measure_gpu_memory`'s rows; out of memory: x)."""
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex="col")
    for col, axis in enumerate(("crop", "frames")):
        part = frame[frame.axis == axis]
        for k, (scheme, rows) in enumerate(part.groupby("scheme", sort=False)):
            style = dict(marker="o", lw=2.5 if scheme in ("joint", "divided") else 1.2, color=f"C{k}")
            axes[0, col].plot(rows.value, rows.tflops, label=TITLES[scheme], **style)
            if measured is None:
                axes[1, col].plot(rows.value, rows.train_memory_gb, label=TITLES[scheme], **style)
                continue
            points = measured[(measured.scheme == scheme) & (measured.axis == axis)]
            fits = points[~points.oom.astype(bool)]
            axes[1, col].plot(fits.value, fits.peak_gb, label=TITLES[scheme], **style)
            oom = points[points.oom.astype(bool)]
            axes[1, col].scatter(oom.value, [paper.FIGURE3_JOINT_OOM["gpu_memory_gb"] * 4] * len(oom), marker="x",
                                 color=f"C{k}", s=40)
        axes[1, col].axhline(paper.FIGURE3_JOINT_OOM["gpu_memory_gb"], color="crimson", ls="--", lw=1)
        axes[1, col].text(part.value.min(), paper.FIGURE3_JOINT_OOM["gpu_memory_gb"] * 1.15, "32 GB (paper's GPU)",
                          color="crimson", fontsize=8)
        axes[1, col].set_yscale("log")
        fixed = ", ".join(str(v) for v in part["frames" if axis == "crop" else "crop"].unique())
        axes[1, col].set_xlabel(f"crop side (px), {fixed} frames" if axis == "crop" else f"frames, {fixed} px crop")
        axes[1, col].set_xticks(sorted(part.value.unique()))
    axes[0, 0].set_ylabel("TFLOPs per view (1 MAC = 1 FLOP)")
    if measured is None:
        axes[1, 0].set_ylabel("training-step memory, GB\n(analytic estimate, float32, 1 clip)")
    else:
        axes[1, 0].set_ylabel(f"training-step peak memory, GB\n(measured, {measured.gpu.iloc[0]}, bf16, 1 clip)")
        axes[1, 1].set_title("x: out of memory", fontsize=8, loc="right")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Cost of the five schemes at ViT-B/16 (Figure 3 of the paper)")
    fig.tight_layout()
    if out is not None:
        out.figure(name, fig, analytic=measured is None)
    return fig


def paper_models_cost() -> pd.DataFrame:
    """Params and 3-view TFLOPs of TimeSformer, -HR and -L (divided) beside Table 3."""
    rows = []
    for name, ref in paper.TABLE3.items():
        cfg = preset(name, attention="divided", num_classes=400)
        ours = 3 * count_macs(cfg) / 1e12
        rows.append({"model": name, "frames": cfg.num_frames, "crop": cfg.img_size, "params": count_params(cfg),
                     "tflops_3views": round(ours, 3), "paper_tflops_3views": ref["tflops_3views"],
                     "rel_diff": ours / ref["tflops_3views"] - 1})
    return pd.DataFrame(rows)


def measure_time(model_preset: str = "small", schemes: tuple[str, ...] = ATTENTION_SCHEMES, *,
                 batch_size: int = 16, repeats: int = 10, warmup: int = 3,
                 device: str | None = None, precision: str = "auto", cpu_matmul: str = "auto") -> pd.DataFrame:
    """Median (and quartiles) milliseconds per clip for inference and a training step, per scheme.

    ``precision``: ``auto`` is what the study trains in (bf16 autocast on a GPU, float32 on a
    CPU); ``cpu_matmul``: the kernels of float32 CPU products, ``auto`` as the study's runs use
    them (:mod:`tsf.cpu_matmul`); every row says which. Every scheme's two steps are timed in the same rounds,
    interleaved and rotated (:func:`tsf.bench.timing.time_interleaved`), so that drifts of the
    machine touch all alike.
    """
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    models, calls = {}, {}
    for scheme in schemes:
        cfg = preset(model_preset, attention=scheme)
        torch.manual_seed(0)
        model = TimeSformer(cfg).to(dev)
        models[scheme] = model
        x = torch.randn(batch_size, 3, cfg.num_frames, cfg.img_size, cfg.img_size, device=dev)
        y = torch.randint(0, cfg.num_classes, (batch_size,), device=dev)
        calls[(scheme, "inference")], calls[(scheme, "training")] = _steps(model, x, y, precision)
    with onednn_matmul(cpu_matmul, dev) as onednn:
        seconds = time_interleaved(calls, warmup=warmup, repeats=repeats, device=dev, progress=False)
    rows = []
    for (scheme, mode), values in seconds.items():
        lo, med, hi = quartiles([s * 1e3 / batch_size for s in values])
        cfg = models[scheme].config
        rows.append({"scheme": scheme, "mode": mode, "ms_per_clip": med, "q1": lo, "q3": hi,
                     "clips_per_s": 1e3 / med, "gmacs_per_clip": count_macs(cfg) / 1e9, "batch_size": batch_size,
                     "repeats": repeats, "model": model_preset, "device": str(dev), "precision": precision,
                     "kernels": kernels_name(onednn)})
    return pd.DataFrame(rows)


def _steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32"):
    """An inference call (eval, no gradients) and a training step (AdamW, lr 1e-4) of ``model``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def inference() -> None:
        model.eval()
        with torch.no_grad(), autocast(x.device, precision):
            model(x)

    def training() -> None:
        model.train()
        with autocast(x.device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return inference, training


def _how(row) -> str:
    """Where and how a timing row was measured: ``cpu fp32 on oneDNN``, ``cuda bf16``."""
    kernels = f" on {ONEDNN_NAME}" if row.get("kernels") == ONEDNN_NAME else ""
    return f"{row['device']} {row.get('precision', 'fp32')}{kernels}"


def plot_time(frame: pd.DataFrame, out: Output | None = None, name: str = "cost_time"):
    import matplotlib.pyplot as plt  # matplotlib is optional (the notebooks extra)

    fig, ax = plt.subplots(figsize=(7, 3.6))
    schemes = list(dict.fromkeys(frame.scheme))
    width = 0.38
    for i, mode in enumerate(("inference", "training")):
        part = frame[frame["mode"] == mode].set_index("scheme").loc[schemes]
        xs = [j + (i - 0.5) * width for j in range(len(schemes))]
        ax.bar(xs, part.ms_per_clip, width, label=mode,
               yerr=[part.ms_per_clip - part.q1, part.q3 - part.ms_per_clip], capsize=3)
    ax.set_xticks(range(len(schemes)), [TITLES[s] for s in schemes], rotation=15)
    ax.set_ylabel("ms per clip (median, quartiles)")
    first = frame.iloc[0]
    ax.set_title(f"Measured time per clip, '{first.model}' model, batch {first.batch_size}, {_how(first)}")
    ax.legend()
    fig.tight_layout()
    if out is not None:
        out.figure(name, fig)
    return fig


def measure_gpu_memory(schemes: tuple[str, ...] = ATTENTION_SCHEMES, crops: tuple[int, ...] = paper.FIGURE3_CROPS,
                       frames: tuple[int, ...] = paper.FIGURE3_FRAMES, *, batch_size: int = 1,
                       training: bool = True) -> pd.DataFrame:
    """Peak GPU memory of ViT-B/16 (bf16 autocast) per scheme over crops and frames; OOM recorded.

    The measurement is :func:`tsf.bench.memory.memory_curves` (what ``python -m tsf bench
    --memory-curves`` commits), as a table.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("measure_gpu_memory needs a CUDA GPU; use flops_curves' analytic memory instead")
    return pd.DataFrame(memory_curves(schemes, crops, frames, batch_size=batch_size, training=training))


def cost_summary(flops: pd.DataFrame, models: pd.DataFrame, timing: pd.DataFrame, out: Output) -> list[dict[str, Any]]:
    """Summary lines: the paper's TFLOPs, Joint vs Divided growth, where Joint outgrows 32 GB, measured time."""
    names = {"base": "TimeSformer", "hr": "TimeSformer-HR", "large": "TimeSformer-L"}
    lines = [{"what": f"{names[r.model]} ({r.frames} x {r.crop}): TFLOPs, 3 views", "ours": f"{r.tflops_3views:.3f}", "paper": f"{r.paper_tflops_3views}",
              "verdict": "yes" if abs(r.rel_diff) <= 0.01 else "no"} for r in models.itertuples()]
    by = flops.set_index(["scheme", "axis", "value"])
    for axis, lo, hi in (("frames", 8, 96), ("crop", 224, 560)):
        j = by.loc[("joint", axis, hi), "tflops"] / by.loc[("joint", axis, lo), "tflops"]
        d = by.loc[("divided", axis, hi), "tflops"] / by.loc[("divided", axis, lo), "tflops"]
        lines.append({"what": f"cost growth from {lo} to {hi} {'frames' if axis == 'frames' else 'px'}: Joint vs Divided",
                      "ours": f"x{j:.1f} vs x{d:.1f}", "paper": "Joint grows far faster (Figure 3)",
                      "verdict": "yes" if j > 2 * d else "no"})
    limit = paper.FIGURE3_JOINT_OOM["gpu_memory_gb"]
    for axis in ("crop", "frames"):
        part = flops[(flops.scheme == "joint") & (flops.axis == axis)].set_index("value")
        over = part[part.train_memory_gb > limit].index
        first = int(over.min()) if len(over) else None
        paper_first = paper.FIGURE3_JOINT_OOM[axis]
        divided = flops[(flops.scheme == "divided") & (flops.axis == axis)]
        lines.append({"what": f"Joint: first {axis} whose training step outgrows 32 GB (analytic estimate, 1 clip)",
                      "ours": f"{first if first else 'none'} (at {paper_first}: {part.train_memory_gb[paper_first]:.1f} GB)",
                      "paper": f"out of memory from {paper_first}",
                      "verdict": "yes" if first == paper_first else "no"})
        lines.append({"what": f"Divided: largest training step over the {axis} sweep (analytic estimate, 1 clip)",
                      "ours": f"{divided.train_memory_gb.max():.1f} GB", "paper": "fits a 32 GB GPU throughout",
                      "verdict": "yes" if divided.train_memory_gb.max() < limit else "no"})
    for r in timing[timing["mode"] == "training"].itertuples():
        lines.append({"what": f"{TITLES[r.scheme]}: training ms per clip, '{r.model}' model "
                              f"(measured, {_how(r._asdict())})",
                      "ours": f"{r.ms_per_clip:.1f}", "paper": "-"})
    out.summary("cost", "Figure 3, Tables 2-3: cost", lines, note=(
        "FLOPs count one multiply-add as one operation, as the paper does. Memory is an analytic estimate of "
        "an explicit-attention float32 training step for one clip (tsf.cost.training_memory_bytes); it leaves "
        "out the CUDA context and allocator slack, about 1-3 GB on a real GPU. " + memory_note()))
    return lines


def memory_note(cuda: bool | None = None) -> str:
    """What measured the memory here: a GPU (``gpu_memory``, below) or none."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda:
        return (f"This machine's GPU ({torch.cuda.get_device_name(0)}) measured it too: gpu_memory "
                "(peak memory of a bf16 training step, ViT-B/16, batch 1).")
    return "No GPU measured it here."


def gpu_memory(out: Output) -> pd.DataFrame | None:
    """Measured peak memory when a CUDA GPU is present (saved as ``gpu_memory``, and drawn in the
    memory panel of ``cost_flops`` in place of the analytic estimate); otherwise a note."""
    if not torch.cuda.is_available():
        print("no CUDA GPU here: the memory panel above is the analytic estimate, labelled as such")
        return None
    frame = measure_gpu_memory()
    out.table("gpu_memory", frame)
    plot_flops(flops_curves(), out, measured=frame)
    print("cost_flops.png drawn again: its memory panel is now the memory measured on this GPU")
    return frame
