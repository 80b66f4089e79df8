"""Scores of a study model on its held-out clips: top-1 and, where classes have mirror twins, pair accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ..data.synthetic import mirror_pairs
from ..model import TimeSformer
from ..train import TrainConfig, evaluate
from ..train.data import build_datasets
from ..train.engine import loader_workers, run_autocast
from ..weights import load_pretrained


def predict_logits(model: nn.Module, dataset: Dataset, config: TrainConfig, *,
                   batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` and labels ``(N,)`` of a single-view dataset, on the CPU: ``fit``'s
    evaluation, where the model is, in the run's precision (bf16 on a GPU) and, for clips still to
    be made, with the run's DataLoader workers."""
    device = next(model.parameters()).device
    workers = 0 if isinstance(dataset, TensorDataset) else loader_workers(config.data.num_workers, device)
    with run_autocast(config, device):
        scores = evaluate(model, dataset, batch_size=batch_size, device=device, num_workers=workers, progress=False,
                          keep_logits=True)
    return scores["logits"], scores["labels"]


def pair_accuracy(logits: torch.Tensor, labels: torch.Tensor, pairs: list[tuple[int, int]]) -> float:
    """How often the true class scores above its mirror twin (chance: 0.5).

    On the motion task a class and its twin differ only in the order of the frames, so a
    model blind to order cannot beat 0.5 here, whatever its overall accuracy.
    """
    twin = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    keep = torch.tensor([int(y) in twin for y in labels])
    if not keep.any():
        raise ValueError("no held-out clip belongs to a mirror pair")
    y = labels[keep]
    z = torch.tensor([twin[int(v)] for v in y])
    rows = logits[keep]
    return (rows.gather(1, y[:, None]) > rows.gather(1, z[:, None])).float().mean().item()


def scores_on(model: nn.Module, dataset: Dataset, config: TrainConfig) -> dict[str, Any]:
    """Top-1 (and chance) on ``dataset`` and, for a synthetic task whose classes have mirror
    twins (motion, ramp; not long_range, whose two classes make pair accuracy top-1), the pair accuracy."""
    logits, labels = predict_logits(model, dataset, config)
    scores: dict[str, Any] = {"val_acc": (logits.argmax(1) == labels).float().mean().item(),
                              "chance": 1.0 / logits.shape[1]}
    if config.data.kind == "synthetic" and config.data.task in ("motion", "ramp"):
        pairs = mirror_pairs(config.data.task)
        scores["pair_acc"] = pair_accuracy(logits, labels, pairs)
        if len(pairs) > 1:  # and of each pair on its own (which motions are read)
            scores["pair_acc_by_pair"] = [pair_accuracy(logits[(labels == a) | (labels == b)],
                                                        labels[(labels == a) | (labels == b)], [(a, b)])
                                          for a, b in pairs]
    return scores


def held_out_scores(model: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """:func:`scores_on` the whole held-out split of ``config``."""
    _, val = build_datasets(config)
    return {} if val is None else scores_on(model, val, config)


def cached_clips(dataset: Dataset, num: int) -> TensorDataset:
    """The first ``num`` items of a dataset held in memory (scored again and again by a curve)."""
    items = [dataset[i] for i in range(min(num, len(dataset)))]
    return TensorDataset(torch.stack([clip for clip, _ in items]), torch.tensor([label for _, label in items]))


def initial_model(config: TrainConfig, train: Dataset) -> TimeSformer:
    """The model a run starts from, built as ``tsf.train.fit`` builds it (same seed, same init)."""
    model_config = config.model
    classes = getattr(train, "num_classes", None)
    if classes is not None and classes != model_config.num_classes:
        model_config = model_config.replace(num_classes=classes)
    torch.manual_seed(config.seed)
    if config.init:
        return load_pretrained(config.init, **model_config.to_dict())
    return TimeSformer(model_config)
