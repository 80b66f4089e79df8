"""AttentionExplorer: an ipywidgets + plotly view of where a TimeSformer looks, and its HTML export.

``AttentionExplorer(model, clip)`` runs the model once and computes the maps of every view
(rollout, raw attention, gradient rollout) at every layer before it is shown; then every
control only swaps the data of the heat map: the frame slider (and the play button) picks a
frame of a ``(layers, T, H', W')`` stack, the layer slider picks a row of it. Changing the
head, the step, the class or the query patch computes one new stack (a few row-vector
pull-backs, see :mod:`tsf.explain`), cached.

Click a patch of the heat map to see where *that* patch attends across space and time (its
rollout row, or its raw attention at the chosen layer and step); "back to cls" returns to
the clip's cls.

What is drawn, the same in the widget and the page (:data:`LEGEND`):

* the colour is the map divided by its largest value in the clip at this layer (0 to 1),
  on a scale that runs from transparent to opaque yellow, so the frame stays readable where
  the map is low;
* the bars are the map's share in each frame (they sum to 1; the dashed line is what a
  uniform map gives, 1/T);
* where the object's mask is known (``mask=``, the study's clips), its outline;
* a note when the map is near uniform (its smallest value is at least :data:`NEAR_UNIFORM`
  of its largest): then every patch gets a colour from the top of the scale, and the
  differences it shows are small.

Frames are counted from 1 on screen (the slider, the bars, the status line, the page); the
Python API (``frame``, ``select_patch``, ``query``) indexes from 0.

In a notebook, the kernel answers the controls only between cells: while a later cell
runs, the explorer says so (a banner, cleared when the cell ends) instead of looking frozen.

``explorer.to_html(path)`` writes the same views as a standalone page (a title, a line
saying what the views mean, the legend): sliders for the frame and the layer, a menu for
the view, play and outline buttons; no kernel, no network. plotly.js is written once beside
the pages (``plotly.min.js``), not into each page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.subplots import make_subplots
from torch import Tensor, nn

from .. import explain
from .overlay import display_frames, mask_outline

log = logging.getLogger(__name__)

VIEWS: dict[str, str] = {"rollout": "rollout", "raw": "raw attention", "gradient": "gradient rollout"}
VIEWS_TEXT = ("<b>rollout</b>: where the cls token's information comes from, through blocks 1 to the layer; "
              "<b>raw attention</b>: one block's attention weights at one step; "
              "<b>gradient rollout</b>: the attention weighted by its gradient for a class (what speaks for it).")
LEGEND = ("<b>Colour</b>: the map divided by its largest value in the clip at this layer "
          "(transparent: 0, yellow: the largest). <b>Bars</b>: the map's share in each frame "
          "(they sum to 1; dashed: a uniform map).")
OUTLINE_TEXT = " <b>Outline</b>: the object that decides the class."
NEAR_UNIFORM = 0.5  # a map whose smallest value is at least this share of its largest is "near uniform"

# From transparent to opaque along inferno's hues: low values leave the frame visible.
# The top stays at 0.6 opacity, so even the largest value leaves the frame visible under it.
HEAT_SCALE = [[0.0, "rgba(0,0,4,0)"], [0.2, "rgba(60,15,110,0.08)"], [0.4, "rgba(150,38,103,0.25)"],
              [0.6, "rgba(221,81,58,0.4)"], [0.8, "rgba(250,155,7,0.52)"], [1.0, "rgba(252,255,164,0.6)"]]
_FRAME, _HEAT, _QUERY, _OUTLINE, _MASS = 0, 1, 2, 3, 4  # trace indices in the figure
_BAR, _BAR_NOW, _OUTLINE_COLOUR, _QUERY_COLOUR = "#8fa8c8", "#d62728", "#00e5ff", "#00e5ff"
_SIZE = 460  # px: the longer side of the frame


def _data_uri(frame: np.ndarray) -> str:
    """One frame ``(H, W, 3)`` in [0, 1] as a JPEG data URI (compact to send and to embed)."""
    img = Image.fromarray((np.clip(frame, 0.0, 1.0) * 255).round().astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _as_frames(frames, T: int) -> np.ndarray:
    f = frames.detach().cpu().numpy() if isinstance(frames, Tensor) else np.asarray(frames)
    if f.ndim != 4 or f.shape[0] != T or f.shape[-1] != 3:
        raise ValueError(f"frames must be (T={T}, H, W, 3), got shape {f.shape}")
    return f.astype(np.float64) / 255.0 if f.dtype == np.uint8 else f.astype(np.float64)


def scaled(stack: np.ndarray) -> np.ndarray:
    """A stack ``(layers, T, H', W')`` divided by each layer's maximum over the clip (what the colour shows)."""
    top = stack.max(axis=(1, 2, 3), keepdims=True)
    return np.divide(stack, top, out=np.zeros_like(stack), where=top > 0)


def frame_shares(stack: np.ndarray) -> np.ndarray:
    """The map's share in each frame, per layer: ``(layers, T)``, rows summing to 1 (what the bars show)."""
    mass = stack.sum(axis=(2, 3))
    total = mass.sum(axis=1, keepdims=True)
    return np.divide(mass, total, out=np.zeros_like(mass), where=total > 0)


def uniformity(maps: np.ndarray) -> float:
    """The smallest value of a map over the clip as a share of its largest (1: uniform; 0 for a zero map)."""
    top = float(maps.max())
    return float(maps.min()) / top if top > 0 else 0.0


def uniform_note(maps: np.ndarray) -> str:
    """The on-screen note for a near-uniform map (empty when it is not)."""
    u = uniformity(maps)
    if u < NEAR_UNIFORM:
        return ""
    return (f"Near-uniform map: every patch has between {u:.0%} and 100% of the largest value, so the "
            f"colours show small differences (an untrained model looks like this).")


def frame_label(t: int, T: int) -> str:
    """How a frame is named on screen: counted from 1."""
    return f"frame {t + 1} of {T}"


class AttentionExplorer:
    """Play through a clip's frames and layers with a heat map over each frame.

    ``model``: a :class:`tsf.TimeSformer`; ``clip``: one normalised clip ``(C, T, H, W)`` (or a
    batch of one). ``classes``: names for the class menu (default ``class i``). ``frames``:
    what to draw under the map, ``(T, H, W, 3)`` (uint8, or floats in [0, 1]; default: the
    clip with the normalisation undone). ``mask``: the object's mask ``(T, H, W)`` at the
    frames' resolution, drawn as an outline. ``head``: the initial head or fusion;
    ``discard_ratio`` as in :func:`tsf.explain.rollout`.
    """

    def __init__(self, model: nn.Module, clip: Tensor, *, classes: Sequence[str] | None = None,
                 frames=None, mask=None, head: explain.Head = "mean", discard_ratio: float = 0.0,
                 colorscale=None, cache_size: int = 32) -> None:
        video = clip.unsqueeze(0) if clip.ndim == 4 else clip
        if video.ndim != 5 or video.shape[0] != 1:
            raise ValueError(f"expected one clip (C, T, H, W), got shape {tuple(clip.shape)}")
        self.model = model
        self.video = video.detach()
        logits, self.maps = explain.attention_maps(model, self.video)
        self.probs = logits[0].softmax(-1).double().numpy()
        self.grid = self.maps[0][0].grid
        T, H, W = self.grid
        self.depth = len(self.maps)
        self.steps = [s.step for s in self.maps[0]]
        self.num_heads = self.maps[0][0].weights[0].shape[2]
        self.discard_ratio = discard_ratio
        pixels = display_frames(self.video) if frames is None else _as_frames(frames, T)
        if pixels.shape[1] % H or pixels.shape[2] % W:
            raise ValueError(f"frames of {pixels.shape[1]} x {pixels.shape[2]} pixels do not fit the "
                             f"{H} x {W} patch grid")
        self.patch_size = (pixels.shape[1] // H, pixels.shape[2] // W)
        self.images = [_data_uri(f) for f in pixels]
        self.outlines = None if mask is None else self._outlines(mask, pixels.shape[:3])
        K = self.probs.shape[0]
        self.classes = [f"class {i}" for i in range(K)] if classes is None else list(classes)
        if len(self.classes) != K:
            raise ValueError(f"{len(self.classes)} class names for a model with {K} classes")
        self.colorscale = HEAT_SCALE if colorscale is None else colorscale
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._relevance: dict[int, explain.AttentionMaps] = {}
        self.query: explain.Query | None = None
        self._build(head)
        for view in VIEWS:  # every view ready before the widget is shown: switching is instant
            self.stack(view)
        self._recompute()
        self._watch_kernel()

    @staticmethod
    def _outlines(mask, shape: tuple[int, int, int]) -> list[tuple[list, list]]:
        m = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
        if m.shape != tuple(shape):
            raise ValueError(f"mask must be (T, H, W) = {tuple(shape)} like the frames, got shape {m.shape}")
        return [mask_outline(f) for f in m.astype(bool)]

    # -- state ------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return self.view_buttons.value

    @property
    def frame(self) -> int:
        """The frame shown, counted from 0 (the slider counts from 1)."""
        return self.frame_slider.value - 1

    @property
    def layer(self) -> int:
        return self.layer_slider.value

    @property
    def head(self) -> explain.Head:
        return self.head_menu.value

    @property
    def target(self) -> int:
        return self.class_menu.value

    def set_target(self, target: int | str) -> None:
        """The class the gradient view explains: an index or a class name."""
        if isinstance(target, str) and not target.isdigit():
            if target not in self.classes:
                raise ValueError(f"unknown class {target!r}; the model's classes are {self.classes[:10]}"
                                 + (" ..." if len(self.classes) > 10 else ""))
            target = self.classes.index(target)
        index = int(target)
        if not 0 <= index < len(self.classes):
            raise ValueError(f"class index {index} is outside the model's {len(self.classes)} classes")
        self.class_menu.value = index

    def stack(self, view: str | None = None, *, head: explain.Head | None = None, step: str | None = None,
              target: int | None = None, query: explain.Query | None | str = "current") -> np.ndarray:
        """The maps of one view at every layer: ``(layers, T, H', W')``, computed once and cached.

        Defaults are the controls' current values. ``rollout``/``gradient``: entry ``k`` rolls
        out blocks ``0..k``; ``raw``: block ``k``'s attention at ``step``. The values are the
        maps themselves (:func:`scaled` gives what the colour shows).
        """
        view = self.view if view is None else view
        if view not in VIEWS:
            raise ValueError(f"view must be one of {list(VIEWS)}, got {view!r}")
        head = self.head if head is None else head
        step = (self.step_menu.value if step is None else step) if view == "raw" else None
        target = (self.target if target is None else target) if view == "gradient" else None
        query = self.query if query == "current" else query
        key = (view, head, step, target, query)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if view == "rollout":
            maps = explain.rollout_by_layer(self.maps, head=head, discard_ratio=self.discard_ratio, query=query)[:, 0]
        elif view == "raw":
            maps = torch.stack([explain.raw_attention(self.maps, b, step, head=head, query=query)[0]
                                for b in range(self.depth)])
        else:
            if target not in self._relevance:
                self._relevance[target] = explain.relevance_maps(self.model, self.video, target)[2]
            maps = explain.rollout_by_layer(self._relevance[target], head=head, query=query, rule="gradient")[:, 0]
        out = maps.double().numpy()
        self._cache[key] = out
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out

    def current_map(self) -> np.ndarray:
        """The map at the current layer and frame ``(H', W')``, as computed (not scaled)."""
        return self._stack[self.layer - 1, self.frame]

    def select_patch(self, query: explain.Query | None) -> None:
        """Show where patch ``(t, h, w)`` (counted from 0) attends; ``None``: back to the clip's cls."""
        if query is not None:
            explain.patch_index(query, self.grid)  # validates
            query = tuple(int(v) for v in query)
        self.query = query
        self.clear_button.disabled = query is None
        self._recompute()

    # -- widgets ----------------------------------------------------------------------

    def _build(self, head: explain.Head) -> None:
        T, H, W = self.grid
        ph, pw = self.patch_size
        self.play = widgets.Play(value=1, min=1, max=T, step=1, interval=300, description="play",
                                 layout=widgets.Layout(width="auto"))
        self.frame_slider = widgets.IntSlider(value=1, min=1, max=T, description="frame",
                                              continuous_update=True)
        widgets.jslink((self.play, "value"), (self.frame_slider, "value"))
        self.layer_slider = widgets.IntSlider(value=self.depth, min=1, max=self.depth, description="layer",
                                              continuous_update=True)
        self.view_buttons = widgets.ToggleButtons(options=[(label, key) for key, label in VIEWS.items()],
                                                  value="rollout", description="view",
                                                  style={"button_width": "130px"})
        heads = [("mean over heads", "mean"), ("max over heads", "max"), ("min over heads", "min")]
        heads += [(f"head {i}", i) for i in range(self.num_heads)]
        narrow = dict(description_width="40px")
        self.head_menu = widgets.Dropdown(options=heads, value=head, description="head", style=narrow,
                                          layout=widgets.Layout(width="200px"))
        self.step_menu = widgets.Dropdown(options=self.steps, value=self.steps[-1], description="step",
                                          disabled=True, style=narrow, layout=widgets.Layout(width="190px"))
        order = np.argsort(-self.probs)
        self.class_menu = widgets.Dropdown(
            options=[(f"{self.classes[i]} (p={self.probs[i]:.2f})", int(i)) for i in order],
            value=int(order[0]), description="class", disabled=True, style=narrow,
            layout=widgets.Layout(width="260px"))
        self.clear_button = widgets.Button(description="back to cls", disabled=True,
                                           tooltip="show the clip's cls instead of a clicked patch",
                                           layout=widgets.Layout(width="110px"))
        self.outline_box = widgets.Checkbox(value=True, description="object outline", indent=False,
                                            layout=widgets.Layout(width="auto",
                                                                  display=None if self.outlines else "none"))
        self.busy = widgets.HTML(layout=widgets.Layout(min_height="0px"))
        self.status = widgets.HTML()
        self.note = widgets.HTML()
        legend = LEGEND + (OUTLINE_TEXT if self.outlines else "")
        self.legend = widgets.HTML(f"<div style='font-size:12px;line-height:1.4;color:#444;max-width:{_SIZE + 160}px'>"
                                   f"{VIEWS_TEXT}<br>{legend}</div>")

        self.figure = go.FigureWidget(self._figure(np.zeros((H, W)), [0.0] * T, 0, self.query))
        self.figure.data[_HEAT].on_click(self._on_click)

        self.frame_slider.observe(lambda _: self._draw(full=False), "value")
        self.layer_slider.observe(lambda _: self._draw(full=True), "value")
        self.outline_box.observe(lambda _: self._draw(full=False), "value")
        for control in (self.view_buttons, self.head_menu, self.step_menu, self.class_menu):
            control.observe(lambda _: self._recompute(), "value")
        self.clear_button.on_click(lambda _: self.select_patch(None))
        self.widget = widgets.VBox([
            widgets.HBox([self.play, self.frame_slider, self.layer_slider]),
            widgets.HBox([self.view_buttons, self.outline_box]),
            widgets.HBox([self.head_menu, self.step_menu, self.class_menu, self.clear_button]),
            self.busy,
            self.figure,
            self.status,
            self.note,
            self.legend,
        ])

    def _figure(self, z, shares, t: int, query, *, colorbar_title: str = "÷ max") -> go.Figure:
        """The figure the widget and the page share: frame, heat map, query marker, outline, bars."""
        T, H, W = self.grid
        ph, pw = self.patch_size
        fig = make_subplots(rows=2, cols=1, row_heights=[0.8, 0.2], vertical_spacing=0.08)
        fig.add_trace(go.Image(source=self.images[t], name="frame", hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=z, x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph, zmin=0.0, zmax=1.0,
                                 colorscale=self.colorscale, name="map",
                                 colorbar=dict(len=0.75, y=0.62, thickness=12, tickvals=[0, 0.25, 0.5, 0.75, 1],
                                               ticktext=["0", "", "0.5", "", "1"], ticklabelposition="outside",
                                               title=dict(text=colorbar_title, side="right")),
                                 hovertemplate="row %{y:.0f}, column %{x:.0f} px<br>%{z:.3f} of the largest"
                                               "<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=self._marker(query)[0], y=self._marker(query)[1], mode="markers", name="query",
                                 hoverinfo="skip", marker=dict(symbol="square-open", size=14, color=_QUERY_COLOUR,
                                                               line=dict(width=3))), row=1, col=1)
        xs, ys = self.outlines[t] if self.outlines else ([], [])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="object", hoverinfo="skip", connectgaps=False,
                                 line=dict(color=_OUTLINE_COLOUR, width=2)), row=1, col=1)
        fig.add_trace(go.Bar(x=list(range(1, T + 1)), y=list(shares), name="share per frame",
                             marker_color=[_BAR_NOW if i == t else _BAR for i in range(T)],
                             hovertemplate="frame %{x}: %{y:.1%} of the map<extra></extra>"), row=2, col=1)
        fig.add_hline(y=1 / T, line=dict(color="#555", width=1, dash="dash"), row=2, col=1)
        # the frame fills its row exactly (so the bars line up under it): its row is 0.8 of the
        # plotting height less the 0.08 between the rows
        frame_h, frame_w = _SIZE * H / max(H, W), _SIZE * W / max(H, W)
        fig.update_layout(width=frame_w + 60 + 90, height=frame_h / (0.8 * 0.92) + 20 + 40,
                          margin=dict(l=60, r=90, t=20, b=40, autoexpand=False), showlegend=False,
                          clickmode="event", dragmode=False, plot_bgcolor="white")
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=1)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="frame", dtick=max(1, T // 12), range=[0.5, T + 0.5], row=2, col=1)
        fig.update_yaxes(title_text="share", tickformat=".0%", rangemode="tozero", row=2, col=1)
        return fig

    def _marker(self, query) -> tuple[list, list]:
        ph, pw = self.patch_size
        if query is None:
            return [], []
        return [query[2] * pw + (pw - 1) / 2], [query[1] * ph + (ph - 1) / 2]

    def _on_click(self, trace, points, state) -> None:
        if not points.xs:
            return  # the click was on another trace
        ph, pw = self.patch_size
        T, H, W = self.grid
        w = min(max(int(round((points.xs[0] - (pw - 1) / 2) / pw)), 0), W - 1)
        h = min(max(int(round((points.ys[0] - (ph - 1) / 2) / ph)), 0), H - 1)
        self.select_patch((self.frame, h, w))

    def _recompute(self) -> None:
        self.step_menu.disabled = self.view != "raw"
        self.class_menu.disabled = self.view != "gradient"
        previous = self.status.value
        self.status.value = "<i>computing the maps of this view ...</i>"
        self._stack = self.stack()
        self._scaled, self._shares = scaled(self._stack), frame_shares(self._stack)
        self.status.value = previous
        self._draw(full=True)

    def _draw(self, full: bool) -> None:
        t = self.frame
        k = self.layer - 1
        with self.figure.batch_update():
            self.figure.data[_HEAT].z = self._scaled[k, t]
            self.figure.data[_FRAME].source = self.images[t]
            bar = self.figure.data[_MASS]
            bar.marker.color = [_BAR_NOW if i == t else _BAR for i in range(self.grid[0])]
            outline = self.figure.data[_OUTLINE]
            xs, ys = self.outlines[t] if self.outlines and self.outline_box.value else ([], [])
            outline.x, outline.y = xs, ys
            if full:
                bar.y = self._shares[k]
                marker = self.figure.data[_QUERY]
                marker.x, marker.y = self._marker(self.query)
        self.status.value = self.describe()
        if full:
            note = uniform_note(self._stack[k])
            self.note.value = f"<div style='color:#a15c00;line-height:1.4'>{note}</div>" if note else ""

    def describe(self) -> str:
        """One line saying what the heat map shows."""
        head = f"{self.head} over heads" if isinstance(self.head, str) else f"head {self.head}"
        T = self.grid[0]
        who = "the clip's cls" if self.query is None else _patch_text(self.query)
        what = {"rollout": f"rollout of blocks 1..{self.layer}",
                "raw": f"raw attention of block {self.layer}, step {self.step_menu.value!r}",
                "gradient": f"gradient rollout of blocks 1..{self.layer} for "
                            f"{self.classes[self.target]!r}"}[self.view]
        pred = int(np.argmax(self.probs))
        return (f"<b>{what}</b>, {head}, from {who}; {frame_label(self.frame, T)} "
                f"(patch grid {self.grid[1]} x {self.grid[2]}). Prediction: {self.classes[pred]} "
                f"(p={self.probs[pred]:.2f}).")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- the kernel, busy with later cells ----------------------------------------------

    def _watch_kernel(self) -> None:
        """In IPython: show the busy banner while a later cell runs (the controls wait for the kernel)."""
        try:
            from IPython import get_ipython  # IPython is optional: present in a notebook
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
        me = weakref.ref(self)

        def before(*_):
            explorer = me()
            if explorer is None:
                return
            explorer.busy.value = ("<div class='tsf-busy' style='background:#fff4d6;padding:4px 8px;"
                                   "border-left:3px solid #e0a000'>The kernel is running a later cell: the "
                                   "controls answer when it finishes (what you move now is kept).</div>")

        def after(*_):
            explorer = me()
            if explorer is not None:
                explorer.busy.value = ""

        shell.events.register("pre_run_cell", before)
        shell.events.register("post_run_cell", after)
        self._kernel_hooks = (shell, before, after)

    def close(self) -> None:
        """Close the widget and stop watching the kernel."""
        hooks = getattr(self, "_kernel_hooks", None)
        if hooks is not None:
            shell, before, after = hooks
            shell.events.unregister("pre_run_cell", before)
            shell.events.unregister("post_run_cell", after)
            self._kernel_hooks = None
        self.widget.close()

    # -- standalone HTML --------------------------------------------------------------

    def to_html(self, path: str | Path, *, views: Sequence[str] = tuple(VIEWS), title: str | None = None) -> Path:
        """Write the views (at the current head, step, class and query) as one standalone page.

        The page has a title, a line saying what the views mean and the legend, a frame slider,
        a layer slider, a view menu, play and outline buttons; it needs neither a kernel nor a
        network: ``plotly.min.js`` is written once into the page's folder (kept if already
        there) and referenced, not inlined. The maps are stored as the colour shows them, divided
        by their layer's maximum over the clip (4 decimals). Returns the page's path.
        """
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"expected an .html path, got {str(path)!r}")
        views = list(views)
        for v in views:
            if v not in VIEWS:
                raise ValueError(f"view must be one of {list(VIEWS)}, got {v!r}")
        T, H, W = self.grid
        data = {"views": views, "labels": [VIEWS[v] for v in views], "depth": self.depth, "frames": T,
                "images": self.images, "maps": {}, "shares": {}, "notes": {},
                "outlines": self.outlines or []}
        for v in views:
            s = self.stack(v)
            data["maps"][v] = np.round(scaled(s), 4).tolist()
            data["shares"][v] = np.round(frame_shares(s), 4).tolist()
            data["notes"][v] = [uniform_note(s[k]) for k in range(self.depth)]
        last = self.depth - 1
        fig = self._figure(data["maps"][views[0]][last][0], data["shares"][views[0]][last], 0, self.query)
        fig.data[_HEAT].hovertemplate = "%{z:.3f} of the largest<extra></extra>"

        def slider(name: str, labels: list[str], active: int, y: float) -> dict:
            return dict(name=name, active=active, y=y, len=0.9, x=0.05, pad=dict(t=0, b=0),
                        currentvalue=dict(prefix=f"{name}: "),
                        steps=[dict(method="skip", label=lab, value=str(i)) for i, lab in enumerate(labels)])

        buttons = [dict(name="play", type="buttons", direction="left", x=1.0, y=1.02, xanchor="right",
                        yanchor="bottom", showactive=False, buttons=[dict(method="skip", label="play", args=[]),
                                                                     dict(method="skip", label="pause", args=[])])]
        if self.outlines:
            buttons.append(dict(name="outline", type="buttons", direction="left", x=0.55, y=1.02, xanchor="center",
                                yanchor="bottom", showactive=False,
                                buttons=[dict(method="skip", label="outline on/off", args=[])]))
        below = 230  # px under the bars: the two sliders
        paper = fig.layout.height - 20 - 40  # px of the plotting area: the widget's (30 px more on top for the menus)
        fig.update_layout(
            height=fig.layout.height + below + 30, margin=dict(l=60, r=90, t=50, b=40 + below, autoexpand=False),
            sliders=[slider("frame", [str(t + 1) for t in range(T)], 0, -70 / paper),
                     slider("layer", [str(k + 1) for k in range(self.depth)], last, -170 / paper)],
            updatemenus=[dict(name="view", type="dropdown", x=0.0, y=1.02, xanchor="left", yanchor="bottom",
                              active=0, showactive=True,
                              buttons=[dict(method="skip", label=lab, args=[]) for lab in data["labels"]])] + buttons)
        script = _PAGE_SCRIPT.replace("__DATA__", json.dumps(data, separators=(",", ":")).replace("</", "<\\/"))
        plot = fig.to_html(full_html=False, include_plotlyjs=False, include_mathjax=False, post_script=script,
                           config={"displayModeBar": False, "scrollZoom": False}, div_id="tsf-explorer")
        heading = title or self._page_title()
        legend = LEGEND + (OUTLINE_TEXT if self.outlines else "")
        page = _PAGE.format(title=html.escape(heading), heading=html.escape(heading), summary=self._summary(),
                            views=VIEWS_TEXT, legend=legend, plot=plot, width=int(fig.layout.width))
        path.parent.mkdir(parents=True, exist_ok=True)
        js = path.parent / "plotly.min.js"
        if not js.exists():
            from plotly.offline import get_plotlyjs  # plotly is optional (the notebooks extra)

            js.write_text(get_plotlyjs(), encoding="utf-8")
        path.write_text(page, encoding="utf-8")
        log.info("wrote %s (plotly.min.js beside it)", path)
        return path

    def _page_title(self) -> str:
        cfg = getattr(self.model, "config", None)
        scheme = f"{cfg.attention} attention, " if cfg is not None else ""
        return f"Where TimeSformer looks ({scheme}{self.depth} blocks)"

    def _summary(self) -> str:
        head = f"{self.head} over heads" if isinstance(self.head, str) else f"head {self.head}"
        who = "the clip's cls" if self.query is None else _patch_text(self.query)
        pred = int(np.argmax(self.probs))
        T, H, W = self.grid
        return html.escape(f"{T} frames, patch grid {H} x {W}; {head}, from {who}. Prediction: "
                           f"{self.classes[pred]} (p={self.probs[pred]:.2f}); the gradient view explains "
                           f"{self.classes[self.target]}.")


def _patch_text(query: explain.Query) -> str:
    t, h, w = query
    return f"the patch at frame {t + 1}, row {h + 1}, column {w + 1}"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<script src="plotly.min.js"></script>
<style>
body {{ font-family: sans-serif; margin: 16px; color: #222; }}
.tsf-text {{ max-width: {width}px; font-size: 13px; line-height: 1.4; margin: 4px 0; }}
h1 {{ font-size: 17px; margin: 0 0 6px 0; }}
#tsf-note {{ color: #a15c00; min-height: 1.4em; }}
</style>
</head>
<body>
<h1>{heading}</h1>
<p class="tsf-text">{summary}</p>
<p class="tsf-text">{views}</p>
{plot}
<p class="tsf-text" id="tsf-note"></p>
<p class="tsf-text">{legend}</p>
</body>
</html>
"""

# The page's controls: plotly draws the sliders and buttons (method "skip"); this script keeps
# the state (view, layer, frame, outline) and swaps the data. {plot_id} is plotly's div id.
_PAGE_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var D = __DATA__;
var S = {view: 0, layer: D.depth - 1, frame: 0, outline: D.outlines.length > 0, timer: null};
function tsfDraw() {
  var v = D.views[S.view];
  var colors = [];
  for (var t = 0; t < D.frames; t++) { colors.push(t === S.frame ? '#d62728' : '#8fa8c8'); }
  var line = S.outline ? D.outlines[S.frame] : [[], []];
  Plotly.restyle(gd, {z: [D.maps[v][S.layer][S.frame]]}, [1]);
  Plotly.restyle(gd, {source: [D.images[S.frame]]}, [0]);
  Plotly.restyle(gd, {x: [line[0]], y: [line[1]]}, [3]);
  Plotly.restyle(gd, {y: [D.shares[v][S.layer]], 'marker.color': [colors]}, [4]);
  var note = document.getElementById('tsf-note');  // below the plot: parsed after this script
  if (note) { note.textContent = D.notes[v][S.layer]; }
  gd.setAttribute('data-tsf-state', JSON.stringify({view: v, layer: S.layer + 1, frame: S.frame + 1,
                                                    outline: S.outline}));
}
gd.on('plotly_sliderchange', function (e) {
  var i = parseInt(e.step.value, 10);
  if (e.slider.name === 'frame') { S.frame = i; } else { S.layer = i; }
  tsfDraw();
});
gd.on('plotly_buttonclicked', function (e) {
  if (e.menu.name === 'view') { S.view = e.active; tsfDraw(); return; }
  if (e.menu.name === 'outline') { S.outline = !S.outline; tsfDraw(); return; }
  if (e.button.label === 'pause') { clearInterval(S.timer); S.timer = null; return; }
  if (S.timer === null) {
    S.timer = setInterval(function () {
      S.frame = (S.frame + 1) % D.frames;
      Plotly.relayout(gd, {'sliders[0].active': S.frame});
      tsfDraw();
    }, 300);
  }
});
tsfDraw();
if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', tsfDraw); }
"""
