"""Cost accounting: parameters, multiply-adds and attention-matrix sizes (pure arithmetic).

The paper's "FLOPs" count one multiply-add as one operation (as fvcore does), over the
matrix products of the model: patch embedding, every linear layer and the two products of
each attention (q k^T and attn v). Norms, softmax, GELU and additions are not counted
(they are under 0.1% of the total). ``count_macs`` follows that convention and derives the
attention sizes from the same partitions the model runs (``tsf.attention``), so the count
cannot drift from the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import SCHEMES
from .config import TimeSformerConfig
from .model import TimeSformer


def count_params(model_or_config: nn.Module | TimeSformerConfig) -> int:
    """Number of parameters; a config is built on the meta device (no memory, exact count)."""
    if isinstance(model_or_config, TimeSformerConfig):
        with torch.device("meta"):
            model_or_config = TimeSformer(model_or_config)
    return sum(p.numel() for p in model_or_config.parameters())


@dataclass(frozen=True)
class MacBreakdown:
    """Multiply-adds per view (one clip), by kind of operation."""

    patch_embed: int
    qkv: int
    attention: int  # q k^T and attn v, every step of every block
    proj: int
    extra_fc: int  # the zero-initialised D x D linear after each extra step
    mlp: int
    head: int

    @property
    def total(self) -> int:
        return self.patch_embed + self.qkv + self.attention + self.proj + self.extra_fc + self.mlp + self.head


def _view_grid(config: TimeSformerConfig, img_size: int | None, num_frames: int | None) -> tuple[int, int, int]:
    img = config.img_size if img_size is None else img_size
    T = config.num_frames if num_frames is None else num_frames
    if img % config.patch_size:
        raise ValueError(f"crop {img} is not divisible by the patch size {config.patch_size}")
    side = img // config.patch_size
    return T, side, side


def mac_breakdown(config: TimeSformerConfig, *, img_size: int | None = None,
                  num_frames: int | None = None) -> MacBreakdown:
    """Multiply-adds of one view, by kind (see :func:`count_macs`)."""
    scheme = SCHEMES[config.attention]
    T, H, W = _view_grid(config, img_size, num_frames)
    D, N = config.embed_dim, H * W
    hidden = int(D * config.mlp_ratio)
    clips, grid = scheme.clip_view((T, H, W))  # Space: T clips of one frame, each with its own cls
    tokens = grid[0] * N  # patch tokens per clip
    qkv = attention = proj = extra_fc = 0
    for step in scheme.steps:
        for G, L in step.group_sizes(grid):  # L counts the cls where it joins
            qkv += G * L * D * 3 * D
            attention += G * 2 * L * L * D  # q k^T and attn v over all heads
            proj += G * L * D * D
        if not step.with_cls:
            extra_fc += tokens * D * D
    mlp = (1 + tokens) * 2 * D * hidden
    per_block = clips * config.depth
    return MacBreakdown(
        patch_embed=T * N * D * config.in_chans * config.patch_size**2,
        qkv=per_block * qkv,
        attention=per_block * attention,
        proj=per_block * proj,
        extra_fc=per_block * extra_fc,
        mlp=per_block * mlp,
        head=D * config.num_classes,
    )


def count_macs(config: TimeSformerConfig, *, img_size: int | None = None, num_frames: int | None = None) -> int:
    """Multiply-adds of one view (one clip of ``num_frames`` x ``img_size``^2), the paper's "FLOPs".

    At ViT-B/16 with divided attention: 0.196 T for 8 x 224, 1.70 T for 16 x 448, 2.38 T
    for 96 x 224; the paper's figures are for 3 views (0.59 / 5.11 / 7.14 TFLOPs).
    """
    return mac_breakdown(config, img_size=img_size, num_frames=num_frames).total


def attention_matrix_elements(config: TimeSformerConfig, *, img_size: int | None = None,
                              num_frames: int | None = None) -> dict[str, int]:
    """Entries of the attention-probability tensors of one block, per step, for one view.

    Times heads and bytes per element, this is the memory an explicit (non-fused)
    implementation holds for one step's softmax, and keeps per block for the backward pass.
    """
    scheme = SCHEMES[config.attention]
    clips, grid = scheme.clip_view(_view_grid(config, img_size, num_frames))
    return {step.name: clips * config.num_heads * step.matrix_entries(grid) for step in scheme.steps}


def cost_row(config: TimeSformerConfig, views: int = 3) -> dict[str, float | int | str]:
    """Parameters and cost of a config as one table row (what ``python -m tsf info`` prints)."""
    macs = count_macs(config)
    return {
        "attention": config.attention,
        "frames": config.num_frames,
        "crop": config.img_size,
        "classes": config.num_classes,
        "params": count_params(config),
        "gmacs_per_view": macs / 1e9,
        "views": views,
        "tflops_all_views": macs * views / 1e12,
    }


def training_memory_bytes(config: TimeSformerConfig, *, img_size: int | None = None, num_frames: int | None = None,
                          batch: int = 1, bytes_per_float: int = 4, optimizer_floats: int = 1) -> dict[str, int]:
    """An analytic estimate of one training step's memory with explicit (non-fused) attention.

    What autograd keeps per clip, block by block (float32 unless ``bytes_per_float`` says
    otherwise): every step's attention probabilities (softmax keeps its output, which the
    product with the values needs too); per token and step its norm input and output, q, k,
    v and the attention output (6 D floats), plus the input of an extra step's ``*_fc``
    (D); per token the MLP's norm input and output, hidden pre- and post-GELU (2 + 2 x
    mlp_ratio) D floats. Plus the largest step's pre-softmax scores, which exist while its
    softmax runs, and the weights, their gradients and ``optimizer_floats`` more floats per
    parameter (SGD with momentum: 1, as the authors; AdamW: 2). The paper's implementation
    is of this kind (explicit softmax, no mixed precision); fused kernels keep no matrices.
    """
    scheme = SCHEMES[config.attention]
    T, H, W = _view_grid(config, img_size, num_frames)
    D, N = config.embed_dim, H * W
    clips, grid = scheme.clip_view((T, H, W))
    tokens = grid[0] * N
    probs = peak_scores = activations = 0
    for step in scheme.steps:
        elements = step.matrix_entries(grid)
        probs += config.num_heads * elements
        peak_scores = max(peak_scores, config.num_heads * elements)
        rows = sum(groups * length for groups, length in step.group_sizes(grid))
        activations += rows * 6 * D + (0 if step.with_cls else tokens * D)
    activations += (1 + tokens) * (2 + 2 * config.mlp_ratio) * D
    per_clip = clips * (config.depth * (probs + activations) + peak_scores)
    params = count_params(config)
    out = {
        "attention_probabilities": batch * clips * config.depth * probs * bytes_per_float,
        "other_activations": batch * clips * config.depth * activations * bytes_per_float,
        "transient_scores": batch * clips * peak_scores * bytes_per_float,
        "weights_gradients_optimizer": params * (2 + optimizer_floats) * bytes_per_float,
    }
    assert sum(out.values()) == batch * per_clip * bytes_per_float + out["weights_gradients_optimizer"]
    out["total"] = sum(out.values())
    return out
