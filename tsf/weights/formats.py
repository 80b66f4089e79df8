"""The weight formats tsf reads, recognised by their keys, and one adapter per format.

:data:`FORMATS` is the table ``load_pretrained`` reads: one row per format, tried in order,
each with how it is recognised (``detect``), how its keys become ours (``to_tsf``) and what its
own configuration says (``hints``). Every adapter is a pure function from a state dict to a new
state dict in our names (the authors' names, see ``tsf.model``), in the style of timm's
``checkpoint_filter_fn``. Keys an adapter does not know pass through unchanged, so the strict
check that follows names them.

| layout           | recognised by                                              | source                         |
|------------------|------------------------------------------------------------|--------------------------------|
| ``tsf``          | our ``config.json`` / safetensors metadata marker          | ``tsf.save_pretrained``        |
| ``authors``      | ``patch_embed.proj.weight`` + video keys, ``model.`` prefix, ``model_state`` | facebookresearch/TimeSformer ``.pyth`` |
| ``timm_vit``     | ``patch_embed.proj.weight`` and no video keys              | timm ``vit_base_patch16_224``  |
| ``hf_timesformer`` | ``...embeddings.patch_embeddings.projection`` + packed ``qkv`` | transformers ``Timesformer*`` |
| ``hf_vit``       | ``...embeddings.patch_embeddings.projection`` + ``query``/``q_proj`` | transformers ``ViT*``   |
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import yaml
from torch import Tensor

from ..config import TimeSformerConfig, canonical_attention
from .io import FORMAT_MARKER, STATE_DICT_NAME, CheckpointError, RawCheckpoint, describe_keys

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Key tables
# --------------------------------------------------------------------------------------


class KeyMap:
    """A renaming table of ``(foreign pattern, our pattern)`` pairs, usable both ways.

    ``{i}`` stands for a block index and ``{p}`` for ``weight`` or ``bias``.
    """

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._forward = [(self._compile(a), b) for a, b in pairs]
        self._backward = [(self._compile(b), a) for a, b in pairs]

    @staticmethod
    def _compile(pattern: str) -> re.Pattern[str]:
        rx = re.escape(pattern).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
        return re.compile(rx + "$")

    @staticmethod
    def _apply(table: list[tuple[re.Pattern[str], str]], key: str) -> str | None:
        for rx, target in table:
            m = rx.match(key)
            if m:
                return target.format(**m.groupdict())
        return None

    def rename(self, key: str) -> str | None:
        """Foreign name -> ours (None when the table does not know the key)."""
        return self._apply(self._forward, key)

    def inverse(self, key: str) -> str | None:
        """Our name -> the foreign one (None when the table does not know the key)."""
        return self._apply(self._backward, key)

    def rename_all(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """A new dict with every known key renamed; unknown keys kept as they are."""
        return {(self.rename(k) or k): v for k, v in state.items()}


HF_TIMESFORMER_KEYS = KeyMap([
    ("embeddings.cls_token", "cls_token"),
    ("embeddings.position_embeddings", "pos_embed"),
    ("embeddings.time_embeddings", "time_embed"),
    ("embeddings.patch_embeddings.projection.{p}", "patch_embed.proj.{p}"),
    ("encoder.layer.{i}.layernorm_before.{p}", "blocks.{i}.norm1.{p}"),
    ("encoder.layer.{i}.attention.attention.qkv.{p}", "blocks.{i}.attn.qkv.{p}"),
    ("encoder.layer.{i}.attention.output.dense.{p}", "blocks.{i}.attn.proj.{p}"),
    ("encoder.layer.{i}.temporal_layernorm.{p}", "blocks.{i}.temporal_norm1.{p}"),
    ("encoder.layer.{i}.temporal_attention.attention.qkv.{p}", "blocks.{i}.temporal_attn.qkv.{p}"),
    ("encoder.layer.{i}.temporal_attention.output.dense.{p}", "blocks.{i}.temporal_attn.proj.{p}"),
    ("encoder.layer.{i}.temporal_dense.{p}", "blocks.{i}.temporal_fc.{p}"),
    ("encoder.layer.{i}.layernorm_after.{p}", "blocks.{i}.norm2.{p}"),
    ("encoder.layer.{i}.intermediate.dense.{p}", "blocks.{i}.mlp.fc1.{p}"),
    ("encoder.layer.{i}.output.dense.{p}", "blocks.{i}.mlp.fc2.{p}"),
    ("layernorm.{p}", "norm.{p}"),
    ("classifier.{p}", "head.{p}"),
])

# Hugging Face ViT: the names on the Hub (and in save_pretrained files), then the names that
# transformers >= 5 uses in memory. q, k and v land on temporary names and are packed below.
HF_VIT_KEYS = KeyMap([
    ("embeddings.cls_token", "cls_token"),
    ("embeddings.position_embeddings", "pos_embed"),
    ("embeddings.patch_embeddings.projection.{p}", "patch_embed.proj.{p}"),
    ("encoder.layer.{i}.layernorm_before.{p}", "blocks.{i}.norm1.{p}"),
    ("encoder.layer.{i}.attention.attention.query.{p}", "blocks.{i}.attn.q.{p}"),
    ("encoder.layer.{i}.attention.attention.key.{p}", "blocks.{i}.attn.k.{p}"),
    ("encoder.layer.{i}.attention.attention.value.{p}", "blocks.{i}.attn.v.{p}"),
    ("encoder.layer.{i}.attention.output.dense.{p}", "blocks.{i}.attn.proj.{p}"),
    ("encoder.layer.{i}.layernorm_after.{p}", "blocks.{i}.norm2.{p}"),
    ("encoder.layer.{i}.intermediate.dense.{p}", "blocks.{i}.mlp.fc1.{p}"),
    ("encoder.layer.{i}.output.dense.{p}", "blocks.{i}.mlp.fc2.{p}"),
    ("layers.{i}.layernorm_before.{p}", "blocks.{i}.norm1.{p}"),
    ("layers.{i}.attention.q_proj.{p}", "blocks.{i}.attn.q.{p}"),
    ("layers.{i}.attention.k_proj.{p}", "blocks.{i}.attn.k.{p}"),
    ("layers.{i}.attention.v_proj.{p}", "blocks.{i}.attn.v.{p}"),
    ("layers.{i}.attention.o_proj.{p}", "blocks.{i}.attn.proj.{p}"),
    ("layers.{i}.layernorm_after.{p}", "blocks.{i}.norm2.{p}"),
    ("layers.{i}.mlp.fc1.{p}", "blocks.{i}.mlp.fc1.{p}"),
    ("layers.{i}.mlp.fc2.{p}", "blocks.{i}.mlp.fc2.{p}"),
    ("layernorm.{p}", "norm.{p}"),
    ("classifier.{p}", "head.{p}"),
])
# Parts of Hugging Face's ViTModel that a classifier does not use: dropped, with a log line.
HF_VIT_UNUSED = re.compile(r"(embeddings\.mask_token|pooler\.dense\.(weight|bias))$")


# --------------------------------------------------------------------------------------
# Recognising a layout
# --------------------------------------------------------------------------------------

_EXTRA_STEP = re.compile(r"blocks\.\d+\.(\w+)_(?:attn|norm1|fc)\.")


def unwrap(obj: Mapping[str, Any], name: str) -> tuple[dict[str, Tensor], Any, bool]:
    """Find the state dict in a checkpoint and strip wrapper prefixes.

    Returns ``(state, cfg, authors)``: ``cfg`` is the authors' ``cfg`` entry (YAML text)
    when present; ``authors`` says the container or the ``model.`` prefix marks the
    authors' training code (their ``{epoch, model_state, optimizer_state, cfg}`` dict).
    """
    authors = False
    cfg = None
    state: Any = obj
    if "model_state" in obj and isinstance(obj["model_state"], Mapping):
        state, cfg, authors = obj["model_state"], obj.get("cfg"), True
    elif isinstance(obj.get("state_dict"), Mapping):  # Lightning / timm training checkpoints
        state = obj["state_dict"]
    elif isinstance(obj.get("model"), Mapping):  # DeiT / MAE style
        state = obj["model"]
    state = dict(state)
    if not state:
        raise CheckpointError(f"{name}: holds no weights (top-level keys: {sorted(obj)[:10]})")
    not_tensors = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(f"{name}: not a state dict: these entries are not tensors: "
                              f"{describe_keys(state, not_tensors)}")
    for prefix in ("module.", "model."):  # DistributedDataParallel, then the authors' wrapper
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
            authors = authors or prefix == "model."
    return state, cfg, authors


def has_our_names(state: Mapping[str, Tensor]) -> bool:
    """The authors', timm's and our key names (``patch_embed.proj.weight``)."""
    return "patch_embed.proj.weight" in state


def _hf_names(state: Mapping[str, Tensor]) -> bool:
    return any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in state)


def is_hf_timesformer(state: Mapping[str, Tensor]) -> bool:
    """Hugging Face's names with a packed ``qkv`` or a time embedding: its TimeSformer."""
    return _hf_names(state) and any(".attention.attention.qkv." in k or k.endswith("embeddings.time_embeddings")
                                    for k in state)


def is_hf_vit(state: Mapping[str, Tensor]) -> bool:
    """Hugging Face's names with separate query, key and value: its image ViT."""
    return _hf_names(state) and any(re.search(r"\.attention\.(attention\.(query|key|value)|[qkv]_proj)\.", k)
                                    for k in state)


def extra_step_names(state: Mapping[str, Tensor]) -> frozenset[str]:
    """The names of the extra attention steps present (``temporal``, ``local``, ``width``)."""
    return frozenset(m.group(1) for k in state if (m := _EXTRA_STEP.match(k)))


def is_video(state: Mapping[str, Tensor]) -> bool:
    """Our names with a time embedding or an extra attention step: a video model, not an image ViT."""
    return "time_embed" in state or bool(extra_step_names(state))


# --------------------------------------------------------------------------------------
# Adapters: foreign names -> ours (pure)
# --------------------------------------------------------------------------------------


def _strip(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k.removeprefix(prefix): v for k, v in state.items()}


def hf_timesformer_to_tsf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A Hugging Face ``TimesformerForVideoClassification`` / ``TimesformerModel`` state dict in our names.
    Its ``qkv`` is packed as ours (q, k, v, heads contiguous), so this is a renaming."""
    return HF_TIMESFORMER_KEYS.rename_all(_strip(state, "timesformer."))


def tsf_to_hf_timesformer(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict in the names of Hugging Face's ``TimesformerForVideoClassification``."""
    out = {}
    for k, v in state.items():
        hf = HF_TIMESFORMER_KEYS.inverse(k)
        if hf is None:
            raise CheckpointError(f"{STATE_DICT_NAME}: Hugging Face's TimeSformer has no parameter for "
                                  f"{describe_keys(state, [k])}")
        out[hf if hf.startswith("classifier.") else "timesformer." + hf] = v
    return out



def hf_vit_to_tsf(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A Hugging Face ``ViTForImageClassification`` / ``ViTModel`` state dict in our (timm's) names.

    The separate query, key and value projections are packed into one ``qkv`` in q, k, v order
    with the heads contiguous, as ours (and timm's) are; ``ViTModel``'s pooler and mask token,
    which a classifier does not use, are dropped.
    """
    stripped = _strip(state, "vit.")
    unused = [k for k in stripped if HF_VIT_UNUSED.match(k)]
    if unused:
        logger.info("dropping Hugging Face ViT parts a classifier does not use: %s", ", ".join(unused))
    out = HF_VIT_KEYS.rename_all({k: v for k, v in stripped.items() if k not in unused})
    for key in [k for k in out if re.fullmatch(r"blocks\.\d+\.attn\.q\.(weight|bias)", k)]:
        parts = [key.replace(".attn.q.", f".attn.{x}.") for x in "qkv"]
        if all(p in out for p in parts):  # otherwise the leftovers are reported as unexpected keys
            out[key.replace(".attn.q.", ".attn.qkv.")] = torch.cat([out.pop(p) for p in parts], dim=0)
    return out


# --------------------------------------------------------------------------------------
# What a source says about the configuration ("hints"), each with where it was read
# --------------------------------------------------------------------------------------

Hints = dict[str, tuple[Any, str]]  # TimeSformerConfig field -> (value, "where it says so")


def hints_from_authors_cfg(cfg: Any, name: str) -> Hints:
    """The fields the authors' ``cfg`` (yacs YAML text) fixes: TIMESFORMER.ATTENTION_TYPE,
    DATA.NUM_FRAMES, DATA.TRAIN_CROP_SIZE, MODEL.NUM_CLASSES. Unreadable text is logged and ignored."""
    if cfg is None:
        return {}
    data = cfg
    if isinstance(cfg, (str, bytes)):
        try:
            data = yaml.safe_load(cfg)
        except yaml.YAMLError as err:
            logger.warning("%s: cannot parse the cfg text (%s); using the tensor shapes alone", name, err)
            return {}
    if not isinstance(data, Mapping):
        logger.warning("%s: the cfg entry is a %s, not YAML text; using the tensor shapes alone",
                       name, type(cfg).__name__)
        return {}
    hints: Hints = {}
    for section, key, field in [("TIMESFORMER", "ATTENTION_TYPE", "attention"), ("DATA", "NUM_FRAMES", "num_frames"),
                                ("DATA", "TRAIN_CROP_SIZE", "img_size"), ("MODEL", "NUM_CLASSES", "num_classes")]:
        value = (data.get(section) or {}).get(key) if isinstance(data.get(section), Mapping) else None
        if value is not None:
            if field == "attention":
                value = canonical_attention(str(value))
            hints[field] = (value, f"the checkpoint's cfg ({section}.{key}: {value})")
    return hints


def _square(value: Any, what: str, label: str) -> int:
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise CheckpointError(f"{label}: {what}={list(value)} is not square; tsf models are square")
        value = value[0]
    return int(value)


def hints_from_hf_config(config: Mapping[str, Any], name: str) -> Hints:
    """The fields a Hugging Face ``TimesformerConfig`` / ``ViTConfig`` (config.json) fixes."""
    label = f"{name}'s config.json"
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise CheckpointError(f"{label}: hidden_act={act!r}; tsf models use exact GELU ('gelu') only")
    hints: Hints = {}
    table = [("image_size", "img_size"), ("patch_size", "patch_size"), ("num_channels", "in_chans"),
             ("num_frames", "num_frames"), ("hidden_size", "embed_dim"), ("num_hidden_layers", "depth"),
             ("num_attention_heads", "num_heads"), ("layer_norm_eps", "layer_norm_eps"), ("qkv_bias", "qkv_bias"),
             ("attention_type", "attention"), ("hidden_dropout_prob", "drop_rate"),
             ("attention_probs_dropout_prob", "attn_drop_rate"), ("drop_path_rate", "drop_path_rate")]
    for hf, ours in table:
        if hf in config and config[hf] is not None:
            value = config[hf]
            if ours in ("img_size", "patch_size"):
                value = _square(value, hf, label)
            elif ours == "attention":
                value = canonical_attention(value)
            hints[ours] = (value, f"{label} ({hf}: {config[hf]})")
    if "intermediate_size" in config and "hidden_size" in config:
        hints["mlp_ratio"] = (config["intermediate_size"] / config["hidden_size"],
                              f"{label} (intermediate_size: {config['intermediate_size']})")
    architectures = config.get("architectures") or []
    if any("Classification" in a for a in architectures) and "id2label" in config:
        hints["num_classes"] = (len(config["id2label"]), f"{label} ({len(config['id2label'])} labels in id2label)")
    return hints


def hints_from_tsf_config(config: Mapping[str, Any], label: str) -> Hints:
    """Every field of our own config (``save_pretrained``'s config.json or safetensors metadata)."""
    try:
        cfg = TimeSformerConfig.from_dict(dict(config))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{label}: not a valid TimeSformerConfig: {err}") from None
    return {k: (v, f"{label} ({k}: {v})") for k, v in cfg.to_dict().items()}


def our_config(raw: RawCheckpoint) -> tuple[dict[str, Any], str] | None:
    """Our own config (from ``save_pretrained``'s config.json or safetensors metadata) and where it was read."""
    if raw.config is not None and raw.config.get("format") == FORMAT_MARKER:
        if not isinstance(raw.config.get("config"), dict):
            raise CheckpointError(f"{raw.name}: our config.json has no 'config' object")
        return raw.config["config"], f"{raw.name}'s config.json"
    if raw.metadata.get("tsf_format") == FORMAT_MARKER:
        try:
            return json.loads(raw.metadata["tsf_config"]), f"{raw.name}'s metadata"
        except (KeyError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{raw.name}: tsf metadata without a readable tsf_config ({err!r})") from None
    return None


# --------------------------------------------------------------------------------------
# The table: one row per format, in the order they are tried
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unwrapped:
    """A source with its state dict found and wrapper prefixes stripped (see :func:`unwrap`)."""

    raw: RawCheckpoint
    state: dict[str, Tensor]
    cfg: Any  # the authors' cfg entry (YAML text), if any
    authors: bool  # the authors' container or ``model.`` prefix
    ours: tuple[dict[str, Any], str] | None  # our own config and where it was read (:func:`our_config`)

    @property
    def model_type(self) -> str | None:
        """A foreign config.json's ``model_type`` (Hugging Face's), if any."""
        return self.raw.config.get("model_type") if self.raw.config is not None and self.ours is None else None


@dataclass(frozen=True)
class Format:
    """One weight format: how it is recognised, renamed to our names, and what it says about the config."""

    layout: str
    title: str  # how messages name it
    detect: Callable[[Unwrapped], bool]
    to_tsf: Callable[[Mapping[str, Tensor]], dict[str, Tensor]]  # pure: a new dict in our names
    hints: Callable[[Unwrapped], Hints]  # what its own configuration says
    image: bool = False  # an image ViT: inflated to a video model
    hf_model_type: str | None = None  # the config.json model_type of a Hugging Face format
    layer_norm_eps: float = 1e-6  # when nothing else says: the authors' / timm's ViT use 1e-6
    note: str = ""  # logged when a source is read as this format


def _hf_hints(u: Unwrapped) -> Hints:
    return hints_from_hf_config(u.raw.config, u.raw.name) if u.model_type is not None else {}


FORMATS: dict[str, Format] = {f.layout: f for f in (
    Format("tsf", "a tsf checkpoint", lambda u: has_our_names(u.state) and u.ours is not None, dict,
           lambda u: hints_from_tsf_config(*u.ours)),
    Format("authors", "an authors' TimeSformer checkpoint (facebookresearch/TimeSformer layout)",
           lambda u: has_our_names(u.state) and (u.authors or u.cfg is not None or is_video(u.state)), dict,
           lambda u: hints_from_authors_cfg(u.cfg, u.raw.name)),
    Format("timm_vit", "an image ViT with timm names", lambda u: has_our_names(u.state), dict, lambda u: {},
           image=True, note="no time embedding and no extra attention step: read as an image ViT (pass "
                            "attention='space' for a space-only TimeSformer saved without its cfg)"),
    Format("hf_timesformer", "a Hugging Face TimeSformer", lambda u: is_hf_timesformer(u.state),
           hf_timesformer_to_tsf, _hf_hints, hf_model_type="timesformer"),
    Format("hf_vit", "a Hugging Face image ViT", lambda u: is_hf_vit(u.state), hf_vit_to_tsf, _hf_hints,
           image=True, hf_model_type="vit", layer_norm_eps=1e-12),  # Hugging Face's ViTConfig default
)}


def detect_format(u: Unwrapped) -> Format:
    """The first format of :data:`FORMATS` that recognises the source; a clear error if none does."""
    found = next((f for f in FORMATS.values() if f.detect(u)), None)
    if found is None:
        raise CheckpointError(f"{u.raw.name}: unknown key layout: neither the authors'/timm's names "
                              f"(patch_embed.proj.weight) nor Hugging Face's (embeddings.patch_embeddings.projection"
                              f".weight); its keys: {describe_keys(u.state, list(u.state))}")
    by_type = {f.hf_model_type: f for f in FORMATS.values() if f.hf_model_type}
    if u.model_type in by_type and by_type[u.model_type] is not found:
        raise CheckpointError(f"{u.raw.name}: config.json says model_type {u.model_type!r} but the keys are those of "
                              f"{found.title}")
    return found
