"""Where the time goes: ``torch.profiler`` over training steps, ours beside Hugging Face's (``bench profile``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from ..config import canonical_attention
from ..cost import count_macs
from .models import (case_threads, find_case, float32_products, matmul_operands, matmul_summary,
                     model_flops_utilisation, reference_matmul)
from ..provenance import provenance
from .steps import build_models, clip_batch, make_step
from .table import format_table

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
                  rounds: int = 5, warmup: int = 2, top: int = 12, batch_size: int | None = None,
                  command: Sequence[str] | None = None) -> dict[str, Any]:
    """Profile ``rounds`` steps of each implementation of ``case``/``scheme`` with ``torch.profiler``,
    the implementations taking turns step by step (the order rotating from round to round).

    Returns, per implementation, the wall time per step, the self CPU time per step by
    operator family (:data:`OP_FAMILIES`) and the ``top`` operators by self time, so that a
    missed target says where the time goes. CPU only: on a GPU, ``torch.profiler`` with CUDA
    activities is the tool, and the interleaved timings of :func:`run_case` are the numbers.

    Each round also times the reference matmul of the MFU (``matmul``, unprofiled, the same
    threads), and each implementation gets ``mfu_ceiling``: the MFU its step would reach if
    every operator but the matmuls took no time (the model's FLOPs over its matmuls' self
    time, against that rate). An MFU target above it needs faster products, not less overhead.
    """
    case = find_case(case_name)
    config = case.config(canonical_attention(scheme))
    batch_size = batch_size or case.batch_size or 8
    with case_threads(case):
        models = build_models(config, hf=case.hf)
        data = clip_batch(config, batch_size)
        out: dict[str, Any] = {**provenance(command), "case": case_name, "scheme": config.attention, "mode": mode, "batch_size": batch_size,
                               "rounds": rounds, "threads": torch.get_num_threads(), "impls": {}}
        steps = {impl: make_step(model, *data[impl], mode, cpu_matmul=case.kernels(impl))  # as the bench's
                 for impl, model in models.items()}
        for _ in range(warmup):
            for step in steps.values():
                step()
        # the implementations take turns, one profiled step each, the order rotating: a drift of the
        # machine's speed (minutes long on a shared host) then touches both alike
        names = list(steps)
        walls: dict[str, float] = dict.fromkeys(names, 0.0)
        events: dict[str, dict[str, list[float]]] = {impl: {} for impl in names}
        a, b = matmul_operands("cpu")
        reference_matmul(a, b, case.cpu_matmul)  # its warm-up; on our products' kernels, as the bench's
        reference: list[float] = []
        for r in range(rounds):
            for _ in range(3):
                start = time.perf_counter()
                reference_matmul(a, b, case.cpu_matmul)
                reference.append(time.perf_counter() - start)
            for impl in names[r % len(names):] + names[:r % len(names)]:
                start = time.perf_counter()
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    steps[impl]()
                walls[impl] += time.perf_counter() - start
                for event in prof.key_averages():
                    total = events[impl].setdefault(event.key, [0.0, 0])
                    total[0] += event.self_cpu_time_total / 1e3
                    total[1] += event.count
        out["matmul"] = {**matmul_summary(a.shape[0], a.dtype, reference),
                         "kernels": float32_products(case.cpu_matmul, torch.device("cpu"))}
        out["float32_products"] = {impl: float32_products(case.kernels(impl), torch.device("cpu")) for impl in names}
        macs = count_macs(config)
        for impl in names:
            families: dict[str, float] = {}
            ops = []
            for key, (self_ms_all, count) in events[impl].items():
                self_ms = self_ms_all / rounds
                if self_ms <= 0:
                    continue
                family = op_family(key)
                families[family] = families.get(family, 0.0) + self_ms
                ops.append({"op": key, "family": family, "self_ms": self_ms, "calls": count // rounds})
            ops.sort(key=lambda o: -o["self_ms"])
            # at the step's matmul time alone: batch_size clips in families["matmul"] ms
            ceiling = model_flops_utilisation(macs, batch_size / (families["matmul"] / 1e3), out["matmul"]["tflops"],
                                              mode)
            out["impls"][impl] = {"wall_ms_per_step_profiled": walls[impl] / rounds * 1e3,
                                  "self_ms_by_family": dict(sorted(families.items(), key=lambda kv: -kv[1])),
                                  "self_ms_total": sum(families.values()), "mfu_ceiling": ceiling,
                                  "top_ops": ops[:top]}
    return out


def format_profile(result: dict[str, Any]) -> str:
    """The profile as a markdown table: milliseconds of self CPU time per step, by family."""
    impls = list(result["impls"])
    families = list(dict.fromkeys(f for i in impls for f in result["impls"][i]["self_ms_by_family"]))
    rows = [{"family": family, **{i: result["impls"][i]["self_ms_by_family"].get(family, 0.0) for i in impls}}
            for family in families]
    rows.append({"family": "all operators (self time)", **{i: result["impls"][i]["self_ms_total"] for i in impls}})
    title = f"{result['scheme']} {result['mode']} step, batch {result['batch_size']} (ms)"
    table = format_table(rows, [("family", title, "s"), *((i, i, ".1f") for i in impls)], markdown=True)
    if "matmul" not in result:  # profiled before the reference matmul was timed with the steps
        return table
    ceilings = ", ".join(f"{i} {100 * result['impls'][i]['mfu_ceiling']:.0f}%" for i in impls)
    on = f" on {result['matmul']['kernels']}" if "kernels" in result["matmul"] else ""
    kernels = result.get("float32_products")
    used = ("; float32 products: " + ", ".join(f"{i} on {kernels[i]}" for i in impls if i in kernels)) if kernels else ""
    return (f"{table}\n\nMFU ceiling (the model's FLOPs in its matmuls' self time, against the "
            f"{result['matmul']['n']} matmul's {1e3 * result['matmul']['tflops']:.0f} GFLOP/s{on} timed in the same "
            f"rounds): {ceilings}{used}")
