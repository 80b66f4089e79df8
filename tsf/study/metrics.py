"""Scores of a trained study model on its held-out clips."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.synthetic import mirror_pairs
from ..train import TrainConfig
from ..train.data import build_datasets


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: Dataset, *, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(N, classes)`` and labels ``(N,)`` of a single-view dataset."""
    model.eval()
    device = next(model.parameters()).device
    logits, labels = [], []
    for clips, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits.append(model(clips.to(device)).float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


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


def held_out_scores(model: nn.Module, config: TrainConfig) -> dict[str, Any]:
    """Top-1 on the held-out split and, for the motion task, the mirror-pair accuracy."""
    _, val = build_datasets(config)
    if val is None:
        return {}
    logits, labels = predict_logits(model, val)
    scores: dict[str, Any] = {"val_acc": (logits.argmax(1) == labels).float().mean().item(),
                              "chance": 1.0 / logits.shape[1]}
    if config.data.kind == "synthetic" and config.data.task == "motion":
        scores["pair_acc"] = pair_accuracy(logits, labels, mirror_pairs("motion"))
    return scores
