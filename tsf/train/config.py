"""Training configuration: frozen dataclasses for model, data and optimisation, and presets.

One configuration drives ``tsf.train.fit`` from a notebook and ``python -m tsf train``
from the shell. It is built from a preset, then a YAML file, then ``key=value`` overrides
with dotted keys (``model.attention=joint``, ``optim.lr=1e-3``, ``data.task=appearance``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import PRESETS as MODEL_PRESETS
from ..config import TimeSformerConfig
from ..config import preset as model_preset
from ..cpu_matmul import CPU_MATMUL
from ..data.datasets import DATASET_FORMATS, ON_ERROR

DATA_KINDS = ("synthetic", *DATASET_FORMATS)  # the synthetic study tasks, or real video in any dataset format


@dataclass(frozen=True)
class DataConfig:
    """Where clips come from and how they are sampled. Frames and crop come from the model."""

    kind: str = "synthetic"  # synthetic | kinetics (annotation file) | ssv2 (JSON) | folder (one per class)
    task: str = "motion"  # synthetic task: appearance | motion | long_range | ramp
    train_samples: int = 2048  # synthetic clips per epoch
    val_samples: int = 512  # synthetic held-out clips
    source_frames: int | None = None  # synthetic long_range: frames of the underlying video
    seed: int = 0  # synthetic data seed (independent of the training seed)
    design: str = "coarse"  # synthetic motion: how large and clear the motions are (tsf.data.synthetic.MOTION_DESIGNS)
    root: str = ""  # real data: folder the annotation paths are relative to
    train_annotations: str = ""  # kinetics: 'path label' lines; ssv2: JSON list; folder: the train folder
    val_annotations: str = ""  # the same for the held-out split
    labels: str = ""  # ssv2 labels JSON ({name: index}); optional class-name file otherwise
    sampling: str = "dense"  # dense (Kinetics) | segment (SSv2)
    sampling_rate: int = 32  # dense: frames between samples at 30 fps (authors: 32 for 8 frames)
    test_clips: int = 1  # temporal clips per video at test time (x 3 spatial crops)
    flip: bool = True  # random horizontal flip (off when left/right is the label, as in SSv2)
    on_error: str = "skip"  # bad videos: raise | skip (warn, count, substitute)
    num_workers: int = -1  # DataLoader workers; -1: none on a CPU, on CUDA every core but one (engine.loader_workers)
    decode_timeout: float = 60.0  # seconds before a file counts as hanging the decoder (bad input, like a crash)
    mirrored_val: bool = False  # synthetic: held-out clip 2k+1 is clip 2k reversed (order-blind scores exactly 50%)

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ValueError(f"data.kind must be one of {DATA_KINDS}, got {self.kind!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"data.on_error must be 'raise' or 'skip', got {self.on_error!r}")
        if not self.decode_timeout > 0:
            raise ValueError(f"data.decode_timeout must be positive (seconds), got {self.decode_timeout!r}")


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and its schedule. The default is AdamW with warm-up and cosine decay."""

    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3  # peak learning rate (after warm-up)
    weight_decay: float = 0.05  # not applied to biases, norms, cls/pos/time embeddings
    momentum: float = 0.9  # sgd
    nesterov: bool = True  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adamw
    schedule: str = "cosine"  # cosine (with linear warm-up) | step (x gamma at milestones)
    warmup_epochs: float = 1.0  # linear warm-up from 0, in epochs
    milestones: tuple[int, ...] = (11, 14)  # step schedule: epochs at which lr *= gamma
    gamma: float = 0.1
    epochs: int = 10
    batch_size: int = 32  # clips per step per process
    accum_steps: int = 1  # gradient accumulation: effective batch = batch_size * accum_steps * processes
    clip_grad: float | None = 1.0  # max gradient norm (None: off)
    label_smoothing: float = 0.0
    min_lr_ratio: float = 0.01  # cosine floor as a fraction of lr

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optim.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "step"):
            raise ValueError(f"optim.schedule must be 'cosine' or 'step', got {self.schedule!r}")
        if self.batch_size < 1 or self.accum_steps < 1 or self.epochs < 1:
            raise ValueError("optim.batch_size, optim.accum_steps and optim.epochs must be >= 1")
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "milestones", tuple(self.milestones))


@dataclass(frozen=True)
class TrainConfig:
    model: TimeSformerConfig = field(default_factory=lambda: model_preset("small"))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/train"  # run folder: metrics.jsonl, config.json, env.json, checkpoints/
    seed: int = 0  # initialisation, shuffling, augmentation and stochastic depth
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (bf16 autocast on CUDA, float32 on CPU) | bf16 | fp32
    cpu_matmul: str = "auto"  # auto (float32 CPU products on oneDNN where they stay float32: tsf.cpu_matmul) | default
    compile: bool = False  # torch.compile the model
    grad_checkpointing: bool = False  # recompute blocks in backward (long clips)
    init: str = ""  # weights to start from (any format tsf.load_pretrained reads); empty: random
    checkpoint_every: int = 0  # optimiser steps between checkpoints (0: only at epoch ends)
    checkpoint_epochs: int = 1  # epochs between end-of-epoch checkpoints (the last epoch's, and a stop's, always)
    keep_checkpoints: int = 2  # checkpoints kept on disk (the newest ones)
    eval_every: int = 1  # epochs between evaluations on the held-out split (0: only at the end)
    log_every: int = 1  # optimiser steps between lines in metrics.jsonl
    progress: bool = True  # tqdm bars
    stop_after_steps: int = 0  # stop (with a checkpoint) after this many optimiser steps; 0: run to the end

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.cpu_matmul not in CPU_MATMUL:
            raise ValueError(f"cpu_matmul must be one of {', '.join(CPU_MATMUL)}, got {self.cpu_matmul!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        data = dict(data)
        sections = {"model": TimeSformerConfig, "data": DataConfig, "optim": OptimConfig}
        kwargs: dict[str, Any] = {}
        for name, typ in sections.items():
            if name in data:
                kwargs[name] = _build(typ, data.pop(name), name)
        return _build(cls, {**data, **kwargs}, "train")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _build(typ: type, values: Any, where: str) -> Any:
    if isinstance(values, typ):
        return values
    if not isinstance(values, dict):
        raise ValueError(f"{where}: expected a mapping, got {values!r}")
    known = {f.name for f in dataclasses.fields(typ)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return typ(**values)


# -- presets --------------------------------------------------------------------------

def _authors() -> TrainConfig:
    """The authors' Kinetics recipe: ViT-B/16 8 x 224 from ImageNet, SGD + Nesterov, lr 0.005,
    x0.1 at epochs 11 and 14 of 15, weight decay 1e-4, effective batch 64 by accumulation."""
    return TrainConfig(
        model=model_preset("base"),
        data=DataConfig(kind="kinetics", sampling="dense", sampling_rate=32, flip=True, num_workers=8),
        optim=OptimConfig(optimizer="sgd", lr=0.005, weight_decay=1e-4, momentum=0.9, nesterov=True,
                          schedule="step", milestones=(11, 14), gamma=0.1, warmup_epochs=0.0, epochs=15,
                          batch_size=8, accum_steps=8, clip_grad=None),
        output_dir="runs/authors",
    )


def _scratch() -> TrainConfig:
    """The default for from-scratch studies: the small model, AdamW, warm-up + cosine."""
    return TrainConfig()


def _smoke() -> TrainConfig:
    """A few seconds: a tiny model, a few steps; for tests and a first look."""
    return TrainConfig(
        model=model_preset("tiny", num_frames=4, img_size=16, patch_size=4),
        data=DataConfig(train_samples=64, val_samples=32),
        optim=OptimConfig(epochs=2, batch_size=16, warmup_epochs=0.5),
        output_dir="runs/smoke",
    )


TRAIN_PRESETS = {"authors": _authors, "scratch": _scratch, "smoke": _smoke}


def train_preset(name: str) -> TrainConfig:
    if name not in TRAIN_PRESETS:
        raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
    return TRAIN_PRESETS[name]()


def apply_overrides(config: TrainConfig, overrides: dict[str, Any] | list[str]) -> TrainConfig:
    """Set dotted keys: ``{"optim.lr": 1e-3}`` or ``["optim.lr=1e-3"]`` (values parsed as YAML).

    ``model.preset=NAME`` swaps in a model preset (other ``model.*`` keys still apply).
    """
    if isinstance(overrides, list):
        pairs: dict[str, Any] = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not key=value")
            key, value = item.split("=", 1)
            pairs[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        overrides = pairs
    data = config.to_dict()
    if "model.preset" in overrides:
        name = overrides["model.preset"]
        if name not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
        keep = {"attention": data["model"]["attention"], "num_classes": data["model"]["num_classes"]}
        data["model"] = {**model_preset(name, **keep).to_dict()}
    for key, value in overrides.items():
        if key == "model.preset":
            continue
        *path, leaf = key.split(".")
        node = data
        for part in path:
            if part not in node or not isinstance(node[part], dict):
                raise ValueError(f"unknown config key {key!r}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown config key {key!r}")
        node[leaf] = _coerce(node[leaf], value, key)
    return TrainConfig.from_dict(data)


def _coerce(old: Any, new: Any, key: str) -> Any:
    """Give ``new`` the type of the field's current value (YAML reads ``3e-4`` as a string);
    ``null`` sets ``None``, and a field that is ``None`` now reads a string value as YAML."""
    if isinstance(new, str) and not isinstance(old, str):
        parsed = yaml.safe_load(new) if new.strip() else None
        if parsed is None or old is None:  # "null" turns a setting off; a None field takes any value
            return parsed
    try:
        if isinstance(old, bool):
            if isinstance(new, str) and new.lower() in ("true", "false", "yes", "no", "1", "0"):
                return new.lower() in ("true", "yes", "1")
            return bool(new) if isinstance(new, (bool, int)) else _fail(key, new, "a boolean")
        if isinstance(old, int) and not isinstance(new, bool) and isinstance(new, (int, float, str)):
            return int(float(new)) if float(new).is_integer() else _fail(key, new, "an integer")
        if isinstance(old, float) and isinstance(new, (int, float, str)) and not isinstance(new, bool):
            return float(new)
    except ValueError:
        _fail(key, new, f"a {type(old).__name__}")
    return new


def _fail(key: str, value: Any, what: str) -> Any:
    raise ValueError(f"{key}: expected {what}, got {value!r}")


def load_config(preset_name: str = "scratch", yaml_file: str | Path | None = None,
                overrides: dict[str, Any] | list[str] | None = None) -> TrainConfig:
    """Preset, then a YAML file (nested like the dataclasses), then dotted overrides."""
    config = train_preset(preset_name)
    if yaml_file:
        path = Path(yaml_file)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ValueError(f"cannot read training config {path}: {err}") from err
        if not isinstance(values, dict):
            raise ValueError(f"training config {path} must be a mapping, got {type(values).__name__}")
        flat: dict[str, Any] = {}
        for key, value in values.items():  # sections become dotted keys: optim: {lr: ..} -> optim.lr
            if key in ("model", "data", "optim") and isinstance(value, dict):
                flat.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                flat[key] = value
        config = apply_overrides(config, flat)
    if overrides:
        config = apply_overrides(config, overrides)
    return config
