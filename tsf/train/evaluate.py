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
             output: str | Path | None = None, keep_logits: bool = False) -> dict[str, Any]:
    """Top-1/top-5, loss, per-class accuracy and the confusion matrix; written as JSON to ``output``.

    ``keep_logits``: the result also holds ``logits`` (N, classes) and ``labels`` (N,), float32
    tensors on the CPU, in the dataset's order (not written to ``output``). Run it under an
    autocast context for another precision, as ``fit`` does.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    num_classes = model.config.num_classes
    # running sums on the device (read once, at the end: the loop never waits for a GPU)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.long, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top1, top5, view_correct = (torch.zeros((), dtype=torch.long, device=device) for _ in range(3))
    videos = views_seen = 0
    multi_view = False
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (logits, labels) per batch, if asked for
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    for item in tqdm(loader, desc="evaluate", disable=not progress, unit="batch"):
        clips, labels = item[0].to(device, non_blocking=True), item[1].to(device, non_blocking=True)
        if clips.ndim == 6:  # (B, V, C, T, H, W): every view of every video
            multi_view = True
            B, V = clips.shape[:2]
            view_logits = model(clips.flatten(0, 1)).float().view(B, V, -1)
            view_correct += (view_logits.argmax(-1) == labels[:, None]).sum()
            views_seen += B * V
            logits = view_logits.sum(1)  # the paper: logits summed over views
            loss = F.cross_entropy(view_logits.mean(1), labels, reduction="sum")
        else:
            logits = model(clips).float()
            loss = F.cross_entropy(logits, labels, reduction="sum")
        loss_sum += loss.double()
        top1 += topk_correct(logits, labels, 1).sum()
        top5 += topk_correct(logits, labels, 5).sum()
        videos += labels.numel()
        confusion += torch.bincount(labels * num_classes + logits.argmax(-1), minlength=num_classes * num_classes)
        if keep_logits:
            kept.append((logits, labels))
    model.train(was_training)
    if videos == 0:
        raise ValueError("evaluate: the dataset is empty")
    confusion = confusion.view(num_classes, num_classes).cpu()
    names = classes or getattr(dataset, "classes", None) or [str(i) for i in range(num_classes)]
    totals = confusion.sum(1)
    per_class = {names[i]: (confusion[i, i].item() / totals[i].item() if totals[i] else None)
                 for i in range(num_classes)}
    result: dict[str, Any] = {
        "videos": int(videos), "views_per_video": (views_seen // int(videos)) if multi_view else 1,
        "loss": loss_sum.item() / videos, "top1": top1.item() / videos, "top5": top5.item() / videos,
        "clip_top1": (view_correct.item() / views_seen) if multi_view else top1.item() / videos,
        "per_class": per_class, "confusion": confusion.tolist(), "classes": list(names),
    }
    if output is not None:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(result, indent=2))
    if keep_logits:
        result["logits"] = torch.cat([logits for logits, _ in kept]).cpu()
        result["labels"] = torch.cat([labels for _, labels in kept]).cpu()
    return result
