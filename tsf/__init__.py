"""tsf: a study and visualisation suite for TimeSformer (Bertasius et al., ICML 2021).

The public names; see each module for the details.
"""

from .config import PRESETS, TimeSformerConfig, preset
from .cost import count_macs, count_params, mac_breakdown
from .model import StepAttention, TimeSformer
from .version import __version__
from .weights import load_pretrained, save_pretrained, to_hf

__all__ = [
    "PRESETS",
    "__version__",
    "StepAttention",
    "TimeSformer",
    "TimeSformerConfig",
    "count_macs",
    "count_params",
    "load_pretrained",
    "mac_breakdown",
    "preset",
    "save_pretrained",
    "to_hf",
]
