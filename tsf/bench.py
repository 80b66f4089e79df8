"""``python -m tsf bench``: our TimeSformer beside Hugging Face's, timed in one run.

For each scheme of a *case* (a model preset, batch size, precision, with or without
``torch.compile``) this builds our model, gives Hugging Face's
``TimesformerForVideoClassification`` the same weights with :func:`tsf.to_hf` (divided and
joint: the schemes it has), checks that the two give the same logits, and times them on
the same batch, **interleaved round by round** (each round runs every model once, in an
order rotated from round to round, so a drift of the machine touches all alike). The
warm-up rounds are not kept; a row reports the median clips per second and the quartiles.

* inference: ``torch.inference_mode()``, eval mode;
* training: forward, cross-entropy, backward, ``clip_grad_norm_(1.0)``, AdamW step and
  ``zero_grad(set_to_none=True)``, the study's recipe (``tsf.study.presets``);
* memory: the peak growth of one step over what was allocated before it (activations,
  gradients, workspaces; not the weights or the optimiser state). CPU: in a fresh process,
  after one warm step and ``malloc_trim``, the peak resident set (Linux ``VmHWM``, reset
  through ``/proc/self/clear_refs``) minus the resident set before the step. GPU:
  ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the step;
* model FLOPs utilisation: ``tsf.count_macs`` counts multiply-adds, so a forward pass is
  ``2 * macs`` FLOPs and a training step ``6 * macs`` (backward = two forward passes); the
  rate is divided by the device's measured matmul rate (median of repeats of a large
  matmul: float32 on CPU, bf16 on a GPU) at the case's thread count.

Stochastic depth is off in every case (``drop_path_rate=0``): transformers >= 5 types it as
an integer, so the exported model could not have it, and it would make the steps differ.

Results are JSON (device, versions, date, command and load average per case) under
``benchmarks/results/``; :func:`format_results` is the README table and
:func:`plot_results` the figure.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime as _dt
import gc
import json
import logging
import os
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ATTENTION_SCHEMES, TimeSformerConfig, canonical_attention, preset
from .cost import count_macs
from .model import TimeSformer

log = logging.getLogger(__name__)

HF_SCHEMES = ("divided", "joint")  # Hugging Face's space_only returns per-frame logits: not the same model
IMPLS = ("tsf", "hf")
MODES = ("train", "infer")
PARITY_TOLERANCE = 1e-4  # largest logit difference, relative to the largest logit, float32
MEMORY_FRAMES = (8, 16, 32, 64, 96)  # the memory curves: frames at the preset's crop ...
MEMORY_CROPS = (224, 336, 448, 560)  # ... and crops at the preset's frame count


# ---------------------------------------------------------------------------------------
# What to run


@dataclass(frozen=True)
class Case:
    """One benchmark setting; every scheme of it is timed in the same interleaved rounds."""

    name: str
    preset: str  # tsf.preset name
    schemes: tuple[str, ...] = ATTENTION_SCHEMES
    batch_size: int | None = None  # None: fill the device (the largest power of two every model trains at)
    modes: tuple[str, ...] = MODES
    hf: bool = True  # time Hugging Face's model too (divided, joint)
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    compile: bool = False  # torch.compile every model
    threads: int | None = None  # CPU threads (None: torch's default)
    warmup: int = 3  # rounds not kept
    repeats: int = 20  # rounds kept
    num_frames: int | None = None  # input size, default the preset's
    img_size: int | None = None

    def config(self, scheme: str) -> TimeSformerConfig:
        sizes = {k: v for k, v in (("num_frames", self.num_frames), ("img_size", self.img_size)) if v is not None}
        return preset(self.preset, attention=scheme, drop_path_rate=0.0, **sizes)


CPU_CASES: tuple[Case, ...] = (
    # the study's model and batch (tsf.study.presets "cpu"), all cores
    Case("small-train", "small", batch_size=32, warmup=3, repeats=20),
    # the study trains two runs side by side, one thread each: what `make reproduce` waits for
    Case("small-train-1thread", "small", batch_size=32, modes=("train",), threads=1, warmup=2, repeats=10),
    # both compiled (inductor, C++): the fastest either can be on this machine
    Case("small-train-compile", "small", schemes=HF_SCHEMES, batch_size=32, modes=("train",), compile=True,
         warmup=2, repeats=10),
    # ViT-B/16, 8 x 224, one clip
    Case("base-infer", "base", batch_size=1, modes=("infer",), warmup=1, repeats=5),
)

GPU_CASES: tuple[Case, ...] = tuple(
    Case(f"{name}-bf16{'-compile' if compiled else ''}", name, schemes=HF_SCHEMES if compiled else ATTENTION_SCHEMES,
         precision="bf16", compile=compiled, warmup=3, repeats=10)
    for name in ("base", "hr", "large") for compiled in (False, True))

# Not in a suite (a training step takes minutes on 2 cores): Joint over 96 x 224 clips, 18,817
# tokens in one attention, which ran out of memory at 32 frames in the paper's implementation.
LONG_CASES: tuple[Case, ...] = (
    Case("large-joint-cpu", "large", schemes=("joint",), batch_size=1, modes=("train",), hf=False, warmup=0,
         repeats=1),
)

SUITES: dict[str, tuple[Case, ...]] = {"cpu": CPU_CASES, "gpu": GPU_CASES}


def find_case(name: str) -> Case:
    cases = CPU_CASES + GPU_CASES + LONG_CASES
    for case in cases:
        if case.name == name:
            return case
    raise ValueError(f"unknown benchmark case {name!r}; choose from {[c.name for c in cases]}")


# ---------------------------------------------------------------------------------------
# Measuring


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile); one value is all three."""
    if len(values) == 1:
        return (values[0],) * 3
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(calls: dict[str, Callable[[], Any]], *, warmup: int, repeats: int,
                     device: torch.device | str = "cpu", progress: bool = True) -> dict[str, list[float]]:
    """Seconds per call of every callable, ``repeats`` rounds after ``warmup`` rounds.

    Every round calls each one once; the order is rotated by one place each round.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    names = list(calls)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    for r in tqdm(range(warmup + repeats), desc="rounds", unit="round", disable=not progress, leave=False):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            _sync(device)
            start = time.perf_counter()
            calls[name]()
            _sync(device)
            if r >= warmup:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def matmul_rate(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None,
                repeats: int = 10) -> dict[str, Any]:
    """The measured rate of a large ``n x n`` matmul: median of ``repeats``, in TFLOP/s (2 n^3 FLOPs each)."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    seconds = time_interleaved({"mm": lambda: a @ b}, warmup=3, repeats=repeats, device=device, progress=False)["mm"]
    return {"n": n, "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
            "tflops": 2 * n**3 / statistics.median(seconds) / 1e12}


def model_flops_utilisation(macs_per_clip: int, clips_per_s: float, matmul_tflops: float, mode: str) -> float:
    """Achieved model FLOP/s over the matmul rate: ``2 * macs`` per clip for inference, ``6 * macs`` to train.

    ``macs_per_clip`` is :func:`tsf.count_macs` (multiply-adds; one multiply-add is 2 FLOPs).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    passes = 3 if mode == "train" else 1  # backward = twice the forward's products
    return 2 * passes * macs_per_clip * clips_per_s / (matmul_tflops * 1e12)


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS (glibc), so the next step's growth is counted."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_peak_growth(fn: Callable[[], Any]) -> int:
    """Bytes the resident set grows to at its peak while ``fn`` runs, above where it started.

    Linux: resets the peak (``VmHWM``) through ``/proc/self/clear_refs`` first; elsewhere the
    process's lifetime peak (``ru_maxrss``), which undercounts once anything earlier was larger.
    """
    _malloc_trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kb("VmRSS")
    except OSError:
        before = None
    if before is None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    fn()
    return max(0, (_status_kb("VmHWM") or before) - before) * 1024


def cuda_peak_growth(fn: Callable[[], Any], device: torch.device | str = "cuda") -> int:
    """Bytes ``torch.cuda.max_memory_allocated`` reaches while ``fn`` runs, above what was allocated before."""
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


# ---------------------------------------------------------------------------------------
# The models and their steps


class HFLogits(nn.Module):
    """Hugging Face's model as ``(B, T, C, H, W) -> logits`` (its layout, prepared outside the timing)."""

    def __init__(self, hf: nn.Module) -> None:
        super().__init__()
        self.hf = hf

    def forward(self, video: Tensor) -> Tensor:
        return self.hf(pixel_values=video).logits


def build_models(config: TimeSformerConfig, *, hf: bool = True, seed: int = 0) -> dict[str, nn.Module]:
    """Our model and, where it has the scheme, Hugging Face's with the same weights.

    The zero-initialised parameters (``*_fc``, ``time_embed``) get small random values, so
    that the logits check below runs through every path of the model.
    """
    torch.manual_seed(seed)
    ours = TimeSformer(config)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name == "time_embed" or "_fc." in name:
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    models: dict[str, nn.Module] = {"tsf": ours}
    if hf and config.attention in HF_SCHEMES:
        from .weights import to_hf

        models["hf"] = HFLogits(to_hf(ours))
    return models


def clip_batch(config: TimeSformerConfig, batch_size: int, device: torch.device | str = "cpu",
               seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """The same random clips and labels in each implementation's layout: ``{impl: (video, labels)}``."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch_size, config.in_chans, config.num_frames, config.img_size, config.img_size, generator=g)
    labels = torch.randint(0, max(config.num_classes, 1), (batch_size,), generator=g)
    return {"tsf": (video.to(device), labels.to(device)),
            "hf": (video.transpose(1, 2).contiguous().to(device), labels.to(device))}


def check_parity(models: dict[str, nn.Module], batch: dict[str, tuple[Tensor, Tensor]],
                 tolerance: float = PARITY_TOLERANCE) -> dict[str, float] | None:
    """Our logits against Hugging Face's on the same clips (float32, eval); an error if they differ."""
    if "hf" not in models:
        return None
    with torch.inference_mode():
        ours = models["tsf"].eval()(batch["tsf"][0]).float()
        theirs = models["hf"].eval()(batch["hf"][0]).float()
    diff = (ours - theirs).abs().max().item()
    scale = ours.abs().max().item()
    if not diff <= tolerance * max(scale, 1e-12):
        raise RuntimeError(f"tsf and Hugging Face logits differ: max difference {diff:.3g} at logit scale {scale:.3g}")
    return {"max_abs_diff": diff, "max_abs_logit": scale}


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")


def make_step(model: nn.Module, video: Tensor, labels: Tensor, mode: str, *, precision: str = "fp32",
              optimizer: torch.optim.Optimizer | None = None) -> Callable[[], None]:
    """One inference call or one training step of ``model`` on ``video`` as a callable."""
    device = video.device
    if mode == "infer":
        def infer() -> None:
            model.eval()
            with torch.inference_mode(), _autocast(device, precision):
                model(video)
        return infer
    if mode != "train":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer or torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)

    def train() -> None:
        model.train()
        with _autocast(device, precision):
            loss = F.cross_entropy(model(video).float(), labels)
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return train


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def fill_batch(config: TimeSformerConfig, models: dict[str, nn.Module], device: torch.device, precision: str,
               limit: int = 1024, share: float = 0.8) -> int:
    """The largest power-of-two batch at which every model that fits one clip takes a training
    step within ``share`` of the GPU's memory (the rest for the case's other models); 1 if none fits."""
    total = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None

    def fits(model: nn.Module, video: Tensor, labels: Tensor) -> bool:
        try:
            if total is not None:
                torch.cuda.reset_peak_memory_stats(device)
            make_step(model, video, labels, "train", precision=precision)()
            return total is None or torch.cuda.max_memory_allocated(device) <= share * total
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            return False
        finally:
            model.zero_grad(set_to_none=True)
            if total is not None:
                torch.cuda.empty_cache()

    largest = {}
    for impl, model in models.items():
        batch_size, largest[impl] = 1, 0
        while batch_size <= limit and fits(model, *clip_batch(config, batch_size, device)[impl]):
            largest[impl], batch_size = batch_size, batch_size * 2
    return min((b for b in largest.values() if b), default=1)


# ---------------------------------------------------------------------------------------
# Running a case


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _memory_probe(case_json: str, scheme: str, batch_size: int) -> dict[str, int]:
    """In a fresh process: the peak growth of one step of each model and mode (after a warm one,
    unless the case has no warm-up: then the first step, optimiser state included)."""
    case = Case(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(case_json).items()})
    if case.threads:
        torch.set_num_threads(case.threads)
    config = case.config(scheme)
    models = build_models(config, hf=case.hf)
    data = clip_batch(config, batch_size)
    out = {}
    for impl, model in models.items():
        for mode in case.modes:
            step = make_step(model, *data[impl], mode, precision=case.precision)
            if case.warmup:
                step()
            out[f"{impl}/{mode}"] = cpu_peak_growth(step)
    return out


def _cpu_memory(case: Case, scheme: str, batch_size: int) -> dict[str, int]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_memory_probe, json.dumps(dataclasses.asdict(case)), scheme, batch_size).result()


@contextlib.contextmanager
def _case_threads(case: Case):
    """The case's CPU thread count (if it sets one) while inside; torch's count as before after."""
    threads_before = torch.get_num_threads()
    if case.threads:
        torch.set_num_threads(case.threads)
    try:
        yield
    finally:
        torch.set_num_threads(threads_before)


def run_case(case: Case, *, device: str | torch.device = "cpu", memory: bool = True, progress: bool = True,
             command: Sequence[str] | None = None) -> dict[str, Any]:
    """Build, check and time every model of a case; the result as a JSON-ready dict."""
    with _case_threads(case):
        return _run_case(case, torch.device(device), memory, progress, command)


def _run_case(case: Case, device: torch.device, memory: bool, progress: bool,
              command: Sequence[str] | None) -> dict[str, Any]:
    load_start = _load()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    dtype = torch.bfloat16 if case.precision == "bf16" and device.type == "cuda" else torch.float32
    rate = matmul_rate(device, dtype)
    steps: dict[str, Callable[[], None]] = {}
    rows: dict[str, dict[str, Any]] = {}
    parity: dict[str, Any] = {}
    for scheme in case.schemes:
        config = case.config(scheme)
        models = {k: m.to(device) for k, m in build_models(config, hf=case.hf).items()}
        try:
            parity[scheme] = check_parity(models, clip_batch(config, min(2, case.batch_size or 1), device))
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            parity[scheme] = {"skipped": "out of memory (float32 check)"}
        batch_size = case.batch_size or fill_batch(config, models, device, case.precision)
        data = clip_batch(config, batch_size, device)
        macs = count_macs(config)
        mem = _cpu_memory(case, scheme, batch_size) if memory and device.type == "cpu" and not case.compile else {}
        for impl, model in models.items():
            runnable = torch.compile(model) if case.compile else model
            for mode in case.modes:
                key = f"{impl}/{scheme}/{mode}"
                row = {"impl": impl, "scheme": scheme, "mode": mode, "batch_size": batch_size,
                       "gmacs_per_clip": macs / 1e9}
                step = make_step(runnable, *data[impl], mode, precision=case.precision)
                try:
                    if device.type == "cuda" or case.compile or case.warmup:
                        step()  # compilation, allocator warm-up; a model that does not fit stops here
                    if memory and device.type == "cuda":
                        row["peak_memory_mb"] = cuda_peak_growth(step, device) / 2**20
                except RuntimeError as err:
                    if not _is_oom(err):
                        raise
                    row["oom"] = True
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                if f"{impl}/{mode}" in mem:
                    row["peak_memory_mb"] = mem[f"{impl}/{mode}"] / 2**20
                rows[key] = row
                if not row.get("oom"):
                    steps[key] = step
    seconds = time_interleaved(steps, warmup=case.warmup, repeats=case.repeats, device=device, progress=progress)
    for key, values in seconds.items():
        row = rows[key]
        q1, median, q3 = quartiles([row["batch_size"] / s for s in values])  # clips per second
        row.update(clips_per_s=median, clips_per_s_q1=q1, clips_per_s_q3=q3, rounds=len(values),
                   mfu=model_flops_utilisation(int(row["gmacs_per_clip"] * 1e9), median, rate["tflops"], row["mode"]))
    ratios = {}
    for scheme in case.schemes:
        for mode in case.modes:
            ours, theirs = rows.get(f"tsf/{scheme}/{mode}", {}), rows.get(f"hf/{scheme}/{mode}", {})
            if "clips_per_s" in ours and "clips_per_s" in theirs:
                ratios[f"{scheme}/{mode}"] = ours["clips_per_s"] / theirs["clips_per_s"]
    argv = list(command) if command is not None else ["python", "-m", "tsf", *sys.argv[1:]]
    return {"case": dataclasses.asdict(case), "date": started, "command": shlex.join(argv), "device": str(device),
            "threads": torch.get_num_threads(), "load_average_1min": {"start": load_start, "end": _load()},
            "matmul": rate, "parity": parity, "rows": list(rows.values()), "tsf_over_hf": ratios}


def device_info(device: torch.device | str) -> dict[str, Any]:
    """The machine (CPU, cores, versions) and, on a GPU, the card."""
    from .data.bench import machine_info

    info = machine_info()
    info.pop("load_average_1min", None)  # per case, start and end
    info["environment"] = {k: v for k, v in sorted(os.environ.items())  # what changes threading and allocation
                           if k.startswith(("OMP_", "MKL_", "KMP_", "MALLOC_", "LD_PRELOAD", "PYTORCH_", "CUDA_VISIBLE"))}
    with contextlib.suppress(ImportError):
        import transformers

        info["versions"]["transformers"] = transformers.__version__
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": props.name, "memory_gb": props.total_memory / 1e9, "cuda": torch.version.cuda}
    return info


def merge_results(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s cases replace those of the same name in ``old`` (the same device and machine)."""
    if old is None:
        return new
    if old.get("device") != new["device"] or old.get("machine", {}).get("gpu") != new["machine"].get("gpu"):
        raise ValueError(f"cannot merge results of {new['device']} into a file of {old.get('device')} "
                         "(another device or card): write to another --out")
    names = [c["case"]["name"] for c in new["cases"]]
    kept = [c for c in old["cases"] if c["case"]["name"] not in names]
    return {**new, "cases": kept + new["cases"], "memory_curves": new.get("memory_curves") or old.get("memory_curves")}


def run_bench(cases: Sequence[Case], *, device: str | torch.device = "cpu", memory: bool = True,
              with_memory_curves: bool = False, progress: bool = True,
              command: Sequence[str] | None = None) -> dict[str, Any]:
    """Every case, one after the other, and on a GPU the memory curves if asked."""
    device = torch.device(device)
    result: dict[str, Any] = {"benchmark": "tsf bench", "device": device.type, "machine": device_info(device),
                              "cases": []}
    for case in cases:
        log.info("case %s", case.name)
        result["cases"].append(run_case(case, device=device, memory=memory, progress=progress, command=command))
    if with_memory_curves:
        result["memory_curves"] = {
            "what": "peak torch.cuda.max_memory_allocated of a bf16-autocast forward + backward, batch 1, "
                    "ViT-B/16 (weights included, no optimiser)",
            "rows": memory_curves(device=device, progress=progress)}
    return result


# ---------------------------------------------------------------------------------------
# Memory against clip length and crop (the cost notebook's memory panel)


def memory_curves(schemes: Sequence[str] = ATTENTION_SCHEMES, crops: Sequence[int] = MEMORY_CROPS,
                  frames: Sequence[int] = MEMORY_FRAMES, *, model_preset: str = "base", batch_size: int = 1,
                  training: bool = True, precision: str = "bf16", device: str | torch.device = "cuda",
                  measure: Callable[[Callable[[], Any]], int] | None = None,
                  progress: bool = True) -> list[dict[str, Any]]:
    """Peak memory of one model per scheme over crops (at the preset's frames) and frames (at its crop).

    A training point is forward + backward (no optimiser), an inference point a forward
    under ``no_grad``, in ``precision`` autocast. ``measure(fn)`` runs ``fn`` and returns its
    peak bytes (default on a GPU: ``torch.cuda.max_memory_allocated`` with the model's
    weights included); a point that runs out of memory is a row with ``oom=True``.
    """
    from tqdm.auto import tqdm

    device = torch.device(device)
    if measure is None:
        if device.type != "cuda":
            raise RuntimeError("memory_curves measures GPU memory: it needs a CUDA device (or a measure function)")

        def measure(fn: Callable[[], Any]) -> int:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device)

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    points = [(s, axis, v) for s in schemes for axis, values in (("crop", crops), ("frames", frames)) for v in values]
    rows: list[dict[str, Any]] = []
    model, built_for = None, None
    for scheme, axis, value in tqdm(points, desc="memory", unit="point", disable=not progress):
        if built_for != scheme:
            model = None
            gc.collect()
            base = preset(model_preset, attention=scheme, drop_path_rate=0.0)
            model, built_for = TimeSformer(base).to(device), scheme
        T, S = (base.num_frames, value) if axis == "crop" else (value, base.img_size)

        def point() -> None:
            x = torch.randn(batch_size, base.in_chans, T, S, S, device=device)
            with _autocast(device, precision):
                if training:
                    model(x).float().sum().backward()
                else:
                    with torch.no_grad():
                        model(x)

        try:
            peak, oom = measure(point), False
        except RuntimeError as err:
            if not _is_oom(err):
                raise
            peak, oom = None, True
        model.zero_grad(set_to_none=True)
        rows.append({"scheme": scheme, "axis": axis, "value": value, "frames": T, "crop": S,
                     "peak_gb": None if oom else peak / 1e9, "oom": oom, "training": training,
                     "batch_size": batch_size, "gpu": where})
    return rows


# ---------------------------------------------------------------------------------------
# Where the time goes: torch.profiler over training steps, ours beside Hugging Face's

#: operator families, by the first pattern (a substring of the aten name) that matches
OP_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("matmul", ("addmm", "aten::mm", "bmm", "baddbmm", "matmul", "linear")),
    ("attention kernel", ("scaled_dot_product", "_flash_attention", "_efficient_attention", "softmax")),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("optimiser", ("_foreach", "adam", "norm", "clamp")),
    ("copies and reshapes", ("copy_", "clone", "contiguous", "cat", "_unsafe_view", "reshape", "index",
                             "expand", "permute", "transpose", "stack", "split", "narrow", "slice", "select")),
    ("elementwise", ("add", "mul", "div", "sub", "mean", "sum", "fill_", "zero_", "where", "dropout")),
)


def op_family(name: str) -> str:
    """The family of an aten operator (``aten::addmm`` -> ``matmul``), ``other`` if none matches."""
    lowered = name.lower()
    for family, patterns in OP_FAMILIES:
        if any(p in lowered for p in patterns):
            return family
    return "other"


def profile_steps(case_name: str = "small-train", scheme: str = "divided", mode: str = "train", *,
                  rounds: int = 5, warmup: int = 2, top: int = 12, batch_size: int | None = None) -> dict[str, Any]:
    """Profile ``rounds`` steps of each implementation of ``case``/``scheme`` with ``torch.profiler``.

    Returns, per implementation, the wall time per step, the self CPU time per step by
    operator family (:data:`OP_FAMILIES`) and the ``top`` operators by self time, so that a
    missed target says where the time goes. CPU only: on a GPU, ``torch.profiler`` with CUDA
    activities is the tool, and the interleaved timings of :func:`run_case` are the numbers.
    """
    from torch.profiler import ProfilerActivity, profile

    case = find_case(case_name)
    config = case.config(canonical_attention(scheme))
    batch_size = batch_size or case.batch_size or 8
    with _case_threads(case):
        models = build_models(config, hf=case.hf)
        data = clip_batch(config, batch_size)
        out: dict[str, Any] = {"case": case_name, "scheme": config.attention, "mode": mode, "batch_size": batch_size,
                               "rounds": rounds, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "impls": {}}
        for impl, model in models.items():
            step = make_step(model, *data[impl], mode)
            for _ in range(warmup):
                step()
            start = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(rounds):
                    step()
            wall = (time.perf_counter() - start) / rounds
            families: dict[str, float] = {}
            ops = []
            for event in prof.key_averages():
                self_ms = event.self_cpu_time_total / 1e3 / rounds
                if self_ms <= 0:
                    continue
                family = op_family(event.key)
                families[family] = families.get(family, 0.0) + self_ms
                ops.append({"op": event.key, "family": family, "self_ms": self_ms, "calls": event.count // rounds})
            ops.sort(key=lambda o: -o["self_ms"])
            out["impls"][impl] = {"wall_ms_per_step_profiled": wall * 1e3,
                                  "self_ms_by_family": dict(sorted(families.items(), key=lambda kv: -kv[1])),
                                  "self_ms_total": sum(families.values()), "top_ops": ops[:top]}
    return out


def format_profile(result: dict[str, Any]) -> str:
    """The profile as a markdown table: milliseconds of self CPU time per step, by family."""
    impls = list(result["impls"])
    families = list(dict.fromkeys(f for i in impls for f in result["impls"][i]["self_ms_by_family"]))
    head = f"| {result['scheme']} {result['mode']} step, batch {result['batch_size']} (ms) | " + " | ".join(impls) + " |"
    lines = [head, "|" + "---|" * (len(impls) + 1)]
    for family in families:
        cells = [f"{result['impls'][i]['self_ms_by_family'].get(family, 0.0):.1f}" for i in impls]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    lines.append("| all operators (self time) | " + " | ".join(f"{result['impls'][i]['self_ms_total']:.1f}"
                                                               for i in impls) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Reporting


def _rate(row: dict[str, Any] | None) -> str:
    if not row:
        return "-"
    if row.get("oom"):
        return "out of memory"
    digits = 1 if row["clips_per_s"] >= 100 else 2 if row["clips_per_s"] >= 1 else 3
    return f"{row['clips_per_s']:.{digits}f} ({row['clips_per_s_q1']:.{digits}f}-{row['clips_per_s_q3']:.{digits}f})"


def _mem(row: dict[str, Any] | None) -> str:
    return f"{row['peak_memory_mb']:.0f}" if row and row.get("peak_memory_mb") is not None else "-"


def table_rows(result: dict[str, Any]) -> list[dict[str, str]]:
    """One row per case, mode and scheme: our rate and Hugging Face's, the ratio, memory, MFU."""
    out = []
    for case in result["cases"]:
        rows = {(r["impl"], r["scheme"], r["mode"]): r for r in case["rows"]}
        for mode in case["case"]["modes"]:
            for scheme in case["case"]["schemes"]:
                ours, theirs = rows.get(("tsf", scheme, mode)), rows.get(("hf", scheme, mode))
                ratio = case["tsf_over_hf"].get(f"{scheme}/{mode}")
                out.append({
                    "case": case["case"]["name"], "mode": mode, "scheme": scheme,
                    "batch": str(ours["batch_size"]) if ours else "-", "threads": str(case["threads"]),
                    "tsf": _rate(ours), "hf": _rate(theirs), "ratio": f"{ratio:.2f}" if ratio else "-",
                    "tsf_mb": _mem(ours), "hf_mb": _mem(theirs),
                    "mfu": f"{ours['mfu']:.0%}" if ours and "mfu" in ours else "-",
                    "hf_mfu": f"{theirs['mfu']:.0%}" if theirs and "mfu" in theirs else "-"})
    return out


def format_results(result: dict[str, Any]) -> str:
    """The plain-text table ``python -m tsf bench`` prints and README.md shows."""
    from .__main__ import format_table

    table = format_table(table_rows(result), [
        ("case", "case", "s"), ("mode", "mode", "s"), ("scheme", "scheme", "s"), ("batch", "batch", "s"),
        ("threads", "thr", "s"), ("tsf", "tsf clips/s (IQR)", "s"), ("hf", "HF clips/s (IQR)", "s"),
        ("ratio", "tsf/HF", "s"), ("tsf_mb", "tsf MB", "s"), ("hf_mb", "HF MB", "s"), ("mfu", "tsf MFU", "s"),
        ("hf_mfu", "HF MFU", "s")])
    rates = ", ".join(f"{c['case']['name']} {c['matmul']['tflops'] * 1e3:.0f} GFLOP/s ({c['matmul']['dtype']}, "
                      f"{c['matmul']['threads']} thr)" for c in result["cases"])
    return f"{table}\nmatmul rate (MFU denominator): {rates}"


def plot_results(result: dict[str, Any], path: str | os.PathLike | None = None):
    """Clips per second (median, quartile bars) of ours and Hugging Face's, a panel per case and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(c, m) for c in result["cases"] for m in c["case"]["modes"]]
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.6 * nrows), squeeze=False)
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
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig


def plot_memory_curves(rows: Sequence[dict[str, Any]], path: str | os.PathLike | None = None, title: str = ""):
    """Peak memory against frames and crop, one line per scheme; points out of memory marked x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
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
        ax.set_xlabel("frames (at 224 px)" if axis == "frames" else "crop px (at 8 frames)")
        ax.set_ylabel("peak GB")
    axes[0].legend(fontsize=8)
    fig.suptitle(title or "peak memory, training step, batch 1 (x: out of memory)", fontsize=10)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
