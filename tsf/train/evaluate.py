"""Evaluation: clip accuracy and the paper's video-level protocol.

A dataset yields either ``(clip (C,T,H,W), label)`` (one view per video) or, in multi-view
test mode, ``(views (V,C,T,H,W), label, index)`` with V = k temporal clips x 3 spatial
crops. For multi-view data the video's prediction is the sum of its views' logits, as in the
paper (3 crops x 1 clip for Table 3); the per-view (clip) accuracy is reported beside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per sample: is the label among the k highest logits? (B,) bool."""
    k = min(k, logits.shape[-1])
    return (logits.topk(k, dim=-1).indices == labels[:, None]).any(-1)


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, *, batch_size: int = 16, device: str | torch.device | None = None,
             num_workers: int = 0, progress: bool = True, classes: list[str] | None = None,
             output: str | Path | None = None) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and the confusion matrix; written as JSON to ``output``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    num_classes = model.config.num_classes
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    loss_sum = top1 = top5 = videos = 0.0
    view_correct = views_seen = 0
    multi_view = False
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for item in tqdm(loader, desc="evaluate", disable=not progress, unit="batch"):
        clips, labels = item[0].to(device), item[1].to(device)
        if clips.ndim == 6:  # (B, V, C, T, H, W): every view of every video
            multi_view = True
            B, V = clips.shape[:2]
            view_logits = model(clips.flatten(0, 1)).float().view(B, V, -1)
            view_correct += (view_logits.argmax(-1) == labels[:, None]).sum().item()
            views_seen += B * V
            logits = view_logits.sum(1)  # the paper: logits summed over views
            loss = F.cross_entropy(view_logits.mean(1), labels, reduction="sum")
        else:
            logits = model(clips).float()
            loss = F.cross_entropy(logits, labels, reduction="sum")
        loss_sum += loss.item()
        top1 += topk_correct(logits, labels, 1).sum().item()
        top5 += topk_correct(logits, labels, 5).sum().item()
        videos += labels.numel()
        confusion += torch.bincount(labels.cpu() * num_classes + logits.argmax(-1).cpu(),
                                    minlength=num_classes * num_classes).view(num_classes, num_classes)
    model.train(was_training)
    if videos == 0:
        raise ValueError("evaluate: the dataset is empty")
    names = classes or getattr(dataset, "classes", None) or [str(i) for i in range(num_classes)]
    totals = confusion.sum(1)
    per_class = {names[i]: (confusion[i, i].item() / totals[i].item() if totals[i] else None)
                 for i in range(num_classes)}
    result: dict[str, Any] = {
        "videos": int(videos), "views_per_video": (views_seen // int(videos)) if multi_view else 1,
        "loss": loss_sum / videos, "top1": top1 / videos, "top5": top5 / videos,
        "clip_top1": (view_correct / views_seen) if multi_view else top1 / videos,
        "per_class": per_class, "confusion": confusion.tolist(), "classes": list(names),
    }
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result, indent=2))
    return result
