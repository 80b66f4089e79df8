"""Datasets for a training config: the synthetic study tasks or real video on decord."""

from __future__ import annotations

from torch.utils.data import Dataset

from .config import TrainConfig


def dataset_classes(dataset: Dataset) -> list[str] | None:
    classes = getattr(dataset, "classes", None)
    return [str(c) for c in classes] if classes is not None else None


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training and held-out datasets that ``config.data`` describes."""
    d, m = config.data, config.model
    if d.kind == "synthetic":
        from ..data.synthetic import SyntheticVideos

        common = dict(num_frames=m.num_frames, size=m.img_size, seed=d.seed, source_frames=d.source_frames)
        train = SyntheticVideos(d.task, d.train_samples, split="train", **common)
        val = SyntheticVideos(d.task, d.val_samples, split="val", **common) if d.val_samples else None
        return train, val
    raise NotImplementedError("real video datasets are wired once tsf.data lands")
