"""The paper's reference numbers (Bertasius et al., ICML 2021), as given in shared/PAPER.md.

Every figure and table of the study puts its reproduced number beside one of these.
"""

from __future__ import annotations

from ..attention import SCHEMES

# Table 1: attention schemes, ViT-B/16 8 x 224, 174 classes (params), top-1 accuracy. One row
# per scheme of the table in tsf.attention; a scheme the paper did not test has no numbers (None).
_TABLE1 = {
    "space": {"params_m": 85.9, "k400": 76.9, "ssv2": 36.6},
    "joint": {"params_m": 85.9, "k400": 77.4, "ssv2": 58.5},
    "divided": {"params_m": 121.4, "k400": 78.0, "ssv2": 59.5},
    "local_global": {"params_m": 121.4, "k400": 75.9, "ssv2": 56.3},
    "axial": {"params_m": 156.8, "k400": 73.5, "ssv2": 56.2},
}
TABLE1 = {name: _TABLE1.get(name, {"params_m": None, "k400": None, "ssv2": None}) for name in SCHEMES}
# The exact counts of the authors' code for the three schemes it implements.
TABLE1_EXACT_PARAMS = {"space": 85_932_462, "joint": 85_938_606, "divided": 121_392_558}

# Table 3: inference TFLOPs for 3 views (3 crops x 1 clip), divided attention; K400 top-1.
TABLE3 = {
    "base": {"frames": 8, "crop": 224, "tflops_3views": 0.59, "k400": 78.0},
    "hr": {"frames": 16, "crop": 448, "tflops_3views": 5.11, "k400": 79.7},
    "large": {"frames": 96, "crop": 224, "tflops_3views": 7.14, "k400": 80.7},
}

# Table 4: positional embedding ablation (divided), top-1 on K400 / SSv2.
TABLE4 = {
    "none": {"k400": 75.4, "ssv2": 45.8},
    "space": {"k400": 77.8, "ssv2": 52.5},
    "space_time": {"k400": 78.0, "ssv2": 59.5},
}

# Figure 3: Joint runs out of memory on a 32 GB GPU from 448 px (8 frames) and from 32 frames
# (224 px); Divided does not.
FIGURE3_CROPS = (224, 336, 448, 560)
FIGURE3_FRAMES = (8, 32, 64, 96)
FIGURE3_JOINT_OOM = {"crop": 448, "frames": 32, "gpu_memory_gb": 32}

# Which synthetic task stands in for which dataset.
TASK_FOR_DATASET = {"k400": "appearance", "ssv2": "motion"}
