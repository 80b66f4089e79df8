"""Float32 matrix products on a CPU through oneDNN's AVX-512 kernels, where they stay float32.

PyTorch's CPU build sends float32 ``mm``/``addmm``/``bmm`` to MKL, whose SGEMM on this project's
AMD EPYC (Zen 5) runs at about 88 GFLOP/s on one core, its AVX2 rate; oneDNN's AVX-512 matmul
(``brg_matmul:avx512_core``) makes 180 on the same products. PyTorch routes float32 products to
oneDNN only when ``torch.backends.mkldnn.matmul.fp32_precision`` is ``"bf16"``, which *allows*
oneDNN to round the inputs to bfloat16 (it does so on CPUs with AMX). So this switch is used only
where :func:`onednn_keeps_fp32` shows, on this machine, that the products come out in float32:
an exact product that bfloat16 inputs would get wrong, and random products at float32's error.
Elsewhere ``onednn_matmul`` changes nothing. (Where PyTorch keeps the products on MKL under the
setting, the probe passes on MKL's float32 and the label says oneDNN: wrong, but harmless.)

The products are the same float32 arithmetic in another summation order, so results agree with
MKL's to float rounding, not bit for bit. PyTorch's fused CPU attention kernel (flash attention)
calls a small product per block, each a oneDNN call under the switch, and slows down there; so
:mod:`tsf.attention` takes its explicit path for longer groups while the switch is on
(:func:`onednn_active`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

#: ``TrainConfig.cpu_matmul`` values: oneDNN where it keeps float32 (else as PyTorch chooses), or PyTorch's choice
CPU_MATMUL = ("auto", "default")
_ONEDNN = "bf16"  # the fp32_precision value that routes float32 products to oneDNN
#: how results name the kernels that ran (env.json, study.json, the benchmarks)
ONEDNN_NAME, DEFAULT_NAME = "oneDNN", "PyTorch's default"


def kernels_name(onednn: bool) -> str:
    """The name results give the kernels: ``oneDNN``, or ``PyTorch's default``."""
    return ONEDNN_NAME if onednn else DEFAULT_NAME


def _settings():
    return getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)


def onednn_active() -> bool:
    """Whether float32 CPU products go to oneDNN now (inside :func:`onednn_matmul` where it applies)."""
    settings = _settings()
    return settings is not None and settings.fp32_precision == _ONEDNN


@functools.cache
def onednn_keeps_fp32() -> bool:
    """Whether oneDNN, when allowed, computes float32 products in float32 on this CPU (checked once
    per process): ``(1 + 2^-10) x 64`` is exact in float32 and comes out as 64 from bfloat16 inputs;
    random ``mm`` and ``bmm`` products of the model's sizes stay within float32's error of float64's."""
    settings = _settings()
    if settings is None or not torch.backends.mkldnn.is_available():
        return False
    before = settings.fp32_precision
    try:
        settings.fp32_precision = _ONEDNN
        exact = torch.full((32, 64), 1 + 2**-10) @ torch.ones(64, 48)
        if not bool((exact == 64 * (1 + 2**-10)).all()):
            return False
        g = torch.Generator().manual_seed(0)
        for a, b in ((torch.randn(520, 128, generator=g), torch.randn(128, 384, generator=g)),
                     (torch.randn(64, 17, 32, generator=g), torch.randn(64, 32, 17, generator=g))):
            out = (a @ b).double()
            ref = a.double() @ b.double()
            if not (out - ref).abs().max() <= 1e-5 * ref.abs().max():
                return False
        return True
    finally:
        settings.fp32_precision = before


@contextlib.contextmanager
def onednn_matmul(mode: str = "auto", device: torch.device | str | None = None) -> Iterator[bool]:
    """Within: float32 CPU products on oneDNN if ``mode`` is ``auto`` and it keeps float32 here
    (yields whether it does so); ``default``, or a ``device`` other than the CPU (work that runs
    there), leaves PyTorch's choice. The setting is restored after."""
    if mode not in CPU_MATMUL:
        raise ValueError(f"cpu_matmul must be one of {', '.join(CPU_MATMUL)}, got {mode!r}")
    settings = _settings()
    off_cpu = device is not None and torch.device(device).type != "cpu"
    if mode == "default" or off_cpu or settings is None or not onednn_keeps_fp32():
        yield False
        return
    before = settings.fp32_precision
    settings.fp32_precision = _ONEDNN
    try:
        yield True
    finally:
        settings.fp32_precision = before
