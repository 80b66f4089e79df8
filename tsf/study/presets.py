"""Study presets: one training budget shared by every scheme, at four sizes.

* ``smoke``: minutes for all notebooks; checks that everything runs, its numbers mean nothing.
* ``cpu``: the committed study, sized for 45 minutes on a 2-core machine (``make reproduce``;
  docs/study.md gives the measured time of the committed run).
* ``gpu``: the cpu recipe with more clips, epochs and seeds, sized for one H200 in 8 minutes;
* ``gpu-full``: a larger model on larger clips, for hours on a GPU.

``python -m tsf reproduce --preset NAME --dry-run`` prints what a preset trains and its cost
(:mod:`tsf.study.plan`).

Within a preset every scheme and ablation gets the same model size, data, epochs and
optimiser; nothing is tuned per scheme. The tasks differ only in their epochs: the motion
task is given more, as the authors train Something-Something-V2 with a recipe of its own.
How the cpu preset's design and recipe were chosen: ``tsf.study.calibration``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..config import TimeSformerConfig
from ..config import preset as model_preset
from ..train import OptimConfig, TrainConfig
from .runs import synthetic_data


@dataclass(frozen=True)
class StudyPreset:
    name: str
    model: str  # model preset (tsf.config.PRESETS)
    num_frames: int  # frames per clip of every scheme x task run (the model preset's are overridden)
    motion_design: str  # the motion task's design (tsf.data.synthetic.MOTION_DESIGNS)
    train_samples: int  # synthetic training clips
    val_samples: int  # synthetic held-out clips
    epochs: int  # on the appearance and long-range tasks
    motion_epochs: int  # on the motion task
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    seeds: tuple[int, ...]  # Table 1's accuracies are means over these
    ablation_seeds: tuple[int, ...]  # seeds of Table 4 and the clip-length study
    frames_sweep: tuple[int, ...]  # clip lengths for the long-range study
    source_frames: int  # frames of the underlying long-range videos
    data_sweep: tuple[int, ...]  # training-set sizes for the data-size study
    workers: int  # runs trained side by side (CPU), each with cores // workers threads
    time_batch: int  # batch for the measured time per clip
    time_repeats: int
    explain_clips: int  # held-out clips scored in the attention study
    pretrain_images: int  # still images for the ImageNet stand-in (0: every run trains from scratch)
    pretrain_epochs: int
    time_embed_init: str  # where the time embedding starts (TimeSformerConfig.time_embed_init; authors: zeros)
    time_embed_init_std: float  # its scale
    control_samples: int  # clips of the order control (tiny models, the ramp task)
    control_epochs: int
    curve_every: int  # optimiser steps between held-out scores of the learning-curve runs (0: none)
    verdicts: bool = True  # whether its numbers can confirm or refute a claim (smoke: they only check that all runs)
    device: str = "cpu"  # what it is sized for; a "cuda" preset refuses to start where no GPU is visible
    gpu_runs: int = 1  # on a GPU: runs trained side by side (each with its share of the cores making its clips)
    log_every: int = 1  # optimiser steps between logged steps (each log waits for the GPU)
    checkpoint_epochs: int = 1  # epochs between a run's end-of-epoch checkpoints (the last one always)

    def describe(self) -> str:
        """One line on what every run of the preset gets (the notebooks print it first)."""
        size = model_preset(self.model).img_size
        return (f"preset {self.name}: '{self.model}' model on {self.num_frames} frames of {size} px, "
                f"{self.train_samples} clips x {self.epochs} epochs per run (motion: {self.motion_epochs}), "
                f"seeds {self.seeds}, time embedding starting {self.time_embed_init} (RMS {self.time_embed_init_std:g})")

    @property
    def side_by_side(self) -> int:
        """Runs trained at a time where the preset is meant to run."""
        return self.gpu_runs if self.device == "cuda" else self.workers

    def check_device(self) -> None:
        """A preset sized for a GPU, where none is visible, is an error now rather than hours on the CPU."""
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"preset {self.name} is sized for a CUDA GPU and none is visible here "
                             "(torch.cuda.is_available() is False): on this CPU it would run for hours. Use "
                             f"--preset cpu, or `python -m tsf reproduce --preset {self.name} --dry-run` for its cost")

    def with_seed(self, seed: int) -> "StudyPreset":
        """The same preset with every seed shifted by ``seed`` (the notebooks' ``seed`` parameter)."""
        return replace(self, seeds=tuple(seed + s for s in self.seeds),
                       ablation_seeds=tuple(seed + s for s in self.ablation_seeds))

    def train_config(self, task: str, attention: str, seed: int, *, train_samples: int | None = None,
                     num_frames: int | None = None, pos_embed: str = "space_time", source_frames: int | None = None,
                     epochs: int | None = None, init: str = "", data_seed: int = 0,
                     time_embed_init: str | None = None, model: TimeSformerConfig | None = None,
                     val_samples: int | None = None, design: str | None = None) -> TrainConfig:
        """The one training recipe of the study, for a task, scheme and seed (``init``: weights to
        start from; ``time_embed_init``: another start than the preset's, as the authors' zeros;
        ``model``: another architecture than the preset's, as the order control's)."""
        if model is None:
            start = time_embed_init or self.time_embed_init
            overrides = {"attention": attention, "pos_embed": pos_embed, "num_frames": num_frames or self.num_frames,
                         "time_embed_init": start}
            if start != "zeros":  # the scale of zeros is moot: leave it at the default (the run's key with it)
                overrides["time_embed_init_std"] = self.time_embed_init_std
            model = model_preset(self.model, **overrides)
        data = synthetic_data(task, train_samples or self.train_samples,
                              self.val_samples if val_samples is None else val_samples, seed=data_seed,
                              source_frames=source_frames if task == "long_range" else None,
                              design=design or self.motion_design)
        optim = OptimConfig(optimizer="adamw", lr=self.lr, weight_decay=self.weight_decay,
                            warmup_epochs=self.warmup_epochs,
                            epochs=epochs or (self.motion_epochs if task == "motion" else self.epochs),
                            batch_size=self.batch_size, clip_grad=1.0, schedule="cosine")
        return TrainConfig(model=model, data=data, optim=optim, seed=seed, eval_every=0, log_every=self.log_every,
                           checkpoint_epochs=self.checkpoint_epochs, output_dir="", init=init)


STUDY_PRESETS: dict[str, StudyPreset] = {
    "smoke": StudyPreset(
        "smoke", model="tiny", num_frames=4, motion_design="coarse", train_samples=128, val_samples=64, epochs=2,
        motion_epochs=2, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=0.5, seeds=(0,),
        ablation_seeds=(0,), frames_sweep=(1, 2), source_frames=16, data_sweep=(64, 128), workers=1, time_batch=4,
        time_repeats=2, explain_clips=4, pretrain_images=256, pretrain_epochs=2, time_embed_init="sinusoidal",
        time_embed_init_std=1.0, control_samples=128, control_epochs=1, curve_every=4, verdicts=False),
    # The committed study. 4 frames of 32 px (a 4 x 4 grid of 8-px patches): half the cost of 8
    # frames, so the motion task gets 12 epochs within the budget; the time embedding starts as
    # the sinusoidal code (docs/study.md, "Departures"; figures/cpu/calibration.csv for the evidence).
    "cpu": StudyPreset(
        "cpu", model="small", num_frames=4, motion_design="coarse", train_samples=2048, val_samples=512, epochs=6,
        motion_epochs=12, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=1.0, seeds=(0, 1),
        ablation_seeds=(0,), frames_sweep=(1, 2, 4, 8), source_frames=32, data_sweep=(256, 512, 2048),
        workers=2, time_batch=16, time_repeats=10, explain_clips=64, pretrain_images=16384, pretrain_epochs=6,
        time_embed_init="sinusoidal", time_embed_init_std=1.0, control_samples=1024, control_epochs=5,
        curve_every=64),
    # One H200 in at most 8 minutes for all six notebooks (python -m tsf reproduce --preset gpu --dry-run:
    # 7m45s by its stated assumptions, about 1 PFLOP): the cpu recipe (its model, 4 frames of 32 px, the
    # coarse design, the sinusoidal start) with more clips, epochs and seeds, 2 ablation seeds and twice
    # the held-out clips, so every claim is checked with a clearer margin. The clips, made on the CPU
    # cores, bound the time, not the GPU's arithmetic (tsf.study.plan).
    "gpu": StudyPreset(
        "gpu", model="small", num_frames=4, motion_design="coarse", train_samples=2560, val_samples=1024, epochs=7,
        motion_epochs=14, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_epochs=1.0, seeds=(0, 1, 2),
        ablation_seeds=(0, 1), frames_sweep=(1, 2, 4, 8), source_frames=32, data_sweep=(320, 640, 1280, 2560),
        workers=1, time_batch=64, time_repeats=20, explain_clips=96, pretrain_images=20480, pretrain_epochs=6,
        time_embed_init="sinusoidal", time_embed_init_std=1.0, control_samples=1024, control_epochs=5,
        curve_every=160, device="cuda", gpu_runs=4, log_every=20, checkpoint_epochs=4),
    # The current large budget, for users with hours on a GPU (python -m tsf reproduce --preset gpu-full
    # --dry-run prints its estimate).
    "gpu-full": StudyPreset(
        "gpu-full", model="medium", num_frames=16, motion_design="coarse", train_samples=16384, val_samples=2048,
        epochs=20, motion_epochs=20, batch_size=64, lr=5e-4, weight_decay=0.05, warmup_epochs=2.0, seeds=(0, 1, 2),
        ablation_seeds=(0, 1, 2), frames_sweep=(4, 8, 16, 32), source_frames=128,
        data_sweep=(2048, 4096, 8192, 16384), workers=1, time_batch=64, time_repeats=20, explain_clips=256,
        pretrain_images=131072, pretrain_epochs=10, time_embed_init="sinusoidal", time_embed_init_std=1.0,
        control_samples=4096, control_epochs=5, curve_every=100, device="cuda", gpu_runs=4, log_every=20,
        checkpoint_epochs=5),
}


def study_preset(name: str) -> StudyPreset:
    if name not in STUDY_PRESETS:
        raise ValueError(f"unknown study preset {name!r}; choose one of {sorted(STUDY_PRESETS)}")
    return STUDY_PRESETS[name]
