"""TimeSformerConfig and every model preset, in one place.

The defaults are the authors' ViT-B/16 TimeSformer (facebookresearch/TimeSformer,
``vit_base_patch16_224``): 8 frames of 224 x 224, 16 px patches, 12 blocks of width 768.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from .attention import SCHEMES

# Every name a scheme answers to (ours, the paper's, the authors' code's), from the scheme table.
ATTENTION_SCHEMES: tuple[str, ...] = tuple(SCHEMES)
ATTENTION_ALIASES: dict[str, str] = {alias: name for name, scheme in SCHEMES.items() for alias in scheme.names}
POS_EMBED_CHOICES: tuple[str, ...] = ("space_time", "space", "none")
RESIZE_MODES: tuple[str, ...] = ("nearest", "bilinear", "bicubic")
TIME_EMBED_INITS: tuple[str, ...] = ("zeros", "trunc_normal", "sinusoidal")


def canonical_attention(name: str) -> str:
    """Map any accepted scheme name (ours, the paper's or the authors' code's) to ours."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key not in ATTENTION_ALIASES:
        raise ValueError(
            f"unknown attention scheme {name!r}; choose one of {ATTENTION_SCHEMES} "
            f"(the authors' names {', '.join(repr(s.hf_name) for s in SCHEMES.values() if s.hf_name)} work too)"
        )
    return ATTENTION_ALIASES[key]


@dataclass(frozen=True)
class TimeSformerConfig:
    """Everything that fixes a TimeSformer's architecture.

    ``img_size`` and ``num_frames`` are the sizes the embeddings are learned for; the
    model also runs on other sizes by interpolating them (see ``resize_mode``).
    """

    attention: str = "divided"  # space | joint | divided | local_global | axial (or the authors' names)
    img_size: int = 224  # crop side in pixels; the patch grid is img_size // patch_size per side
    patch_size: int = 16  # P: non-overlapping P x P patches, embedded by a Conv2d with kernel = stride = P
    num_frames: int = 8  # T: frames per clip the time embedding is learned for
    in_chans: int = 3  # RGB
    embed_dim: int = 768  # D
    depth: int = 12  # number of blocks
    num_heads: int = 12  # heads per attention step; D must be divisible by it
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * D
    num_classes: int = 400  # Kinetics-400; the paper's parameter counts use 174 (SSv2)
    qkv_bias: bool = True  # the authors' ViT-B has a bias on qkv
    drop_rate: float = 0.0  # dropout after the embeddings, on the projections and in the MLP (authors: 0)
    attn_drop_rate: float = 0.0  # dropout on the attention probabilities (authors: 0)
    drop_path_rate: float = 0.1  # stochastic depth, linear over depth, block 0 = 0 (authors: 0.1)
    layer_norm_eps: float = 1e-6  # the authors' ViT uses 1e-6
    pos_embed: str = "space_time"  # space_time | space | none: the paper's Table 4 ablation
    resize_mode: str = "nearest"  # how embeddings are interpolated for another input size (authors: nearest)
    # Where the time embedding starts, for fresh models and image-ViT inflation alike (a loaded
    # checkpoint's own is never touched). "zeros" is the authors' (an inflated model then starts
    # order-blind and, at a small budget, learns order only after a seed-dependent plateau);
    # "trunc_normal" draws it (std time_embed_init_std, cut at 2 std); "sinusoidal" is the fixed
    # sin/cos code of Vaswani et al. over the frames, centred and scaled to RMS time_embed_init_std,
    # so that "earlier / later" is a direction the model can read from the first step. The study
    # uses "sinusoidal" (docs/study.md, "Departures").
    time_embed_init: str = "zeros"
    time_embed_init_std: float = 0.3  # the scale of the two non-zero starts; unused by "zeros"

    def __post_init__(self) -> None:
        object.__setattr__(self, "attention", canonical_attention(self.attention))
        if self.pos_embed not in POS_EMBED_CHOICES:
            raise ValueError(f"pos_embed must be one of {POS_EMBED_CHOICES}, got {self.pos_embed!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        for name in ("img_size", "patch_size", "num_frames", "in_chans", "embed_dim", "depth", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.time_embed_init not in TIME_EMBED_INITS:
            raise ValueError(f"time_embed_init must be one of {TIME_EMBED_INITS}, got {self.time_embed_init!r}")
        if not 0 <= self.time_embed_init_std < float("inf"):  # also rejects NaN
            raise ValueError(f"time_embed_init_std must be a finite number >= 0, got {self.time_embed_init_std!r}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0 (0 means no head), got {self.num_classes}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not divisible by patch_size {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")

    @property
    def grid_size(self) -> int:
        """Patches per side at ``img_size``."""
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        """N: patches per frame at ``img_size``."""
        return self.grid_size**2

    @property
    def has_time_embed(self) -> bool:
        """Space attention has no time embedding in the authors' code; Table 4 can remove it too."""
        return self.attention != "space" and self.pos_embed == "space_time"

    @property
    def has_pos_embed(self) -> bool:
        return self.pos_embed != "none"

    def replace(self, **changes: Any) -> "TimeSformerConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TimeSformerConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TimeSformerConfig fields: {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# Every preset in one table.  The three paper models share ViT-B/16; the small ones are
# for the CPU studies and the tests.
_VIT_B16 = dict(patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, drop_path_rate=0.1)
PRESETS: dict[str, dict[str, Any]] = {
    # TimeSformer, 8 x 224, sampling rate 32 (0.59 TFLOPs for 3 views)
    "base": dict(_VIT_B16, img_size=224, num_frames=8),
    # TimeSformer-HR, 16 x 448, sampling rate 16 (5.11 TFLOPs for 3 views)
    "hr": dict(_VIT_B16, img_size=448, num_frames=16),
    # TimeSformer-L, 96 x 224, sampling rate 4 (7.14 TFLOPs for 3 views)
    "large": dict(_VIT_B16, img_size=224, num_frames=96),
    # CPU study model: 4 blocks of width 128 on 8 x 32 x 32 clips, 8 px patches (4 x 4 grid)
    "small": dict(img_size=32, patch_size=8, num_frames=8, embed_dim=128, depth=4, num_heads=4,
                  mlp_ratio=4.0, drop_path_rate=0.0, num_classes=10),
    # the small model at half the width: 4 blocks of width 64 (a calibration candidate, tsf.study.calibration)
    "compact": dict(img_size=32, patch_size=8, num_frames=8, embed_dim=64, depth=4, num_heads=4,
                    mlp_ratio=4.0, drop_path_rate=0.0, num_classes=10),
    # the GPU study model: 6 blocks of width 256 on 16 x 64 x 64 clips (8 x 8 grid)
    "medium": dict(img_size=64, patch_size=8, num_frames=16, embed_dim=256, depth=6, num_heads=8,
                   mlp_ratio=4.0, drop_path_rate=0.1, num_classes=10),
    # the smallest model that still has every part; for fast tests
    "tiny": dict(img_size=16, patch_size=4, num_frames=4, embed_dim=32, depth=2, num_heads=2,
                 mlp_ratio=2.0, drop_path_rate=0.0, num_classes=5),
}


def preset(name: str, **overrides: Any) -> TimeSformerConfig:
    """A named configuration, with any field overridden.

    >>> preset("base", attention="joint", num_classes=174).num_frames
    8
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return TimeSformerConfig(**{**PRESETS[name], **overrides})
