"""Seeing the maps of :mod:`tsf.explain`: static figures (matplotlib) and an explorer (plotly).

``overlay`` holds the pure colour helpers and the static figures; ``explorer`` the
``AttentionExplorer`` widget and its standalone HTML export. The explorer (ipywidgets,
plotly) is imported on first use, so the static figures need only matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .overlay import (
    colorize,
    display_frames,
    mask_outline,
    normalise_maps,
    overlay,
    plot_frame_strip,
    plot_layer_grid,
    plot_mask_scores,
    plot_timeline,
)

if TYPE_CHECKING:
    from .explorer import AttentionExplorer

__all__ = [
    "AttentionExplorer",
    "colorize",
    "display_frames",
    "mask_outline",
    "normalise_maps",
    "overlay",
    "plot_frame_strip",
    "plot_layer_grid",
    "plot_mask_scores",
    "plot_timeline",
]


def __getattr__(name: str) -> Any:
    if name == "AttentionExplorer":
        from .explorer import AttentionExplorer  # plotly and ipywidgets are optional: imported on first use

        return AttentionExplorer
    raise AttributeError(f"module 'tsf.viz' has no attribute {name!r}")
