"""The five attention schemes of TimeSformer as partitions of the space-time token grid.

Token order
-----------
A clip of T frames cut into an H x W grid of patches gives T*H*W patch tokens. As in the
authors' code they are stored patch-major, time-minor: patch (t, h, w) sits at

    p = (h * W + w) * T + t          (the model's token index is 1 + p; index 0 is the cls)

Every attention *step* partitions these tokens into groups that attend only within
themselves. A scheme is a sequence of steps (one table, ``SCHEMES``, at the bottom):

| scheme        | steps, in order (the last one is the block's "main" step)              |
|---------------|-------------------------------------------------------------------------|
| space         | full frame (frames are separate clips until the final average)         |
| joint         | full clip: all T*H*W tokens                                              |
| divided       | time (same h, w) -> frame (same t)                                      |
| local_global  | local windows T x ceil(H/2) x ceil(W/2) -> global stride-2 lattices     |
| axial         | time (same h, w) -> width (same t, h) -> height (same t, w)             |

The cls token follows the rule of the authors' divided block, which we extend to the two
schemes they did not release: it sits out every step but the last one of a block; in the
last step it joins every group once, and its outputs are averaged over the groups.

Each step's attention runs one of two paths, chosen by its group length (``Attention.attend``):
``torch.nn.functional.scaled_dot_product_attention`` for long groups, and the explicit
matmul-softmax-matmul for the short ones on a CPU (divided's temporal step has L = frames),
where the fused kernel's per-group overhead costs more than the products (up to 513 tokens
while float32 products run on oneDNN, :mod:`tsf.cpu_matmul`), and whenever the attention
probabilities are asked for. The two agree to float rounding (``tests/test_model.py``
and ``tests/test_fast_paths.py`` check it for every scheme). Either way the groups are cut
into chunks that stay inside the limits of one CUDA kernel launch (``MAX_GROUPS``,
``MAX_PADDED_ELEMENTS``).
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .cpu_matmul import onednn_active

Grid = tuple[int, int, int]  # (T, H, W): frames, patch rows, patch columns


class Attention(nn.Module):
    """Multi-head self-attention over a batch of equal-length groups: (G, L, D) -> (G, L, D).

    The parameters are laid out as in the authors' (and timm's) ViT: ``qkv`` packs q, k, v,
    each with the heads contiguous; ``proj`` is the output projection.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, need_weights: bool = False, batch: int = 1) -> tuple[Tensor, Tensor | None]:
        """``need_weights``: also return the attention probabilities as ``(batch, G // batch, heads, L, L)``.

        The returned tensor is the one multiplied with the values, so gradients reach it
        (gradient-weighted rollout differentiates the output with respect to it).
        """
        out, weights = self.attend(x, need_weights, batch)
        return self.proj_drop(self.proj(out)), weights

    def attend(self, x: Tensor, need_weights: bool = False, batch: int = 1) -> tuple[Tensor, Tensor | None]:
        """The heads' outputs side by side, before the output projection ``proj``: (G, L, D).

        The explicit path where the weights are asked for or the groups are short
        (:func:`explicit_path`), the fused kernel otherwise; the groups in chunks of at most
        :func:`chunk_groups` each.
        """
        G, L, D = x.shape
        h, hd = self.num_heads, self.head_dim
        explicit = need_weights or explicit_path(L, x.device)
        qkv = self.qkv(x).view(G, L, 3, h, hd).permute(2, 0, 3, 1, 4)  # (3, G, heads, L, head_dim)
        if explicit:  # one copy, so that q, k and v are (G*heads, L, head_dim) views for bmm
            qkv = qkv.contiguous()
        drop = self.attn_drop if self.training else 0.0
        step = chunk_groups(G, L, h, hd, explicit)
        chunks = [qkv[:, start:start + step].unbind(0) for start in range(0, G, step)]  # (q, k, v): (g, heads, L, hd)
        if not explicit:
            outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=drop) for q, k, v in chunks]
            out = outs[0] if len(outs) == 1 else torch.cat(outs)  # (G, heads, L, head_dim)
            return out.transpose(1, 2).reshape(G, L, D), None
        probs = [torch.baddbmm(q.new_zeros(()).expand(q.shape[0] * h, L, L), q.flatten(0, 1),
                               k.flatten(0, 1).transpose(1, 2), beta=0.0, alpha=self.scale).softmax(dim=-1)
                 for q, k, _ in chunks]  # (g*heads, L, L)
        weights = None
        if need_weights:  # the returned tensor is the one multiplied with the values (rollout differentiates it)
            weights = (probs[0] if len(probs) == 1 else torch.cat(probs)).view(batch, G // batch, h, L, L)
            probs = weights.flatten(0, 2).split([c[0].shape[0] * h for c in chunks])
        outs = [torch.bmm(F.dropout(p, drop, self.training), v.flatten(0, 1)) for p, (_, _, v) in zip(probs, chunks)]
        out = (outs[0] if len(outs) == 1 else torch.cat(outs)).view(G, h, L, hd)
        return out.transpose(1, 2).reshape(G, L, D), weights


# Where the explicit path is the faster one: groups of at most this many tokens, on these
# devices. On a 2-core CPU (training step of the small model, one thread, the two paths
# alternating step by step, thread CPU time) the explicit path made divided's step (L = 8 and
# 17) about 5% faster, and Joint's (L = 513) 14% slower; at L+G's 17 and 32 no difference
# showed. On a GPU the fused kernel (flash attention) runs every length.
EXPLICIT_MAX_LENGTH = 32
EXPLICIT_DEVICES = ("cpu",)
# With float32 products on oneDNN (tsf.cpu_matmul) the fused CPU kernel's many small products
# each cost a oneDNN call: forward and backward of 4 heads of 32 on 2,080 tokens, one thread,
# the fused kernel took 44 ms at L = 65 against the explicit path's 5, 41 against 27 at 513,
# and 52 against 125 at 1,025 (2026-12, this project's 2-core EPYC). Explicit up to 513 then.
EXPLICIT_MAX_LENGTH_ONEDNN = 513

# The limits of one attention kernel launch on CUDA (issue 16): the groups form a grid
# dimension of at most 65,535 blocks, and past 2^31 elements of the padded q, k, v (or of the
# explicit path's attention matrices) a 32-bit index overflows (in the flash backward, an
# illegal memory access that poisons the CUDA context). The groups are cut into chunks within
# both. Module constants, so that a CPU test can lower them.
MAX_GROUPS = 65_535
MAX_PADDED_ELEMENTS = 2**31 - 1
PAD_TOKENS = 128  # a kernel's block of tokens: lengths are counted rounded up to it


def explicit_path(length: int, device: torch.device) -> bool:
    """Whether groups of ``length`` tokens run the explicit matmul-softmax path on ``device``."""
    if device.type not in EXPLICIT_DEVICES:
        return False
    return length <= (EXPLICIT_MAX_LENGTH_ONEDNN if onednn_active() else EXPLICIT_MAX_LENGTH)


def chunk_groups(groups: int, length: int, heads: int, head_dim: int, explicit: bool = False) -> int:
    """The most groups one attention call takes: at most ``MAX_GROUPS``, and at most
    ``MAX_PADDED_ELEMENTS`` elements per call, a group counting as its padded q (``heads x length
    rounded up to PAD_TOKENS x head_dim``) for the fused kernel, and as the larger of its q and
    its attention matrices (``heads x length^2``) for the explicit path."""
    padded = -(-length // PAD_TOKENS) * PAD_TOKENS
    per_group = heads * (max(length * head_dim, length * length) if explicit else padded * head_dim)
    return max(1, min(groups, MAX_GROUPS, MAX_PADDED_ELEMENTS // per_group))


# --------------------------------------------------------------------------------------
# Groupings: how one step partitions the T*H*W patch tokens.
# --------------------------------------------------------------------------------------


class Grouping:
    """A partition of the patch tokens of a (T, H, W) grid into groups.

    ``split`` turns patch tokens ``(B, H*W*T, D)`` into one tensor ``(B*G_k, L_k, D)`` per
    bucket of equal-length groups (batch-major: row ``b*G_k + g``); ``merge`` is its inverse.
    ``partition`` gives, per bucket, the ``(G_k, L_k)`` patch indices of every group in the
    canonical order (see the module docstring); it is what the cost count and the attention
    rollout use, and it is derived from ``split`` itself so the two cannot disagree.
    """

    name: str = ""
    whole_clip: bool = False  # one group holding every token (Joint; Space on its one-frame clips)

    def split(self, x: Tensor, grid: Grid) -> list[Tensor]:
        raise NotImplementedError

    def merge(self, parts: list[Tensor], grid: Grid) -> Tensor:
        raise NotImplementedError

    def partition(self, grid: Grid) -> tuple[Tensor, ...]:
        return _partition_of(self, grid)

    def split_with_cls(self, x: Tensor, cls: Tensor, grid: Grid) -> list[Tensor]:
        """``split``, with ``cls`` ``(B, 1, D)`` first in every group: ``(B*G_k, 1 + L_k, D)`` per bucket."""
        B, _, D = cls.shape
        return [torch.cat([cls.expand(B, part.shape[0] // B, D).reshape(-1, 1, D), part], dim=1)
                for part in self.split(x, grid)]

    def merge_add(self, base: Tensor, parts: list[Tensor], grid: Grid) -> Tensor:
        """``base + merge(parts)``: patch tokens ``(B, H*W*T, D)`` plus the groups' outputs."""
        return base + self.merge(parts, grid)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


@functools.lru_cache(maxsize=256)
def _partition_of(grouping: Grouping, grid: Grid) -> tuple[Tensor, ...]:
    T, H, W = grid
    positions = torch.arange(T * H * W).view(1, T * H * W, 1)  # (1, HWT, 1): each token's own index
    return tuple(part.squeeze(-1) for part in grouping.split(positions, grid))


class PatternGrouping(Grouping):
    """A grouping that is a pure reshape: the axes that tell the groups apart (``group``) and
    those that run within a group (``within``). ``pattern`` is its einops form (its own comment).

    Besides ``split`` and ``merge`` it has strided *views*: ``grouped`` sees the tokens as
    ``(B, *group axes, L, D)`` without a copy, so that putting the cls first in every group
    and adding the groups' outputs back onto the tokens each take one pass over the memory.
    """

    def __init__(self, name: str, group: str, within: str) -> None:
        self.name = name
        self.group_axes = tuple(group.split())
        groups = " ".join(("b",) + self.group_axes)
        self.pattern = f"b (h w t) d -> ({groups}) ({within}) d"
        self.inverse = f"({groups}) ({within}) d -> b (h w t) d"
        self._grouped = f"b (h w t) d -> {groups} ({within}) d"  # a view: the within axes are adjacent, in order
        self._ungrouped = f"{groups} ({within}) d -> b h w t d"  # a view back onto the token axes
        self.whole_clip = not self.group_axes

    def split(self, x: Tensor, grid: Grid) -> list[Tensor]:
        T, H, W = grid
        return [rearrange(x, self.pattern, t=T, h=H, w=W)]

    def merge(self, parts: list[Tensor], grid: Grid) -> Tensor:
        T, H, W = grid
        return rearrange(parts[0], self.inverse, t=T, h=H, w=W)

    def grouped(self, x: Tensor, grid: Grid) -> Tensor:
        """Patch tokens ``(B, H*W*T, D)`` as ``(B, *group axes, L, D)``, a view."""
        T, H, W = grid
        return rearrange(x, self._grouped, t=T, h=H, w=W)

    def split_with_cls(self, x: Tensor, cls: Tensor, grid: Grid) -> list[Tensor]:
        groups = self.grouped(x, grid)  # (B, *group axes, L, D), strided
        B, D, n = groups.shape[0], groups.shape[-1], len(self.group_axes)
        cls = cls.view(B, *(1,) * n, 1, D).expand(*groups.shape[:-2], 1, D)
        return [torch.cat([cls, groups], dim=-2).flatten(0, n)]  # (B*G, 1+L, D)

    def merge_add(self, base: Tensor, parts: list[Tensor], grid: Grid) -> Tensor:
        T, H, W = grid
        B, N, D = base.shape
        sizes = {"t": T, "h": H, "w": W}
        groups = parts[0].unflatten(0, (B, *(sizes[a] for a in self.group_axes)))  # may be a slice (no cls)
        out = base.view(B, H, W, T, D) + rearrange(groups, self._ungrouped, **sizes)  # one pass
        return out.view(B, N, D)


class IndexGrouping(Grouping):
    """A grouping given by explicit index lists; groups of unequal size go in separate buckets.

    Used by Sparse Local Global, whose windows and lattices are unequal on odd grids.
    """

    def groups(self, grid: Grid) -> list[list[int]]:
        """The groups, each a list of canonical patch indices in ascending order."""
        raise NotImplementedError

    @functools.lru_cache(maxsize=256)
    def _indices(self, grid: Grid, device: torch.device) -> tuple[tuple[Tensor, ...], Tensor]:
        by_length: dict[int, list[list[int]]] = {}
        for group in self.groups(grid):
            if group:
                by_length.setdefault(len(group), []).append(group)
        buckets = tuple(torch.tensor(g, dtype=torch.long, device=device) for g in by_length.values())
        order = torch.cat([b.flatten() for b in buckets])  # concatenated groups -> token
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=device)  # token -> position in `order`
        return buckets, inverse

    def split(self, x: Tensor, grid: Grid) -> list[Tensor]:
        buckets, _ = self._indices(grid, x.device)
        B, D = x.shape[0], x.shape[-1]
        return [x[:, idx].reshape(B * idx.shape[0], idx.shape[1], D) for idx in buckets]  # (B*G, L, D)

    def merge(self, parts: list[Tensor], grid: Grid) -> Tensor:
        buckets, inverse = self._indices(grid, parts[0].device)
        B, D = parts[0].shape[0] // buckets[0].shape[0], parts[0].shape[-1]
        flat = torch.cat([p.reshape(B, -1, D) for p in parts], dim=1)  # (B, HWT, D) in group order
        return flat.index_select(1, inverse)


def _halves(n: int) -> list[range]:
    """Split range(n) into a first half of ceil(n/2) and the rest (empty when n == 1)."""
    cut = math.ceil(n / 2)
    return [r for r in (range(0, cut), range(cut, n)) if len(r)]


class LocalWindows(IndexGrouping):
    """Non-overlapping windows of T x ceil(H/2) x ceil(W/2) patches (the 'L' of L+G)."""

    name = "local"

    def groups(self, grid: Grid) -> list[list[int]]:
        T, H, W = grid
        return [sorted((h * W + w) * T + t for h in hs for w in ws for t in range(T))
                for hs, ws in itertools.product(_halves(H), _halves(W))]


class GlobalLattice(IndexGrouping):
    """The stride-2 lattices: patches sharing the parity of t, h and w (the 'G' of L+G)."""

    name = "global"

    def groups(self, grid: Grid) -> list[list[int]]:
        T, H, W = grid
        return [sorted((h * W + w) * T + t
                       for h in range(ph, H, 2) for w in range(pw, W, 2) for t in range(pt, T, 2))
                for ph, pw, pt in itertools.product(range(2), repeat=3)]


FULL = PatternGrouping("full", group="", within="h w t")  # one group: every token of the clip
TIME = PatternGrouping("time", group="h w", within="t")  # one group per location (h, w)
FRAME = PatternGrouping("frame", group="t", within="h w")  # one group per frame t
WIDTH = PatternGrouping("width", group="t h", within="w")  # one group per row (t, h)
HEIGHT = PatternGrouping("height", group="t w", within="h")  # one group per column (t, w)
LOCAL = LocalWindows()
GLOBAL = GlobalLattice()


# --------------------------------------------------------------------------------------
# The schemes: one table.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One attention step of a block.

    ``name`` prefixes its parameters: an extra step ``temporal`` owns ``temporal_norm1``,
    ``temporal_attn`` and the zero-initialised ``temporal_fc`` (the authors' names for the
    divided block); the main step owns the ViT's own ``norm1`` and ``attn``. ``with_cls``:
    the cls joins every group at slot 0 (only the block's last, main step).
    """

    name: str
    grouping: Grouping
    with_cls: bool = False

    def group_sizes(self, grid: Grid) -> list[tuple[int, int]]:
        """``(groups, tokens per group)`` of every bucket on ``grid``, the cls counted where it joins."""
        return [(part.shape[0], part.shape[1] + self.with_cls) for part in self.grouping.partition(grid)]

    def matrix_entries(self, grid: Grid) -> int:
        """Entries of this step's attention matrices on ``grid``, for one head of one clip."""
        return sum(groups * length**2 for groups, length in self.group_sizes(grid))


MAIN = "main"  # the name of every block's last step, the one the cls joins


@dataclass(frozen=True)
class Scheme:
    """One row of the scheme table: names, the steps, and how the clip is cut for them."""

    name: str
    title: str  # the paper's name
    extra_steps: tuple[Step, ...]  # run first, cls sits out, each followed by its zero-init fc
    main: Grouping  # the last step: the cls joins every group, outputs averaged over groups
    per_frame: bool = False  # Space: frames are separate clips (each with its own cls) until the end
    aliases: tuple[str, ...] = ()  # the paper's other names for it (short and long forms)
    hf_name: str | None = None  # the authors' (and Hugging Face's) attention_type; None: neither implements it

    @property
    def names(self) -> tuple[str, ...]:
        """Every name this scheme answers to: ours, the paper's, the authors' code's."""
        return (self.name, *self.aliases, *((self.hf_name,) if self.hf_name else ()))

    @property
    def steps(self) -> tuple[Step, ...]:
        return self.extra_steps + (Step(MAIN, self.main, with_cls=True),)

    def clip_view(self, grid: Grid) -> tuple[int, Grid]:
        """``(clips, grid of each clip)`` the blocks run on for one input clip of ``grid``.

        Space runs every frame as a clip of its own (``T`` clips of one frame); every other
        scheme runs the whole clip.
        """
        T, H, W = grid
        return (T, (1, H, W)) if self.per_frame else (1, (T, H, W))


SCHEMES: dict[str, Scheme] = {
    "space": Scheme("space", "Space", (), FULL, per_frame=True, aliases=("s",), hf_name="space_only"),
    "joint": Scheme("joint", "Joint Space-Time", (), FULL, aliases=("st",), hf_name="joint_space_time"),
    "divided": Scheme("divided", "Divided Space-Time", (Step("temporal", TIME),), FRAME, aliases=("t+s",),
                      hf_name="divided_space_time"),
    "local_global": Scheme("local_global", "Sparse Local Global", (Step("local", LOCAL),), GLOBAL,
                           aliases=("sparse_local_global", "l+g")),
    "axial": Scheme("axial", "Axial", (Step("temporal", TIME), Step("width", WIDTH)), HEIGHT, aliases=("t+w+h",)),
}
