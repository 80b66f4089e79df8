"""The models a benchmark times and their steps: ours and Hugging Face's on the same weights and clips.

* inference: ``torch.inference_mode()``, eval mode;
* training: forward, cross-entropy, backward, ``clip_grad_norm_(1.0)``, AdamW step and
  ``zero_grad(set_to_none=True)``, the study's recipe (``tsf.study.presets``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import SCHEMES
from ..config import TimeSformerConfig
from ..cpu_matmul import onednn_matmul
from ..model import TimeSformer, autocast, randomise_zero_inits
from ..weights import to_hf

# Hugging Face's space_only returns per-frame logits: not the same model, so not compared.
HF_SCHEMES: tuple[str, ...] = tuple(n for n, s in SCHEMES.items() if s.hf_name and not s.per_frame)
IMPLS = ("tsf", "hf")
MODES = ("train", "infer")
PARITY_TOLERANCE = 1e-4  # largest logit difference, relative to the largest logit, float32


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
    ours = randomise_zero_inits(TimeSformer(config), seed + 1, std=0.02)
    models: dict[str, nn.Module] = {"tsf": ours}
    if hf and config.attention in HF_SCHEMES:
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


def make_step(model: nn.Module, video: Tensor, labels: Tensor, mode: str, *, precision: str = "fp32",
              optimizer: torch.optim.Optimizer | None = None, clip_grad: float | None = 1.0,
              label_smoothing: float = 0.0, cpu_matmul: str = "default") -> Callable[[], None]:
    """One inference call or one training step of ``model`` on ``video`` as a callable (``clip_grad``,
    ``label_smoothing``: a training recipe's, the study's by default; ``cpu_matmul``: the kernels of
    its float32 CPU products, :func:`tsf.cpu_matmul.onednn_matmul`, PyTorch's choice by default)."""
    device = video.device
    if mode == "infer":
        def infer() -> None:
            model.eval()
            with torch.inference_mode(), autocast(device, precision), onednn_matmul(cpu_matmul, device):
                model(video)
        return infer
    if mode != "train":
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer or torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)

    def train() -> None:
        model.train()
        with onednn_matmul(cpu_matmul, device):
            with autocast(device, precision):
                loss = F.cross_entropy(model(video).float(), labels, label_smoothing=label_smoothing)
            loss.backward()
            if clip_grad is not None:
                nn.utils.clip_grad_norm_(params, clip_grad)
            opt.step()
            opt.zero_grad(set_to_none=True)
    return train


def is_oom(err: BaseException) -> bool:
    """An out-of-memory error (torch's, or a RuntimeError that says so)."""
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()
