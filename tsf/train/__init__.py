"""Training and evaluation: ``fit(config)`` and ``evaluate(model, dataset)``.

See ``tsf.train.config`` for the configuration and its presets, ``tsf.train.engine`` for
the loop (checkpoints, exact resume, torchrun), ``tsf.train.evaluate`` for the protocol.
"""

from .config import DataConfig, OptimConfig, TrainConfig, apply_overrides, load_config, train_preset
from .engine import NonFiniteError, TrainResult, fit, lr_factor, pick_device
from .evaluate import evaluate

__all__ = ["DataConfig", "NonFiniteError", "OptimConfig", "TrainConfig", "TrainResult", "apply_overrides", "evaluate",
           "fit", "load_config", "lr_factor", "pick_device", "train_preset"]
