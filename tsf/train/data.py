"""Datasets for a training config: the synthetic study tasks or real video on decord."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..config import TimeSformerConfig
from .config import DataConfig, TrainConfig


def dataset_classes(dataset: Dataset) -> list[str] | None:
    classes = getattr(dataset, "classes", None)
    return [str(c) for c in classes] if classes is not None else None


def video_dataset(data: DataConfig, model: TimeSformerConfig, split: str, mode: str, *, seed: int = 0) -> Dataset:
    """A Kinetics-list, SSv2-JSON or folder dataset of real videos, sampled for ``model``.

    ``mode``: ``train`` (random clip, jitter, crop, flip), ``val`` (one centre view) or
    ``test`` (``data.test_clips`` temporal clips x 3 spatial crops per video).
    """
    from ..data import ClipSampling, FolderDataset, KineticsDataset, SSv2Dataset

    source = data.train_annotations if split == "train" else data.val_annotations
    if not source:
        raise ValueError(f"data.{split}_annotations is empty: say where the {split} videos are listed")
    sampling = ClipSampling(num_frames=model.num_frames, sampling=data.sampling, sampling_rate=data.sampling_rate,
                            num_clips=data.test_clips if mode == "test" and data.sampling == "dense" else 1)
    crop = model.img_size
    common = dict(mode=mode, sampling=sampling, crop_size=crop, flip=data.flip, on_error=data.on_error, seed=seed,
                  scale=(round(crop * 256 / 224), round(crop * 320 / 224)))  # the authors' jitter, at any crop
    root = data.root or None
    if data.kind == "kinetics":
        from .predict import read_label_file

        classes = read_label_file(data.labels) if data.labels else None
        return KineticsDataset(source, root, classes=classes, **common)
    if data.kind == "ssv2":
        return SSv2Dataset(source, data.labels or None, root, **common)
    return FolderDataset(Path(root or "") / source if root else source, **common)


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training and held-out datasets that ``config.data`` describes."""
    d, m = config.data, config.model
    if d.kind == "synthetic":
        from ..data.synthetic import SyntheticVideos

        common = dict(num_frames=m.num_frames, size=m.img_size, seed=d.seed, source_frames=d.source_frames,
                      design=d.design)
        train = SyntheticVideos(d.task, d.train_samples, split="train", **common)
        val = SyntheticVideos(d.task, d.val_samples, split="val", **common) if d.val_samples else None
        return train, val
    train = video_dataset(d, m, "train", "train", seed=config.seed)
    val = video_dataset(d, m, "val", "val", seed=config.seed) if d.val_annotations else None
    return train, val
