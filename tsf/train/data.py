"""Datasets for a training config: the synthetic study tasks or real video (a row of ``tsf.data.DATASET_FORMATS``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from torch.utils.data import Dataset

from ..config import TimeSformerConfig
from ..data.datasets import VideoDataset, read_dataset
from ..data.synthetic import SyntheticVideos
from ..data.video import ClipSampling
from .checkpoint import read_classes
from .config import DataConfig, TrainConfig


def dataset_classes(dataset: Dataset) -> list[str] | None:
    classes = getattr(dataset, "classes", None)
    return [str(c) for c in classes] if classes is not None else None


def video_dataset(data: DataConfig, model: TimeSformerConfig, split: str, mode: str, *, seed: int = 0,
                  classes: list[str] | None = None, classes_from: str = "") -> Dataset:
    """A dataset of real videos (any format of ``DATASET_FORMATS``: ``data.kind``), sampled for ``model``.

    ``mode``: ``train`` (random clip, jitter, crop, flip), ``val`` (one centre view) or
    ``test`` (``data.test_clips`` temporal clips x 3 spatial crops per video). ``classes``:
    the classes the model was trained on (``classes_from``: where they came from); the split's
    labels are mapped through them.
    """
    source = data.train_annotations if split == "train" else data.val_annotations
    if not source:
        raise ValueError(f"data.{split}_annotations is empty: say where the {split} videos are listed")
    sampling = ClipSampling(num_frames=model.num_frames, sampling=data.sampling, sampling_rate=data.sampling_rate,
                            num_clips=data.test_clips if mode == "test" and data.sampling == "dense" else 1)
    crop = model.img_size
    samples, classes = read_dataset(source, data.kind, data.root or None, data.labels or None, classes=classes,
                                    classes_from=classes_from)
    return VideoDataset(samples, classes, mode=mode, sampling=sampling, crop_size=crop, flip=data.flip,
                        on_error=data.on_error, seed=seed, timeout=data.decode_timeout,
                        scale=(round(crop * 256 / 224), round(crop * 320 / 224)))  # the authors' jitter, at any crop


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training and held-out datasets that ``config.data`` describes."""
    d, m = config.data, config.model
    if d.kind == "synthetic":
        common = dict(num_frames=m.num_frames, size=m.img_size, seed=d.seed, source_frames=d.source_frames,
                      design=d.design)
        train = SyntheticVideos(d.task, d.train_samples, split="train", **common)
        val = (SyntheticVideos(d.task, d.val_samples, split="val", mirrored=d.mirrored_val, **common)
               if d.val_samples else None)
        return train, val
    train = video_dataset(d, m, "train", "train", seed=config.seed)
    val = video_dataset(d, m, "val", "val", seed=config.seed, classes=train.classes,  # the training classes' indices
                        classes_from=f"the training split {d.train_annotations}") if d.val_annotations else None
    return train, val


def run_config_for(checkpoint: str | Path) -> TrainConfig | None:
    """The training config of the run a checkpoint belongs to (``RUN/model`` or ``RUN/checkpoints/step-N``)."""
    checkpoint = Path(checkpoint)
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        path = folder / "config.json"
        if path.is_file():
            data = json.loads(path.read_text())
            if {"model", "data", "optim"} <= set(data):
                return TrainConfig.from_dict(data)
    return None


def held_out_dataset(checkpoint: str | Path, model: TimeSformerConfig, data: DataConfig | None = None, *,
                     test_clips: int = 1) -> Dataset:
    """What to evaluate a checkpoint on, every view of it (``mode="test"``): the held-out split of
    ``data`` if given, else that of the run the checkpoint belongs to (``test_clips`` per video)."""
    if data is None:
        run = run_config_for(checkpoint)
        if run is None:
            raise ValueError(f"{checkpoint}: not inside a training run; say which videos with --annotations")
        if run.data.kind == "synthetic":
            _, dataset = build_datasets(run)
            if dataset is None:
                raise ValueError("the run has no held-out split; give --annotations")
            return dataset
        data = dataclasses.replace(run.data, test_clips=test_clips)
    classes, origin = read_classes(checkpoint), f"the checkpoint {checkpoint}"
    if classes is None:  # no names saved: integer labels must still fit the model's head
        classes, origin = [str(k) for k in range(model.num_classes)], f"the {model.num_classes}-class model"
    return video_dataset(data, model, "val", "test", classes=classes, classes_from=origin)
