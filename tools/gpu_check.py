"""The prepared GPU check: ``make gpu-check`` (``python3 tools/gpu_check.py --out DIR``).

Runs on a machine whose torch (with CUDA) is already installed, from the working tree (an
absolute ``PYTHONPATH``; nothing is installed), in at most ``--deadline`` seconds (7 minutes),
five stages one after the other, each in a process of its own under a timeout of its own, so
that a hung kernel or a poisoned CUDA context costs one stage, not the check:

1. ``env.json``: the GPU, its driver, versions, the notebook wheels (``wheels.txt``) found or missing;
2. ``correctness.json``: every scheme on CUDA in float32 (fused and explicit attention) and bf16
   against a float64 reference on the CPU (logits and gradients), and which steps flash attention takes;
3. ``bench_gpu.json``: ``python -m tsf bench``'s result at base 8 x 224 in bf16, all five schemes, ours
   and Hugging Face's, training and inference, and the memory curves (frames 8-96, crops 224-560);
   written after each case, so a timeout keeps what finished;
4. ``train.json``: the training engine on a medium model and synthetic clips: an uninterrupted run
   against one stopped and resumed (the losses compared), clips/s with and without DataLoader workers;
5. ``extra.json``: while time is left, the HR and L cases and one compiled case (into
   ``bench_gpu.json``), and a training step of Joint at 96 x 224 with gradient checkpointing.

``check.json`` says how each stage ended and how long it took; ``log.txt`` holds the stages' output.
That is seven files, each small. ``--dry-run`` does the same on the CPU at tiny sizes in seconds
(the test suite runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WHEELS_LIST = ROOT / "wheels.txt"
WHEELS_DIR = ROOT / "wheels"
DEADLINE = 420.0  # seconds for the whole check
MARGIN = 5.0  # seconds kept back from each stage's limit for writing its file
SHORTEST = 10.0  # a stage is not started with less time than this


# -- what each stage does (run in a child process; imports torch and tsf there) ----------------------

def _write(out: Path, name: str, data: Any) -> None:
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(out / name)


def wheels_status(list_file: Path = WHEELS_LIST, folder: Path = WHEELS_DIR) -> dict[str, Any]:
    """Each package of ``wheels.txt``: the version installed (or None) and whether its wheel is in ``folder``."""
    import importlib.metadata

    found = {p.name.split("-")[0].lower().replace("_", "-") for p in folder.glob("*.whl")} if folder.is_dir() else set()
    rows = {}
    for line in list_file.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, want = line.partition("==")
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        rows[name] = {"wanted": want, "installed": have, "wheel": name.lower().replace("_", "-") in found}
    missing = sorted(n for n, r in rows.items() if r["installed"] is None)
    return {"packages": rows, "missing": missing, "wheels_found": sum(r["wheel"] for r in rows.values())}


def stage_env(ctx: dict[str, Any]) -> dict[str, Any]:
    import torch

    from tsf.provenance import machine

    device = ctx["device"]
    info: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable,
                            "torch": torch.__version__, "cuda": torch.version.cuda,
                            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                            "machine": machine(device), "wheels": wheels_status()}
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA GPU is visible here (run with --dry-run on a CPU)")
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = {"name": props.name, "memory_gb": props.total_memory / 1e9,
                       "capability": f"{props.major}.{props.minor}", "multiprocessors": props.multi_processor_count,
                       "bf16": torch.cuda.is_bf16_supported(), "flash_sdp": torch.backends.cuda.flash_sdp_enabled(),
                       "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    return info


#: relative error ||out - ref|| / ||ref|| allowed against the float64 reference (METHOD.md): float32 with
#: the convolution in TF32 (cuDNN's default), bf16 autocast
TOLERANCE = {"fp32": 2e-3, "fp32_explicit": 2e-3, "bf16": 3e-2}


def _relative(out, ref) -> float:
    import torch

    out, ref = out.detach().double().cpu(), ref.detach().double().cpu()
    if not torch.isfinite(out).all():
        return float("nan")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def stage_correctness(ctx: dict[str, Any]) -> dict[str, Any]:
    import copy

    import torch
    import torch.nn.functional as F

    from tsf.attention import SCHEMES
    from tsf.config import ATTENTION_SCHEMES, preset
    from tsf.model import TimeSformer, autocast, randomise_zero_inits

    device = torch.device(ctx["device"])
    dry = ctx["dry_run"]
    # ViT-B's width and heads (head dim 64) over a short clip, two blocks: a float64 reference on the CPU in seconds
    sizes = (dict(img_size=16, patch_size=4, num_frames=4) if dry else
             dict(img_size=112, patch_size=16, num_frames=8, depth=2))
    rows: dict[str, Any] = {}
    for scheme in ATTENTION_SCHEMES:
        cfg = preset("tiny" if dry else "base", attention=scheme, drop_path_rate=0.0, num_classes=10, **sizes)
        torch.manual_seed(0)
        model = randomise_zero_inits(TimeSformer(cfg), seed=1, std=0.02).eval()
        g = torch.Generator().manual_seed(1)
        video = torch.randn(2, 3, cfg.num_frames, cfg.img_size, cfg.img_size, generator=g)
        labels = torch.tensor([1, 7])
        reference = copy.deepcopy(model).double()
        ref_video = video.double().requires_grad_(False)
        ref_logits = reference(ref_video)
        F.cross_entropy(ref_logits, labels).backward()
        ref_grads = [p.grad for p in reference.parameters()]
        on = model.to(device)
        x = video.to(device)
        row: dict[str, Any] = {}
        with torch.no_grad():
            row["fp32"] = _relative(on(x), ref_logits)
            logits, _maps = on(x, return_attention=True)  # the explicit softmax path
            row["fp32_explicit"] = _relative(logits, ref_logits)
            with autocast(device, "bf16"):
                row["bf16"] = _relative(on(x).float(), ref_logits)
        on.zero_grad(set_to_none=True)
        F.cross_entropy(on(x).float(), labels.to(device)).backward()
        grads = [p.grad for p in on.parameters()]
        num = sum(((a.double().cpu() - b) ** 2).sum() for a, b in zip(grads, ref_grads)).sqrt()
        row["fp32_gradients"] = (num / sum((b ** 2).sum() for b in ref_grads).sqrt()).item()
        row["pass"] = all(row[k] <= TOLERANCE[k] for k in TOLERANCE) and row["fp32_gradients"] <= TOLERANCE["fp32"]
        rows[scheme] = row
        del model, on, reference
    return {"what": "relative error ||out - ref|| / ||ref|| of the logits (and the float32 gradients) against "
                    "float64 on the CPU", "sizes": sizes, "tolerance": TOLERANCE, "schemes": rows,
            "all_pass": all(r["pass"] for r in rows.values()), "flash": _flash_eligibility(device, dry, SCHEMES)}


def _flash_eligibility(device, dry: bool, schemes) -> dict[str, Any]:
    """Whether flash attention runs each step's shapes at base 8 x 224 and the benchmark's batch of 64
    (bf16): q, k, v of (batch x groups, heads, L, 64), tried under the flash backend alone."""
    import torch
    import torch.nn.functional as F

    if device.type != "cuda":
        return {"skipped": "flash attention is a CUDA kernel"}
    from torch.nn.attention import SDPBackend, sdpa_kernel

    out: dict[str, Any] = {}
    grid = (8, 14, 14)
    for name, scheme in schemes.items():
        clips, view = scheme.clip_view(grid)
        for step in scheme.steps:
            for groups, length in step.group_sizes(view):
                q = torch.randn(64 * clips * groups, 12, length, 64, device=device, dtype=torch.bfloat16)
                key = f"{name}/{step.name} (G={groups}, L={length})"
                try:
                    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                        F.scaled_dot_product_attention(q, q, q)
                    torch.cuda.synchronize()
                    out[key] = True
                except RuntimeError as err:
                    out[key] = f"no: {str(err).splitlines()[0][:160]}"
    return out


def _bench_case(name: str, preset_name: str, **fields):
    from tsf.bench.models import Case

    return Case(name, preset_name, **fields)


def _small_matmul_for_the_dry_run(models) -> None:
    """The dry run's MFU denominator from a 256 x 256 product (the CPU default, 2048, takes seconds there)."""
    import functools

    # the operands, not matmul_rate: a case times the product in its own rounds (tsf.bench.models._run_case)
    models.matmul_operands = functools.partial(models.matmul_operands, n=256)


#: seconds the memory curves take on an H200 at most (45 points of ViT-B/16, one clip each), by estimate
CURVES_SECONDS = 60


def stage_bench(ctx: dict[str, Any]) -> dict[str, Any]:
    from tsf.bench import models

    out, dry = Path(ctx["out"]), ctx["dry_run"]
    began = time.perf_counter()
    if dry:
        _small_matmul_for_the_dry_run(models)
    # batch 64: divided's temporal step at base passes 2^31 padded elements from a batch of 112 (issue 16).
    # The dry run leaves Hugging Face's model out (importing transformers alone takes longer than its cases).
    case = (_bench_case("tiny-check", "tiny", batch_size=2, warmup=1, repeats=2, hf=False) if dry else
            _bench_case("base-bf16", "base", batch_size=64, precision="bf16", warmup=2, repeats=8))
    path = out / "bench_gpu.json"
    command = ["tools/gpu_check.py", "stage 3"]
    result = models.run_bench([case], device=ctx["device"], memory=not dry, progress=False, command=command,
                              note="make gpu-check, stage 3", on_case=lambda so_far: models.write_merged(path, so_far))
    result = models.write_merged(path, result)
    left = ctx["limit"] - (time.perf_counter() - began)
    if dry or left < CURVES_SECONDS:
        curves = "skipped: " + ("the dry run has no GPU" if dry else f"{left:.0f} s left")
    else:
        result = models.write_merged(path, models.run_bench([], device=ctx["device"], with_memory_curves=True,
                                                            progress=False, command=command))
        curves = f"{len(result['memory_curves']['rows'])} points"
    print(models.format_results(result))
    return {"file": path.name, "verdicts": models.verdicts(result), "memory_curves": curves}


def _engine_config(dry: bool, folder: Path, **overrides):
    from tsf.train import apply_overrides, train_preset

    base = {"output_dir": str(folder), "progress": False, "data.task": "motion", "log_every": 4 if dry else 8,
            "checkpoint_every": 0, "optim.warmup_epochs": 0.5}
    if dry:
        base.update({"data.train_samples": 64, "data.val_samples": 32, "optim.epochs": 2, "optim.batch_size": 8})
    else:
        base.update({"model.preset": "medium", "model.num_classes": 10, "data.train_samples": 4096,
                     "data.val_samples": 512, "optim.epochs": 2, "optim.batch_size": 64, "precision": "auto"})
    return apply_overrides(train_preset("smoke"), {**base, **overrides})


def _step_losses(run_dir: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if line["event"] == "step"}


def stage_train(ctx: dict[str, Any]) -> dict[str, Any]:
    import torch

    from tsf.train import fit
    from tsf.train.engine import loader_workers

    dry, folder = ctx["dry_run"], Path(ctx["scratch"]) / "train"
    device = torch.device(ctx["device"])
    result: dict[str, Any] = {}
    start = time.perf_counter()
    full = fit(_engine_config(dry, folder / "full"))
    result["full"] = {"steps": full.steps, "seconds": time.perf_counter() - start, **full.final}
    stop_at = full.steps // 3
    part = fit(_engine_config(dry, folder / "part", stop_after_steps=stop_at))
    rest = fit(_engine_config(dry, folder / "part"), resume=True)
    a, b = _step_losses(folder / "full"), _step_losses(folder / "part")
    diffs = [abs(a[s] - b[s]) / max(abs(a[s]), 1e-12) for s in a if s in b]
    weights = max((x - y).abs().max().item() for x, y in zip(full.model.state_dict().values(),
                                                             rest.model.state_dict().values()))
    result["resume"] = {"stopped_at": part.steps, "interrupted": part.interrupted, "resumed_to": rest.steps,
                        "steps_compared": len(diffs), "max_relative_loss_difference": max(diffs, default=None),
                        "max_weight_difference": weights, "bit_identical": max(diffs, default=1.0) == 0 and weights == 0,
                        "note": "bf16 autocast and non-deterministic GPU kernels may differ in the last bits"}
    rates = {}  # the whole fit call: set-up, workers' start and the first batches included
    batch = _engine_config(dry, folder).optim.batch_size
    for label, workers, steps in (("no workers", 0, max(2, full.steps // 16)),
                                  ("workers", loader_workers(-1, device) or 1, max(2, full.steps // 4))):
        began = time.perf_counter()
        run = fit(_engine_config(dry, folder / f"rate-{workers}", stop_after_steps=steps,
                                 **{"data.num_workers": workers}))
        seconds = time.perf_counter() - began
        rates[label] = {"workers": workers, "steps": run.steps, "seconds": seconds,
                        "clips_per_s": run.steps * batch / seconds}
    result["clips_per_s"] = rates
    return result


def stage_extra(ctx: dict[str, Any]) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from tsf.bench import models
    from tsf.bench.memory import cuda_peak
    from tsf.config import preset
    from tsf.model import TimeSformer, autocast

    out, dry, device = Path(ctx["out"]), ctx["dry_run"], torch.device(ctx["device"])
    began = time.perf_counter()
    if dry:
        _small_matmul_for_the_dry_run(models)
    result: dict[str, Any] = {}
    # Joint over 96 x 224 (18,817 tokens in one attention): the paper's implementation ran out of memory from 32
    cfg = preset("tiny", attention="joint", num_frames=8) if dry else preset("large", attention="joint",
                                                                             drop_path_rate=0.0)
    model = TimeSformer(cfg).to(device)
    model.set_grad_checkpointing(True)
    video = torch.randn(1, 3, cfg.num_frames, cfg.img_size, cfg.img_size, device=device)

    def step() -> None:
        with autocast(device, "bf16" if device.type == "cuda" else "fp32"):
            loss = F.cross_entropy(model(video).float(), torch.tensor([0], device=device))
        loss.backward()

    try:
        t0 = time.perf_counter()
        peak = cuda_peak(step, device)[0] if device.type == "cuda" else None
        if device.type != "cuda":
            step()
        result["joint_long_clip_train"] = {"frames": cfg.num_frames, "crop": cfg.img_size, "trains": True,
                                        "seconds": time.perf_counter() - t0, "grad_checkpointing": True,
                                        "peak_gb": None if peak is None else peak / 1e9}
    except RuntimeError as err:
        result["joint_long_clip_train"] = {"frames": cfg.num_frames, "crop": cfg.img_size, "trains": False,
                                           "error": str(err).splitlines()[0][:300]}
    del model
    left = ctx["limit"] - (time.perf_counter() - began) - 15
    cases = ([_bench_case("tiny-check-extra", "tiny", schemes=("divided",), batch_size=2, warmup=0, repeats=1,
                          hf=False)] if dry
             else [_bench_case("hr-bf16", "hr", batch_size=8, precision="bf16", warmup=1, repeats=4),
                   _bench_case("large-bf16", "large", batch_size=2, precision="bf16", warmup=1, repeats=3),
                   _bench_case("base-bf16-compile", "base", schemes=("divided",), batch_size=64, precision="bf16",
                               compile=True, warmup=2, repeats=5)])
    path = out / "bench_gpu.json"
    bench = models.run_bench(cases, device=ctx["device"], memory=not dry, progress=False, budget=max(0.0, left),
                             command=["tools/gpu_check.py", "stage 5"], note="make gpu-check, stage 5",
                             on_case=lambda so_far: models.write_merged(path, so_far))
    models.write_merged(path, bench)
    result["bench_cases"] = [c["case"]["name"] for c in bench["cases"]]
    result["bench_skipped"] = bench.get("skipped", [])
    return result


# -- running the stages ----------------------------------------------------------------------------

#: (file, what, its own time limit in seconds: on a GPU, and in a dry run)
STAGES: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any]], float, float], ...] = (
    ("env.json", stage_env, 30, 30),
    ("correctness.json", stage_correctness, 60, 60),
    ("bench_gpu.json", stage_bench, 170, 60),
    ("train.json", stage_train, 100, 90),
    ("extra.json", stage_extra, 1e9, 60),  # whatever is left of the deadline
)


def _child(func, ctx: dict[str, Any], name: str) -> None:
    out = Path(ctx["out"])
    with open(out / "log.txt", "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        print(f"== {name} ({time.strftime('%H:%M:%S')})", flush=True)
        began = time.perf_counter()
        try:
            result = func(ctx)
            status = {"status": "ok"}
        except BaseException as err:  # a stage's failure is its result; the check goes on
            traceback.print_exc()
            result, status = {"error": f"{type(err).__name__}: {err}"[:2000]}, {"status": "error"}
        status["seconds"] = round(time.perf_counter() - began, 1)
        if name != "bench_gpu.json":  # the benchmark's file is the bench result itself, written as it goes
            _write(out, name, {**status, **result})
        _write(out, f".{name}.status", {**status, **({"summary": result} if name == "bench_gpu.json" else {})})
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def run_check(out: Path, *, dry_run: bool = False, deadline: float = DEADLINE, only: set[int] | None = None,
              scratch: Path | None = None) -> dict[str, Any]:
    """Every stage in turn, each in a forked process under ``min(its limit, what is left)``; ``check.json``."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*"):  # a fresh folder: at most the seven files of this check
        if old.is_file():
            old.unlink()
    scratch = scratch or Path(os.environ.get("TMPDIR", "/tmp")) / f"tsf-gpu-check-{os.getpid()}"
    device = "cpu" if dry_run else "cuda"
    began = time.perf_counter()
    summary: dict[str, Any] = {"command": " ".join(sys.argv), "dry_run": dry_run, "deadline_s": deadline,
                               "date": time.strftime("%Y-%m-%d %H:%M:%S"), "stages": {}}
    context = multiprocessing.get_context("fork")  # nothing in this process has touched CUDA
    for number, (name, func, limit, dry_limit) in enumerate(STAGES, 1):
        if only and number not in only:
            continue
        left = deadline - (time.perf_counter() - began)
        limit = min(dry_limit if dry_run else limit, left - MARGIN)
        if limit < SHORTEST:
            summary["stages"][name] = {"status": "skipped", "why": f"{left:.0f} s of the deadline left"}
            continue
        ctx = {"out": str(out), "dry_run": dry_run, "device": device, "limit": limit, "scratch": str(scratch)}
        process = context.Process(target=_child, args=(func, ctx, name))
        t0 = time.perf_counter()
        process.start()
        process.join(limit)
        if process.is_alive():
            process.kill()
            process.join()
            state = {"status": "timeout", "seconds": round(time.perf_counter() - t0, 1), "limit_s": round(limit)}
        else:
            status_file = out / f".{name}.status"
            state = json.loads(status_file.read_text()) if status_file.is_file() else {
                "status": "crashed", "exitcode": process.exitcode, "seconds": round(time.perf_counter() - t0, 1)}
            status_file.unlink(missing_ok=True)
        if state["status"] != "ok" and name != "bench_gpu.json" and not (out / name).is_file():
            _write(out, name, state)
        summary["stages"][name] = state
        print(f"stage {number} {name}: {state['status']} in {state['seconds']} s", flush=True)
        _write(out, "check.json", {**summary, "seconds": round(time.perf_counter() - began, 1)})
        if number == 1 and state["status"] != "ok":  # no environment (no GPU where one was asked for): stop
            summary["stopped"] = "stage 1 failed: see env.json and log.txt"
            break
    summary["seconds"] = round(time.perf_counter() - began, 1)
    _write(out, "check.json", summary)
    shutil.rmtree(scratch, ignore_errors=True)
    return summary


def report(out: Path) -> str:
    """The lines printed last: each stage's state and its key numbers."""
    lines = []
    summary = json.loads((out / "check.json").read_text())
    for name, state in summary["stages"].items():
        lines.append(f"{name:18s} {state['status']:8s} {state.get('seconds', '-')} s")
    correctness = out / "correctness.json"
    if correctness.is_file():
        data = json.loads(correctness.read_text())
        for scheme, row in data.get("schemes", {}).items():
            lines.append(f"  {scheme:13s} fp32 {row['fp32']:.1e}  explicit {row['fp32_explicit']:.1e}  bf16 "
                         f"{row['bf16']:.1e}  grads {row['fp32_gradients']:.1e}  {'ok' if row['pass'] else 'FAIL'}")
    bench = out / "bench_gpu.json"
    if bench.is_file():
        from tsf.bench.models import verdicts  # the check's parent imports tsf only to report

        for v in verdicts(json.loads(bench.read_text())):
            lines.append(f"  {v['target']}: {v['measured']} -> {v['verdict']}")
    train = out / "train.json"
    if train.is_file():
        data = json.loads(train.read_text())
        if "resume" in data:
            lines.append(f"  resume: max relative loss difference {data['resume']['max_relative_loss_difference']}")
            for label, rate in data["clips_per_s"].items():
                lines.append(f"  {label}: {rate['clips_per_s']:.0f} clips/s ({rate['workers']} workers)")
    lines.append(f"files in {out}: {', '.join(sorted(p.name for p in out.iterdir() if p.is_file()))}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for the results (emptied first)")
    parser.add_argument("--dry-run", action="store_true", help="the CPU, tiny sizes, seconds: what the suite runs")
    parser.add_argument("--deadline", type=float, default=None, help=f"seconds for all (default {DEADLINE:.0f}; "
                                                                     "dry run 240)")
    parser.add_argument("--only", type=int, nargs="+", help="these stages (1-5)")
    args = parser.parse_args(argv)
    # torch once here, so that the stages fork with it imported; nothing here touches CUDA (not even
    # torch.cuda.is_available, which initialises the driver: a forked child could not use it then)
    import torch  # noqa: F401

    deadline = args.deadline or (240.0 if args.dry_run else DEADLINE)
    run_check(Path(args.out), dry_run=args.dry_run, deadline=deadline, only=set(args.only or []))
    print(report(Path(args.out)))
    summary = json.loads((Path(args.out) / "check.json").read_text())
    return 0 if all(s["status"] == "ok" for s in summary["stages"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
