"""The ImageNet stand-in: an image model every study run starts from, as in the paper.

The paper initialises every scheme from an ImageNet ViT (the extra attention steps copied
from the spatial one, their output linears and the time embedding zero: see
``tsf.weights.inflate``). Trained from scratch on a few thousand clips, a small video
transformer learns which object decides an appearance class but not, within the study's CPU
budget, the order of the frames (``figures/cpu/calibration.json``). So the study does what
the paper does: it first trains a frame-wise ViT (Space attention on single frames) to
recognise the deciding objects of the *appearance* task in still images, from a data stream
of its own (seed 1, never the study's clips), and inflates it into each scheme.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file

from .presets import StudyPreset
from .runs import Runs

PRETRAIN_DATA_SEED = 1  # the still images come from another stream than the study's clips (seed 0)


def image_pretraining(study: StudyPreset):
    """The training config of the image model: Space attention on single frames, appearance classes."""
    # Space attention has no time embedding, so its start is moot: "zeros" keeps the run's key the same for every preset
    return study.train_config("appearance", "space", seed=0, num_frames=1, train_samples=study.pretrain_images,
                              epochs=study.pretrain_epochs, data_seed=PRETRAIN_DATA_SEED, time_embed_init="zeros")


def image_model(study: StudyPreset, runs: Runs, *, with_position: bool = True) -> str:
    """Path of the pretrained image ViT (head removed, so every run gets a fresh head), training
    it first if needed; ``with_position=False`` also drops the position embedding (Table 4)."""
    if study.pretrain_images == 0:
        return ""
    record = runs.get({"image-pretrain": image_pretraining(study)}, desc="image pretraining")["image-pretrain"]
    path = record.run_dir / ("vit.safetensors" if with_position else "vit_nopos.safetensors")
    if not path.is_file():
        state = load_file(record.run_dir / "model" / "model.safetensors")
        drop = ("head.",) if with_position else ("head.", "pos_embed")
        tmp = path.with_suffix(".tmp")
        save_file({k: v for k, v in state.items() if not k.startswith(drop)}, tmp)
        tmp.rename(path)
    return str(path)


def pretrained_score(study: StudyPreset, runs: Runs) -> dict:
    """The image model's held-out accuracy on still images (for the summary)."""
    if study.pretrain_images == 0:
        return {}
    record = runs.get({"image-pretrain": image_pretraining(study)}, desc="image pretraining")["image-pretrain"]
    return {"images": study.pretrain_images, "epochs": study.pretrain_epochs, "val_acc": record.scores["val_acc"],
            "path": str(Path(record.run_dir))}
