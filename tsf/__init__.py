"""tsf: a study and visualisation suite for TimeSformer (Bertasius et al., ICML 2021).

The public names; see each module for the details.
"""

from .config import PRESETS, TimeSformerConfig, preset
from .cost import count_macs, count_params, mac_breakdown
from .model import StepAttention, TimeSformer

__all__ = [
    "PRESETS",
    "StepAttention",
    "TimeSformer",
    "TimeSformerConfig",
    "count_macs",
    "count_params",
    "mac_breakdown",
    "preset",
]
__version__ = "0.1.0"
