"""Export to Hugging Face transformers' ``TimesformerForVideoClassification``."""

from __future__ import annotations

import logging
from typing import Any

from ..attention import SCHEMES
from ..config import TimeSformerConfig
from ..model import TimeSformer
from .formats import tsf_to_hf_timesformer

logger = logging.getLogger(__name__)

# our scheme -> Hugging Face's attention_type; it implements the authors' three
HF_ATTENTION = {name: scheme.hf_name for name, scheme in SCHEMES.items() if scheme.hf_name}


def hf_config_kwargs(config: TimeSformerConfig) -> dict[str, Any]:
    """The ``transformers.TimesformerConfig`` arguments of a tsf configuration."""
    if config.attention not in HF_ATTENTION:
        raise ValueError(f"Hugging Face's TimeSformer implements {sorted(HF_ATTENTION)} attention only, "
                         f"not {config.attention!r}")
    needs_time = config.attention != "space"
    if not config.has_pos_embed or config.has_time_embed != needs_time:
        raise ValueError(f"Hugging Face's TimeSformer always has a position embedding and, except space-only, a "
                         f"time embedding; this model has pos_embed={config.pos_embed!r}")
    return dict(
        image_size=config.img_size, patch_size=config.patch_size, num_channels=config.in_chans,
        num_frames=config.num_frames, hidden_size=config.embed_dim, num_hidden_layers=config.depth,
        num_attention_heads=config.num_heads, intermediate_size=int(config.embed_dim * config.mlp_ratio),
        hidden_act="gelu", layer_norm_eps=config.layer_norm_eps, qkv_bias=config.qkv_bias,
        attention_type=HF_ATTENTION[config.attention], hidden_dropout_prob=config.drop_rate,
        attention_probs_dropout_prob=config.attn_drop_rate, drop_path_rate=config.drop_path_rate,
        num_labels=config.num_classes,
    )


def to_hf(model: TimeSformer) -> Any:
    """A Hugging Face ``TimesformerForVideoClassification`` (eval mode) with ``model``'s weights.

    Hugging Face implements the authors' three schemes: divided and joint give our logits
    (it takes ``(B, T, C, H, W)`` clips). Its space-only mode does *not* average the frames
    as the authors' model (and ours) do: it returns one row of logits per frame
    (``(B*T, classes)``), each normalised on its own; so its outputs differ from ours except
    on clips whose frames are all the same. Sparse Local Global and Axial have no Hugging
    Face counterpart: a ``ValueError``. Needs ``transformers`` (imported here, not before).
    """
    try:  # transformers is optional (the test extra): imported here, not before
        from transformers import TimesformerConfig, TimesformerForVideoClassification
    except ImportError as err:
        raise ImportError("tsf.to_hf needs the transformers package: pip install transformers") from err
    if not isinstance(model, TimeSformer):
        raise TypeError(f"to_hf takes a tsf.TimeSformer, got {type(model).__name__}")
    kwargs = hf_config_kwargs(model.config)
    rate = kwargs["drop_path_rate"]
    kwargs["drop_path_rate"] = int(rate) if float(rate).is_integer() else rate
    try:
        hf_config = TimesformerConfig(**kwargs)
    except Exception:  # transformers >= 5 types drop_path_rate as an int (a strict-dataclass error)
        if isinstance(kwargs["drop_path_rate"], int):
            raise
        logger.warning("transformers' TimesformerConfig rejects drop_path_rate=%s; the exported model has none "
                       "(it only matters for training)", kwargs["drop_path_rate"])
        hf_config = TimesformerConfig(**{**kwargs, "drop_path_rate": 0})
    reference = model.patch_embed.proj.weight
    hf = TimesformerForVideoClassification(hf_config).to(device=reference.device, dtype=reference.dtype)
    hf.load_state_dict(tsf_to_hf_timesformer(model.state_dict()), strict=True)
    return hf.eval()
