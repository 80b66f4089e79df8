"""TimeSformer: ViT-B/16 adapted to video, with the five attention schemes of the paper.

Bertasius, Wang, Torresani, "Is Space-Time Attention All You Need for Video
Understanding?", ICML 2021, and the authors' code (facebookresearch/TimeSformer,
timesformer/models/vit.py), which we follow where it departs from the paper:

* the cls token does not take part in temporal attention; in the spatial step it is
  repeated for every frame and its T outputs are averaged (we extend this rule to the two
  schemes without public code: see ``tsf.attention``);
* Space attention is ViT run on every frame separately, with its own cls per frame and no
  time embedding; the T sets of tokens are averaged just before the final LayerNorm;
* ``temporal_fc`` and the time embedding start at zero, so a model inflated from an image
  ViT starts as that ViT applied frame by frame;
* tokens are patch-major, time-minor: index ``1 + (h*W + w)*T + t``;
* stochastic depth in an attention step drops whole groups (the authors apply DropPath to
  the grouped tensor); in the MLP it drops whole clips.

Parameter names are the authors' (``cls_token``, ``pos_embed``, ``time_embed``,
``patch_embed.proj``, ``blocks.i.{norm1, attn, temporal_norm1, temporal_attn, temporal_fc,
norm2, mlp}``, ``norm``, ``head``), so their checkpoints load after stripping ``model.``.

Another input size
------------------
The model runs on any frame count and any crop the patch size divides. The position
embedding (learned on the config's ``grid x grid``) is interpolated to the input's patch
grid and the time embedding (learned for ``num_frames``) to its frame count with
``config.resize_mode``; the default, ``nearest``, is what the authors' code (and Hugging
Face's port) do at run time. The cls slot of the position embedding is never resized.

Input
-----
A floating-point ``(B, C, T, H, W)`` video of normalised pixels; another float dtype
(float64, float16) is cast to the model's. A video that holds NaN or inf values gives
logits that are not finite: the forward pass warns (:class:`NonFiniteInputWarning`, which
counts them) at the cost of one reduction over the input and a host sync (skipped inside
``torch.compile`` and on meta tensors). Training then stops on the non-finite loss with a
checkpoint of the last finite state (``tsf.train``), on every process alike.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import FRAME, MAIN, SCHEMES, Attention, Grid, Scheme
from .config import TimeSformerConfig


class NonFiniteInputWarning(UserWarning):
    """A video given to the model holds NaN or inf values (its logits will not be finite)."""


@dataclass(frozen=True)
class StepAttention:
    """The post-softmax attention of one step of one block, for a batch of clips.

    ``weights[k]`` is ``(B, G_k, heads, L_k, L_k)`` (rows are queries, columns keys) for
    the ``G_k`` groups of bucket ``k`` (one bucket unless the groups differ in size, as the
    Sparse Local Global windows do on odd grids). ``groups[k]`` is ``(G_k, L)``: the
    canonical patch index ``p = (h*W + w)*T + t`` of each patch token of each group, in the
    order of the matrix. Where ``cls`` is not ``"none"`` the matrices have one more row and
    column, index 0, for the cls token, and ``L_k = L + 1``:

    * ``"none"``: the cls sits this step out (every step of a block but the last);
    * ``"shared"``: slot 0 of every group is the clip's single cls token; the block averages
      its outputs over the groups (the last step of divided, L+G, axial; joint has one group);
    * ``"per_group"``: slot 0 of group g is frame g's own cls token (Space, where every
      frame is its own clip until the final average).
    """

    block: int
    step: str  # "temporal", "local", "width", or "main"
    grouping: str  # "time", "frame", "full", "local", "global", "width", "height"
    grid: Grid  # (T, H, W)
    cls: str
    weights: tuple[Tensor, ...]
    groups: tuple[Tensor, ...]


AttentionMaps = tuple[tuple[StepAttention, ...], ...]  # [block][step], steps in execution order


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole rows of dim 0 with probability p, rescale the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact GELU, as the authors
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class PatchEmbed(nn.Module):
    """Each frame cut into P x P patches, each linearly embedded: (B, C, T, H, W) -> (B, H'W'T, D)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, video: Tensor) -> tuple[Tensor, Grid]:
        B, C, T, H, W = video.shape
        frames = video.transpose(1, 2).reshape(B * T, C, H, W)
        x = self.proj(frames)  # (B*T, D, H', W')
        grid = (T, x.shape[-2], x.shape[-1])
        return rearrange(x, "(b t) d h w -> b (h w t) d", b=B), grid  # patch-major, time-minor


class Block(nn.Module):
    """One TimeSformer block: the scheme's attention steps, then the MLP, all pre-norm.

    Takes and returns tokens ``(B, 1 + T*H*W, D)``, cls first.
    """

    def __init__(self, config: TimeSformerConfig, scheme: Scheme, drop_path_rate: float) -> None:
        super().__init__()
        dim, eps = config.embed_dim, config.layer_norm_eps
        self.scheme = scheme

        def attention() -> Attention:
            return Attention(dim, config.num_heads, config.qkv_bias, config.attn_drop_rate, config.drop_rate)

        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = attention()
        for step in scheme.extra_steps:  # e.g. temporal_norm1, temporal_attn, temporal_fc
            self.add_module(f"{step.name}_norm1", nn.LayerNorm(dim, eps=eps))
            self.add_module(f"{step.name}_attn", attention())
            self.add_module(f"{step.name}_fc", nn.Linear(dim, dim))
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * config.mlp_ratio), config.drop_rate)

    # Where an extra step's output projection and its ``*_fc`` run back to back (nothing
    # random between them), they are one linear map: ``fc(proj(o)) = o @ (W_fc W_proj)^T +
    # (W_fc b_proj + b_fc)``. One token-sized product instead of two (and two instead of four
    # backward), for a D x D x D one; the same function and gradients, to float rounding.
    # It pays from about 2 D tokens at D = 768 and 4 D at D = 128 (2-core CPU, forward and
    # training), so it runs from 4 D tokens: a training batch, not one ViT-B clip.
    fuse_projections: bool = True

    def _fused_projection(self, attn: Attention, fc: nn.Linear, rows: int) -> tuple[Tensor, Tensor] | None:
        """The weight and bias of ``fc . attn.proj`` where fusing them pays (``rows`` tokens >= 4 D)."""
        random_between = self.training and (self.drop_path.p > 0 or attn.proj_drop.p > 0)
        if not self.fuse_projections or random_between or rows < 4 * fc.weight.shape[0]:
            return None
        # one matrix product for weight and bias: a separate matrix-vector product for the bias
        # rounds differently with the memory alignment of the weights (MKL), and a loaded model
        # would then not give the bit-exact logits of the one it was saved from
        both = fc.weight @ torch.cat([attn.proj.weight, attn.proj.bias.unsqueeze(1)], dim=1)  # (D, D + 1)
        return both[:, :-1], both[:, -1] + fc.bias

    def forward(self, x: Tensor, grid: Grid, record: list[StepAttention] | None = None,
                record_batch: int | None = None) -> Tensor:
        """``record``: a list to append every step's attention to, ``(record_batch, G, heads, L, L)``
        per bucket (``record_batch`` defaults to the batch; Space passes its clips' count)."""
        need = record is not None
        B, D = x.shape[0], x.shape[-1]
        N = x.shape[1] - 1
        # split, not two slices: the backward of a split is one concatenation, that of a slice
        # a zero-filled full-size gradient to copy it into (twice, and then their sum)
        cls, patches = x.split([1, N], dim=1)  # (B, 1, D), (B, HWT, D)
        rb = record_batch or B

        for step in self.scheme.extra_steps:  # the cls sits these out
            norm, attn = getattr(self, f"{step.name}_norm1"), getattr(self, f"{step.name}_attn")
            fc = getattr(self, f"{step.name}_fc")
            fused = self._fused_projection(attn, fc, B * N)
            outs, weights = [], []
            for part in step.grouping.split(norm(patches), grid):  # (B*G, L, D)
                if fused is not None:
                    out, w = attn.attend(part, need, rb)
                    out = F.linear(out, *fused)
                else:
                    out, w = attn(part, need, rb)
                    out = fc(self.drop_path(out))  # drop path per group, as the authors; fc is per token
                outs.append(out)
                weights.append(w)
            patches = step.grouping.merge_add(patches, outs, grid)
            if need:
                record.append(StepAttention(-1, step.name, step.grouping.name, grid, "none", tuple(weights),
                                            step.grouping.partition(grid)))

        # The main step: the cls joins every group once; its outputs are averaged over groups.
        main = self.scheme.main
        if main.whole_clip and not self.scheme.extra_steps:  # Joint, Space: x is the one group, cls first
            out, w = self.attn(self.norm1(x), need, rb)  # (B, 1+HWT, D); nothing to average
            x = x + self.drop_path(out)
            if need:
                record.append(StepAttention(-1, MAIN, main.name, grid, "shared", (w,), main.partition(grid)))
            return x + self.drop_path(self.mlp(self.norm2(x)))

        outs, weights, cls_sum, n_groups = [], [], 0.0, 0
        for part in main.split_with_cls(self.norm1(patches), self.norm1(cls), grid):  # (B*G, 1+L, D)
            G = part.shape[0] // B
            out, w = self.attn(part, need, rb)  # (B*G, 1+L, D)
            out = self.drop_path(out)
            head, rest = out.split([1, out.shape[1] - 1], dim=1)
            cls_sum = cls_sum + head.view(B, G, D).sum(1)
            n_groups += G
            outs.append(rest)
            weights.append(w)
        cls = cls + (cls_sum / n_groups).unsqueeze(1)
        patches = main.merge_add(patches, outs, grid)
        if need:
            record.append(StepAttention(-1, MAIN, main.name, grid, "shared", tuple(weights), main.partition(grid)))

        x = torch.cat([cls, patches], dim=1)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class TimeSformer(nn.Module):
    """TimeSformer for video classification: ``model(video)`` maps ``(B, C, T, H, W)`` to logits.

    ``model(video, return_attention=True)`` returns ``(logits, maps)``, where ``maps[i][j]``
    is the :class:`StepAttention` of step ``j`` of block ``i`` (steps in execution order:
    divided is ``temporal`` then ``main`` over frames). That path computes the softmax
    explicitly; the normal path uses ``scaled_dot_product_attention`` except for short groups
    on a CPU (``tsf.attention.explicit_path``).
    """

    def __init__(self, config: TimeSformerConfig) -> None:
        super().__init__()
        self.config = config
        self.scheme = SCHEMES[config.attention]
        D = config.embed_dim
        self.patch_embed = PatchEmbed(config.patch_size, config.in_chans, D)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + config.num_patches, D)) if config.has_pos_embed else None
        self.time_embed = nn.Parameter(torch.zeros(1, config.num_frames, D)) if config.has_time_embed else None
        self.pos_drop = nn.Dropout(config.drop_rate)
        self.time_drop = nn.Dropout(config.drop_rate)
        rates = [config.drop_path_rate * i / max(config.depth - 1, 1) for i in range(config.depth)]  # block 0 = 0
        self.blocks = nn.ModuleList(Block(config, self.scheme, r) for r in rates)
        self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.head = nn.Linear(D, config.num_classes) if config.num_classes > 0 else nn.Identity()
        self.grad_checkpointing = False
        self.reset_parameters()

    # -- initialisation ----------------------------------------------------------------

    def reset_parameters(self) -> None:
        """The authors' initialisation: trunc-normal 0.02 for Linear, pos and cls; zero
        time embedding and zero ``*_fc`` linears (so the extra steps start as identities).
        ``config.time_embed_init`` can start the time embedding elsewhere (see the config)."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.time_embed is not None:
            init_time_embed(self.time_embed.data, self.config.time_embed_init, self.config.time_embed_init_std)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for step in self.scheme.extra_steps:
                fc = getattr(block, f"{step.name}_fc")
                nn.init.zeros_(fc.weight)
                nn.init.zeros_(fc.bias)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of storing its activations."""
        self.grad_checkpointing = enable

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head (trunc-normal init) and record the new class count in the config."""
        D = self.config.embed_dim
        device = self.norm.weight.device
        self.head = nn.Linear(D, num_classes, device=device) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        self.config = self.config.replace(num_classes=num_classes)

    # -- forward -----------------------------------------------------------------------

    def _check_input(self, video: Tensor) -> Tensor:
        """``video`` checked (clear errors for the wrong shape or dtype; a warning for NaN or inf)
        and cast to the model's floating-point dtype."""
        cfg = self.config
        if not isinstance(video, Tensor):
            raise TypeError(f"expected a torch.Tensor (B, C, T, H, W), got {type(video).__name__}")
        if video.ndim != 5:
            raise ValueError(f"expected a video batch of shape (B, C, T, H, W), got shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise ValueError(f"expected a floating-point video (normalised pixels), got dtype {video.dtype}; "
                             "see tsf.data for the (x/255 - 0.45)/0.225 normalisation")
        B, C, T, H, W = video.shape
        if C != cfg.in_chans:
            hint = (" (this looks like (B, T, C, H, W), the Hugging Face layout: use video.transpose(1, 2))"
                    if video.shape[2] == cfg.in_chans else "")
            raise ValueError(f"expected {cfg.in_chans} channels in dim 1 of (B, C, T, H, W), got {C} "
                             f"in a tensor of shape {tuple(video.shape)}{hint}")
        P = cfg.patch_size
        if H % P or W % P:
            raise ValueError(f"frame size {H} x {W} is not divisible by the patch size {P}")
        if min(B, T, H, W) == 0:
            raise ValueError(f"empty video batch of shape {tuple(video.shape)}")
        if not (video.is_meta or torch.compiler.is_compiling()) and not bool(torch.isfinite(video).all()):
            nan, inf = int(video.isnan().sum()), int(video.isinf().sum())
            warnings.warn(f"the input video holds {nan} NaN and {inf} inf values (of {video.numel()}): the logits "
                          "will not be finite; check the decoding and the normalisation", NonFiniteInputWarning,
                          stacklevel=4)
        dtype = self.patch_embed.proj.weight.dtype
        return video if video.dtype == dtype else video.to(dtype)  # float64 / float16 pixels: the model's dtype

    def embed(self, video: Tensor) -> tuple[Tensor, Grid]:
        """Patch, position and time embeddings: ``(B, C, T, H, W)`` -> tokens ``(B, 1 + H'W'T, D)``."""
        video = self._check_input(video)
        patches, grid = self.patch_embed(video)  # (B, HWT, D)
        T, H, W = grid
        B, _, D = patches.shape
        cls = self.cls_token.expand(B, 1, D)
        if self.pos_embed is not None:
            pos = resize_pos_embed(self.pos_embed, (self.config.grid_size,) * 2, (H, W), self.config.resize_mode)
            cls = cls + pos[:, :1]
            patches = (patches.view(B, H * W, T, D) + pos[:, 1:, None, :]).view(B, H * W * T, D)
        patches = self.pos_drop(patches)
        cls = self.pos_drop(cls)
        if self.time_embed is not None:
            time = resize_time_embed(self.time_embed, T, self.config.resize_mode)  # (1, T, D)
            patches = (patches.view(B, H * W, T, D) + time[:, None]).view(B, H * W * T, D)
            patches = self.time_drop(patches)
        return torch.cat([cls, patches], dim=1), grid

    def forward_features(self, video: Tensor, record: list[list[StepAttention]] | None = None) -> Tensor:
        """The final, normalised cls feature ``(B, D)``; fills ``record`` with attention if given."""
        x, grid = self.embed(video)  # (B, 1 + HWT, D)
        B = x.shape[0]
        T, H, W = grid
        _, grid = self.scheme.clip_view(grid)
        if self.scheme.per_frame:  # Space: every frame a clip of its own, with its own cls
            x = torch.cat([x[:, :1].repeat_interleave(T, dim=0),
                           rearrange(x[:, 1:], "b (n t) d -> (b t) n d", t=T)], dim=1)  # (B*T, 1+N, D)
        for i, block in enumerate(self.blocks):
            steps: list[StepAttention] | None = [] if record is not None else None
            if self.grad_checkpointing and self.training and steps is None and torch.is_grad_enabled():
                x = checkpoint(block, x, grid, use_reentrant=False)
            else:
                x = block(x, grid, steps, B)
            if record is not None:
                record.append([_relabel(s, i, (T, H, W), self.scheme.per_frame) for s in steps])
        cls = x[:, 0]
        if self.scheme.per_frame:
            cls = cls.view(B, T, -1).mean(dim=1)  # average the frames before the final norm
        return self.norm(cls)

    def forward_head(self, features: Tensor) -> Tensor:
        return self.head(features)

    def forward(self, video: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, AttentionMaps]:
        if not return_attention:
            return self.forward_head(self.forward_features(video))
        record: list[list[StepAttention]] = []
        logits = self.forward_head(self.forward_features(video, record))
        return logits, tuple(tuple(steps) for steps in record)


def _relabel(s: StepAttention, block: int, grid: Grid, per_frame: bool) -> StepAttention:
    """Attach the block index; for Space, present the folded frames as groups of one clip."""
    if not per_frame:
        return StepAttention(block, s.step, s.grouping, s.grid, s.cls, s.weights, s.groups)
    # the folded frames were recorded with batch B, so the weights are already (B, T, heads, 1+N, 1+N)
    return StepAttention(block, s.step, FRAME.name, grid, "per_group", s.weights, FRAME.partition(grid))


# --------------------------------------------------------------------------------------
# Embedding resizing: pure functions, shared with the weight loaders.
# --------------------------------------------------------------------------------------

_TIME_MODE = {"nearest": "nearest", "bilinear": "linear", "bicubic": "linear"}


def resize_pos_embed(pos_embed: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                     mode: str = "nearest") -> Tensor:
    """Resize a ``(1, 1 + h*w, D)`` position embedding (cls slot first) to another patch grid.

    The cls slot is kept; the patch slots are interpolated in 2-D with ``mode``. Returns the
    input itself when the grid is unchanged; never modifies it.
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if old_grid == new_grid:
        return pos_embed
    h, w = old_grid
    if pos_embed.shape[1] != 1 + h * w:
        raise ValueError(f"position embedding of shape {tuple(pos_embed.shape)} does not fit a {h} x {w} grid")
    cls, patches = pos_embed[:, :1], pos_embed[:, 1:]
    grid = patches.reshape(1, h, w, -1).permute(0, 3, 1, 2)  # (1, D, h, w)
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    grid = F.interpolate(grid.float(), size=new_grid, mode=mode, **kwargs).to(pos_embed.dtype)
    return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


def sinusoidal_time_embed(num_frames: int, dim: int) -> Tensor:
    """The sin/cos code of Vaswani et al. over frames, ``(1, T, D)``: channel pair ``i`` holds
    ``sin`` and ``cos`` of ``t * T**(-2i/D)`` (wavelengths from 2 pi frames to 2 pi T frames, so
    the slowest pairs change monotonically over the clip), centred over the frames and scaled to
    RMS 1. One frame has no order: zeros."""
    cpu = dict(dtype=torch.float64, device="cpu")  # also where a model is built on the meta device
    t = torch.arange(num_frames, **cpu)[:, None]
    freq = float(num_frames) ** (-2 * torch.arange((dim + 1) // 2, **cpu) / dim)
    angles = t * freq  # (T, ceil(D/2))
    code = torch.cat([angles.sin(), angles.cos()], dim=1)[:, :dim]
    code = code - code.mean(0, keepdim=True)
    rms = code.pow(2).mean().sqrt()
    return (code / rms if rms > 0 else code)[None].float()


def init_time_embed(time_embed: Tensor, kind: str, std: float) -> Tensor:
    """Fill ``time_embed`` ``(1, T, D)`` in place as ``TimeSformerConfig.time_embed_init`` says:
    zeros (the authors), trunc-normal of ``std`` cut at 2 std (torch's global generator, so a
    seeded run repeats), or the sinusoidal code scaled to RMS ``std`` (no randomness)."""
    with torch.no_grad():
        if kind == "zeros":
            return time_embed.zero_()
        if kind == "trunc_normal":
            return nn.init.trunc_normal_(time_embed, std=std, a=-2 * std, b=2 * std)
        if kind == "sinusoidal":
            _, T, D = time_embed.shape
            return time_embed.copy_(std * sinusoidal_time_embed(T, D).to(time_embed.device))
    raise ValueError(f"unknown time_embed_init {kind!r}")


def resize_time_embed(time_embed: Tensor, num_frames: int, mode: str = "nearest") -> Tensor:
    """Resize a ``(1, T, D)`` time embedding to ``num_frames`` (nearest, or linear for the smooth modes)."""
    if time_embed.shape[1] == num_frames:
        return time_embed
    mode = _TIME_MODE.get(mode, mode)
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    out = F.interpolate(time_embed.transpose(1, 2).float(), size=num_frames, mode=mode, **kwargs)
    return out.transpose(1, 2).to(time_embed.dtype)


# --------------------------------------------------------------------------------------
# Running it: a precision; and, for tests and benchmarks, signal on every path
# --------------------------------------------------------------------------------------

PRECISIONS: tuple[str, ...] = ("fp32", "bf16")


def autocast(device: torch.device, precision: str):
    """The autocast context of a precision: ``fp32`` (none) or ``bf16`` (``torch.autocast`` on ``device``)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")



def randomise_zero_inits(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Give the zero-initialised ``*_fc`` linears and the time embedding random values (normal,
    ``std``), so that every path through the model carries signal (at init they are exact
    identities). In place; returns the model."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "_fc." in name or name == "time_embed":
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model
