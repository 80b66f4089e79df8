"""From any recognised source to a TimeSformer: the configuration from the tensor shapes, the
inflation of an image ViT, embedding resizing, head replacement and the strict key check.

Where each configuration field comes from:

* the weights fix ``patch_size``, ``in_chans``, ``embed_dim``, ``depth``, ``mlp_ratio``,
  ``qkv_bias``, the class count (``head``), the crop (the ``pos_embed`` grid), the frame
  count (``time_embed``) and which schemes fit (the extra-step keys present);
* the source's own configuration (the authors' ``cfg`` text, a ``config.json``) must agree
  with the weights where both speak -- a disagreement is an error naming both -- and supplies
  what shapes cannot tell (``num_heads``, ``layer_norm_eps``, the scheme when several fit);
* ``overrides`` set those free fields, or choose another ``img_size`` / ``num_frames``
  (the embeddings are resized) or ``num_classes`` (the head is replaced); overriding a field
  the weights fix to another value is an error.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..attention import SCHEMES
from ..config import ATTENTION_SCHEMES, POS_EMBED_CHOICES, TimeSformerConfig, canonical_attention
from ..model import TimeSformer, init_time_embed, resize_pos_embed, resize_time_embed
from ..version import __version__
from .formats import Format, Hints, Unwrapped, detect_format, extra_step_names, our_config, unwrap
from .io import FORMAT_MARKER, MAX_LISTED, CheckpointError, describe_keys, read_source, write_json, write_safetensors

logger = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TimeSformerConfig))
FIXED_BY_WEIGHTS = ("patch_size", "in_chans", "embed_dim", "depth", "mlp_ratio", "qkv_bias")
INFLATION_POS_MODE = "bicubic"  # an image ViT's position embedding onto the video grid

Facts = dict[str, tuple[Any, str]]  # field -> (value, "which tensor says so")


@dataclass(frozen=True)
class Adapted:
    """A source read, renamed and fitted: ``state`` loads strictly into ``TimeSformer(config)``."""

    config: TimeSformerConfig
    state: dict[str, Tensor]
    layout: str  # tsf | authors | hf_timesformer | timm_vit | hf_vit (the rows of tsf.weights.formats.FORMATS)
    name: str  # the file, or "<state dict>"
    notes: tuple[str, ...]  # what was changed: inflation, resizing, a new head


# --------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------


def shape_facts(state: dict[str, Tensor], name: str) -> Facts:
    """Every configuration field the tensor shapes fix (in our key names)."""
    w = state.get("patch_embed.proj.weight")
    if w is None:
        raise CheckpointError(f"{name}: missing key patch_embed.proj.weight")
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise CheckpointError(f"{name}: patch_embed.proj.weight {tuple(w.shape)}: expected (D, C, P, P), square patches")
    D, C, P = w.shape[0], w.shape[1], w.shape[2]
    said = f"patch_embed.proj.weight is {tuple(w.shape)}"
    facts: Facts = {"embed_dim": (D, said), "in_chans": (C, said), "patch_size": (P, said)}

    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
    if not blocks:
        raise CheckpointError(f"{name}: no transformer blocks (no blocks.<i>.* keys) among "
                              f"{describe_keys(state, sorted(state))}")
    gaps = sorted(set(range(blocks[-1] + 1)) - set(blocks))
    if gaps:
        raise CheckpointError(f"{name}: blocks {gaps[:MAX_LISTED]} are missing (the weights hold blocks up to "
                              f"{blocks[-1]})")
    facts["depth"] = (len(blocks), f"the weights hold blocks 0..{len(blocks) - 1}")

    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if fc1 is None or fc1.ndim != 2:
        raise CheckpointError(f"{name}: missing key blocks.0.mlp.fc1.weight (or not a matrix)")
    facts["mlp_ratio"] = (fc1.shape[0] / D, f"blocks.0.mlp.fc1.weight is {tuple(fc1.shape)}")
    bias = "blocks.0.attn.qkv.bias" in state
    facts["qkv_bias"] = (bias, f"blocks.0.attn.qkv.bias is {'present' if bias else 'absent'}")
    head = state.get("head.weight")
    facts["num_classes"] = ((head.shape[0], f"head.weight is {tuple(head.shape)}") if head is not None
                            else (0, "the weights hold no head"))

    pos = state.get("pos_embed")
    if pos is not None:
        n = pos.shape[1] - 1 if pos.ndim == 3 else 0
        g = math.isqrt(max(n, 0))
        if pos.ndim != 3 or pos.shape[0] != 1 or n < 1 or g * g != n:
            raise CheckpointError(f"{name}: pos_embed {tuple(pos.shape)}: expected (1, 1 + g*g, D) for a square "
                                  "g x g patch grid")
        facts["img_size"] = (g * P, f"pos_embed is {tuple(pos.shape)}: a {g} x {g} grid of {P} px patches")
    time = state.get("time_embed")
    if time is not None:
        if time.ndim != 3 or time.shape[0] != 1:
            raise CheckpointError(f"{name}: time_embed {tuple(time.shape)}: expected (1, T, D)")
        facts["num_frames"] = (time.shape[1], f"time_embed is {tuple(time.shape)}: {time.shape[1]} frames")
    return facts


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    return a == b


def _fits(attention: str, pos_embed: str, steps: frozenset[str], has_pos: bool, has_time: bool) -> bool:
    cfg = TimeSformerConfig(attention=attention, pos_embed=pos_embed)
    return ({s.name for s in SCHEMES[attention].extra_steps} == steps
            and cfg.has_pos_embed == has_pos and cfg.has_time_embed == has_time)


def _wanted(field: str, hints: Hints, overrides: dict[str, Any]) -> tuple[Any, str] | None:
    if field in overrides:
        return overrides[field], f"the override {field}={overrides[field]!r}"
    return hints.get(field)


def resolve_scheme(state: dict[str, Tensor], fmt: Format, hints: Hints, overrides: dict[str, Any],
                   name: str) -> tuple[str, str]:
    """``(attention, pos_embed)``: for a video checkpoint, the ones its keys fit (the source's
    configuration or an override picks among several); for an image ViT, the override or divided."""
    has_pos, has_time = "pos_embed" in state, "time_embed" in state
    if fmt.image:
        attention = overrides.get("attention", "divided")
        pos_embed = overrides.get("pos_embed", "space_time" if has_pos else "none")
        if pos_embed != "none" and not has_pos:
            raise CheckpointError(f"{name}: the image ViT has no pos_embed; pos_embed={pos_embed!r} needs one")
        return attention, pos_embed
    steps = extra_step_names(state)
    fits = [(a, p) for a in ATTENTION_SCHEMES for p in POS_EMBED_CHOICES if _fits(a, p, steps, has_pos, has_time)]
    held = (f"extra attention steps {sorted(steps) or 'none'}, {'a' if has_pos else 'no'} position embedding and "
            f"{'a' if has_time else 'no'} time embedding")
    if not fits:
        raise CheckpointError(f"{name}: no TimeSformer has {held}")
    schemes = list(dict.fromkeys(a for a, _ in fits))
    wanted = _wanted("attention", hints, overrides)
    if wanted is not None and wanted[0] not in schemes:
        raise CheckpointError(f"{name}: {wanted[1]} asks for {wanted[0]!r} attention, but the weights hold {held}, "
                              f"which fit only {schemes}")
    attention = wanted[0] if wanted is not None else schemes[0]
    options = [p for a, p in fits if a == attention]
    wanted = _wanted("pos_embed", hints, overrides)
    if wanted is not None and wanted[0] not in options:
        raise CheckpointError(f"{name}: {wanted[1]} asks for pos_embed={wanted[0]!r}, but the weights hold {held}, "
                              f"which fit only {options} for {attention!r}")
    pos_embed = wanted[0] if wanted is not None else ("space_time" if "space_time" in options else options[0])
    return attention, pos_embed


def resolve_config(state: dict[str, Tensor], fmt: Format, hints: Hints, overrides: dict[str, Any],
                   name: str) -> tuple[TimeSformerConfig, Facts]:
    """The configuration of the model to build, and the facts the weights fix (see the module docstring)."""
    facts = shape_facts(state, name)
    for field, (value, said) in hints.items():
        if field in facts and not _same(value, facts[field][0]):
            raise CheckpointError(f"{name}: {said} disagrees with the weights: {facts[field][1]}")
    for field in FIXED_BY_WEIGHTS:
        if field in overrides and not _same(overrides[field], facts[field][0]):
            raise CheckpointError(f"{name}: cannot set {field}={overrides[field]!r}: {facts[field][1]}")
    values: dict[str, Any] = {}
    for field in FIELDS:
        for source in (overrides, {k: v for k, (v, _) in facts.items()}, {k: v for k, (v, _) in hints.items()}):
            if field in source:
                values[field] = source[field]
                break
    values["attention"], values["pos_embed"] = resolve_scheme(state, fmt, hints, overrides, name)
    for f in dataclasses.fields(TimeSformerConfig):  # config.json may say 0 where we keep 0.0
        if f.type == "float" and isinstance(values.get(f.name), int) and not isinstance(values[f.name], bool):
            values[f.name] = float(values[f.name])
    D, P = facts["embed_dim"][0], facts["patch_size"][0]
    if "num_heads" not in values:
        if D % 64:
            raise CheckpointError(f"{name}: the number of heads cannot be read from the weights, and embed_dim {D} is "
                                  "not a multiple of 64 (the usual head width): pass num_heads=...")
        values["num_heads"] = D // 64
    values.setdefault("layer_norm_eps", fmt.layer_norm_eps)
    values.setdefault("img_size", P * max(1, round(224 / P)))  # no position embedding: any crop runs
    try:
        config = TimeSformerConfig(**values)
    except ValueError as err:
        raise CheckpointError(f"{name}: {err}") from None
    if int(config.embed_dim * config.mlp_ratio) != state["blocks.0.mlp.fc1.weight"].shape[0]:
        raise CheckpointError(f"{name}: MLP width {state['blocks.0.mlp.fc1.weight'].shape[0]} is not "
                              f"int({D} * mlp_ratio) for any mlp_ratio tsf can represent")
    return config, facts


# --------------------------------------------------------------------------------------
# Fitting the weights to the configuration (pure: new dicts, inputs untouched)
# --------------------------------------------------------------------------------------


def inflate(state: dict[str, Tensor], config: TimeSformerConfig) -> dict[str, Tensor]:
    """The parameters an image ViT lacks, initialised the way the authors did: every extra
    step's attention and norm copied from the block's spatial ``attn`` and ``norm1``, every
    extra ``*_fc`` zero, the time embedding zero (or started as ``config.time_embed_init``
    asks). Returns only the new entries."""
    new: dict[str, Tensor] = {}
    D = config.embed_dim
    for key, value in state.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(attn|norm1)\.(.+)", key)
        if m is None:
            continue
        i, part, rest = m.groups()
        for step in SCHEMES[config.attention].extra_steps:
            new[f"blocks.{i}.{step.name}_{part}.{rest}"] = value.clone()
            new[f"blocks.{i}.{step.name}_fc.weight"] = value.new_zeros(D, D)
            new[f"blocks.{i}.{step.name}_fc.bias"] = value.new_zeros(D)
    if config.has_time_embed:
        new["time_embed"] = init_time_embed(state["cls_token"].new_empty(1, config.num_frames, D),
                                            config.time_embed_init, config.time_embed_init_std)
    return new


def new_head(num_classes: int, dim: int, like: Tensor) -> dict[str, Tensor]:
    """A freshly initialised head (trunc-normal std 0.02, zero bias), as ``TimeSformer.reset_classifier``."""
    weight = torch.empty(num_classes, dim)
    torch.nn.init.trunc_normal_(weight, std=0.02)
    return {"head.weight": weight.to(like.dtype), "head.bias": like.new_zeros(num_classes)}


def fit_state(state: dict[str, Tensor], facts: Facts, config: TimeSformerConfig,
              image: bool) -> tuple[dict[str, Tensor], list[str]]:
    """Inflate (image ViTs), resize the embeddings and replace the head to fit ``config``."""
    out = dict(state)
    notes: list[str] = []
    if image:
        out.update(inflate(state, config))
        notes.append(f"inflated the image ViT to {config.attention} attention (extra steps copied from the "
                     "spatial attention, *_fc zero, time embedding "
                     + (f"{config.time_embed_init} at {config.time_embed_init_std:g})"
                        if config.time_embed_init != "zeros" else "zero)"))
    if "pos_embed" in out:
        old, new = facts["img_size"][0] // config.patch_size, config.grid_size
        if not config.has_pos_embed:
            del out["pos_embed"]
            notes.append("dropped the position embedding (pos_embed='none')")
        elif old != new:
            mode = INFLATION_POS_MODE if image else config.resize_mode
            out["pos_embed"] = resize_pos_embed(out["pos_embed"], (old, old), (new, new), mode)
            notes.append(f"resized the position embedding from {old} x {old} to {new} x {new} patches ({mode})")
    if "time_embed" in state and state["time_embed"].shape[1] != config.num_frames:
        out["time_embed"] = resize_time_embed(state["time_embed"], config.num_frames, config.resize_mode)
        notes.append(f"resized the time embedding from {state['time_embed'].shape[1]} to {config.num_frames} "
                     f"frames ({config.resize_mode})")
    old_classes = facts["num_classes"][0]
    if config.num_classes != old_classes:
        out.pop("head.weight", None)
        out.pop("head.bias", None)
        if config.num_classes > 0:
            out.update(new_head(config.num_classes, config.embed_dim, out["cls_token"]))
        notes.append(f"replaced the {old_classes}-class head by a new {config.num_classes}-class one "
                     "(trunc-normal std 0.02)" if config.num_classes else f"removed the {old_classes}-class head")
    return out, notes


def summary(config: TimeSformerConfig) -> str:
    return (f"{config.attention}, {config.num_frames} frames x {config.img_size} px, {config.num_classes} classes, "
            f"{config.depth} x {config.embed_dim} with {config.num_heads} heads")


def check_state(state: dict[str, Tensor], config: TimeSformerConfig, name: str, fmt: Format) -> None:
    """Every key of ``TimeSformer(config)`` present with its shape, and no other key."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in TimeSformer(config).state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != expected[k]]
    problems = []
    if missing:
        listed = ", ".join(f"{k} {expected[k]}" for k in missing[:MAX_LISTED])
        problems.append(f"missing keys: {listed}" + (f" ... and {len(missing) - MAX_LISTED} more"
                                                     if len(missing) > MAX_LISTED else ""))
    if unexpected:
        problems.append(f"unexpected keys: {describe_keys(state, unexpected)}")
    if wrong:
        listed = ", ".join(f"{k} {tuple(state[k].shape)} (the model needs {expected[k]})" for k in wrong[:MAX_LISTED])
        problems.append(f"shapes that do not fit: {listed}")
    if problems:
        raise CheckpointError(f"{name} (read as {fmt.title}: {summary(config)}): " + "; ".join(problems))


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


def _check_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise TypeError(f"unknown override(s) {unknown}; overrides are TimeSformerConfig fields: {', '.join(FIELDS)}")
    out = dict(overrides)
    if "attention" in out:
        out["attention"] = canonical_attention(out["attention"])
    return out


def _owned(state: dict[str, Tensor], copy_all: bool) -> dict[str, Tensor]:
    """Tensors the model may own: detached, contiguous, sharing memory with nothing else
    (with the caller's tensors, when ``copy_all``, or with each other)."""
    out, seen = {}, set()
    for key, value in state.items():
        value = value.detach()
        ptr = value.untyped_storage().data_ptr()
        if copy_all or ptr in seen:
            value = value.clone()
        seen.add(ptr)
        out[key] = value.contiguous()
    return out


def adapt(source: Any, **overrides: Any) -> Adapted:
    """Read ``source`` (see :func:`load_pretrained`), recognise its format, rename its keys to
    ours, resolve the configuration and fit the weights to it. No model is built."""
    overrides = _check_overrides(overrides)
    raw = read_source(source)
    name = raw.name
    unwrapped = Unwrapped(raw, *unwrap(raw.obj, name), our_config(raw))
    fmt = detect_format(unwrapped)
    if fmt.note:
        logger.info("%s: %s", name, fmt.note)
    state, hints = fmt.to_tsf(unwrapped.state), fmt.hints(unwrapped)
    config, facts = resolve_config(state, fmt, hints, overrides, name)
    state, notes = fit_state(state, facts, config, image=fmt.image)
    check_state(state, config, name, fmt)
    logger.info("%s: %s -> %s", name, fmt.title, summary(config))
    for note in notes:
        logger.info("%s: %s", name, note)
    return Adapted(config, _owned(state, raw.in_memory), fmt.layout, name, tuple(notes))


def load_pretrained(source: Any, **overrides: Any) -> TimeSformer:
    """A :class:`TimeSformer` in eval mode with the weights of ``source``.

    ``source``: a file (``.pyth``, ``.pth``, ``.pt``, ``.bin``, ``.safetensors``), a folder
    (``config.json`` with ``model.safetensors`` or ``pytorch_model.bin``, sharded or not), an
    in-memory state dict, or a model (ours, or a Hugging Face one, whose config is read). Its
    format is recognised by its keys: the authors' checkpoints (``{epoch, model_state,
    optimizer_state, cfg}`` with ``model.``-prefixed keys, or a bare state dict; HR and L
    included), Hugging Face ``TimesformerForVideoClassification`` / ``TimesformerModel``,
    ours (:func:`save_pretrained`), or an image ViT (timm's ``vit_base_patch16_224`` names or
    Hugging Face's ``ViTForImageClassification`` / ``ViTModel``), which is inflated to the
    ``attention`` override (default divided) the way the authors did; its position embedding
    is resized to the target grid with 2-D bicubic interpolation (the authors' loader
    interpolates the flattened sequence with 1-D nearest instead).

    ``overrides`` are :class:`TimeSformerConfig` fields: ``num_heads`` (shapes cannot tell
    it; default ``embed_dim // 64``), ``layer_norm_eps`` (default: the source's, else 1e-6,
    or 1e-12 for a Hugging Face ViT), or another ``img_size`` / ``num_frames``, for which
    the embeddings of a video checkpoint are resized with the config's ``resize_mode``
    (default ``nearest``: the model then computes exactly what the original computes on
    inputs of that size); ``num_classes`` replaces the head. A mismatch that no override
    explains raises :class:`~tsf.weights.CheckpointError`.
    """
    adapted = adapt(source, **overrides)
    with torch.device("meta"):
        model = TimeSformer(adapted.config)
    model.load_state_dict(adapted.state, strict=True, assign=True)
    return model.eval()


def save_pretrained(model: TimeSformer, folder: str | Path) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (our config, a format marker and the tsf
    version) to ``folder``; :func:`load_pretrained` reads them back bit-exactly, dtype included.
    The safetensors metadata carries the config too, so the file alone also loads."""
    if not isinstance(model, TimeSformer):
        raise TypeError(f"save_pretrained takes a tsf.TimeSformer, got {type(model).__name__} "
                        "(for Hugging Face, use tsf.to_hf(model).save_pretrained(folder))")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config
    write_safetensors(model.state_dict(), folder / "model.safetensors",
                      {"format": "pt", "tsf_format": FORMAT_MARKER, "tsf_version": __version__,
                       "tsf_config": config.to_json()})
    write_json({"format": FORMAT_MARKER, "tsf_version": __version__, "config": config.to_dict()},
               folder / "config.json")
    return folder
