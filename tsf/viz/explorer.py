"""AttentionExplorer: an ipywidgets + plotly view of where a TimeSformer looks, and its HTML export.

``AttentionExplorer(model, clip)`` runs the model once, then every control only swaps the
data of the heat map: the frame slider (and the play button) picks a frame of a precomputed
``(layers, T, H', W')`` stack; the layer slider picks a row of it. Changing the view
(rollout, raw attention, gradient rollout), the head, the step, the class or the query
patch computes one new stack (a few row-vector pull-backs, see :mod:`tsf.explain`), cached.

Click a patch of the heat map to see where *that* patch attends across space and time (its
rollout row, or its raw attention at the chosen layer and step); "back to cls" returns to
the clip's cls.

``explorer.to_html(path)`` writes the same views as a standalone page: plotly sliders for
the frame and the layer, a menu for the view, a play button; no kernel, no network.
plotly.js is written once beside the pages (``plotly.min.js``), not into each page.
"""

from __future__ import annotations

import base64
import io
import json
import logging
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
from .overlay import display_frames

log = logging.getLogger(__name__)

VIEWS: dict[str, str] = {"rollout": "rollout", "raw": "raw attention", "gradient": "gradient rollout"}
_FRAME, _HEAT, _QUERY, _MASS = 0, 1, 2, 3  # trace indices in the figure
_BAR, _BAR_NOW = "#8fa8c8", "#d62728"


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


class AttentionExplorer:
    """Play through a clip's frames and layers with a heat map over each frame.

    ``model``: a :class:`tsf.TimeSformer`; ``clip``: one normalised clip ``(C, T, H, W)`` (or a
    batch of one). ``classes``: names for the class menu (default ``class i``). ``frames``:
    what to draw under the map, ``(T, H, W, 3)`` (uint8, or floats in [0, 1]; default: the
    clip with the normalisation undone). ``head``: the initial head or fusion;
    ``discard_ratio`` as in :func:`tsf.explain.rollout`.
    """

    def __init__(self, model: nn.Module, clip: Tensor, *, classes: Sequence[str] | None = None,
                 frames=None, head: explain.Head = "mean", discard_ratio: float = 0.0,
                 colorscale: str = "Inferno", opacity: float = 0.6, cache_size: int = 32) -> None:
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
        K = self.probs.shape[0]
        self.classes = [f"class {i}" for i in range(K)] if classes is None else list(classes)
        if len(self.classes) != K:
            raise ValueError(f"{len(self.classes)} class names for a model with {K} classes")
        self.colorscale, self.opacity = colorscale, opacity
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._relevance: dict[int, explain.AttentionMaps] = {}
        self.query: explain.Query | None = None
        self._build(head)
        self._recompute()

    # -- state ------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return self.view_buttons.value

    @property
    def frame(self) -> int:
        return self.frame_slider.value

    @property
    def layer(self) -> int:
        return self.layer_slider.value

    @property
    def head(self) -> explain.Head:
        return self.head_menu.value

    @property
    def target(self) -> int:
        return self.class_menu.value

    def stack(self, view: str | None = None, *, head: explain.Head | None = None, step: str | None = None,
              target: int | None = None, query: explain.Query | None | str = "current") -> np.ndarray:
        """The maps of one view at every layer: ``(layers, T, H', W')``, computed once and cached.

        Defaults are the controls' current values. ``rollout``/``gradient``: entry ``k`` rolls
        out blocks ``0..k``; ``raw``: block ``k``'s attention at ``step``.
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
        """What the heat map shows now: ``(H', W')``."""
        return self._stack[self.layer - 1, self.frame]

    def select_patch(self, query: explain.Query | None) -> None:
        """Show where patch ``(t, h, w)`` attends (``None``: back to the clip's cls)."""
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
        self.play = widgets.Play(value=0, min=0, max=T - 1, step=1, interval=250, description="play",
                                 layout=widgets.Layout(width="auto"))
        self.frame_slider = widgets.IntSlider(value=0, min=0, max=T - 1, description="frame",
                                              continuous_update=True)
        widgets.jslink((self.play, "value"), (self.frame_slider, "value"))
        self.layer_slider = widgets.IntSlider(value=self.depth, min=1, max=self.depth, description="layer",
                                              continuous_update=True)
        self.view_buttons = widgets.ToggleButtons(options=[(label, key) for key, label in VIEWS.items()],
                                                  value="rollout", description="view")
        heads = [("mean over heads", "mean"), ("max over heads", "max"), ("min over heads", "min")]
        heads += [(f"head {i}", i) for i in range(self.num_heads)]
        self.head_menu = widgets.Dropdown(options=heads, value=head, description="head")
        self.step_menu = widgets.Dropdown(options=self.steps, value=self.steps[-1], description="step",
                                          disabled=True)
        order = np.argsort(-self.probs)
        self.class_menu = widgets.Dropdown(
            options=[(f"{self.classes[i]} (p={self.probs[i]:.2f})", int(i)) for i in order],
            value=int(order[0]), description="class", disabled=True)
        self.clear_button = widgets.Button(description="back to cls", disabled=True,
                                           tooltip="show the clip's cls instead of a clicked patch")
        self.status = widgets.HTML()

        fig = make_subplots(rows=2, cols=1, row_heights=[0.8, 0.2], vertical_spacing=0.08)
        fig.add_trace(go.Image(source=self.images[0], name="frame", hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=np.zeros((H, W)), x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph,
                                 zmin=0.0, zmax=1.0, colorscale=self.colorscale, opacity=self.opacity,
                                 colorbar=dict(len=0.75, y=0.62, thickness=12), name="map",
                                 hovertemplate="h=%{y}, w=%{x} px<br>%{z:.4g}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="query", hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=14, color="#00e5ff",
                                             line=dict(width=3))), row=1, col=1)
        fig.add_trace(go.Bar(x=list(range(T)), y=[0.0] * T, name="mass per frame",
                             marker_color=[_BAR] * T, hovertemplate="frame %{x}: %{y:.4g}<extra></extra>"),
                      row=2, col=1)
        size = 460
        fig.update_layout(width=size * W / max(H, W) + 120, height=size * H / max(H, W) / 0.8 + 80,
                          margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                          clickmode="event", dragmode=False)
        fig.update_xaxes(showticklabels=False, row=1, col=1)
        fig.update_yaxes(showticklabels=False, scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="frame", dtick=max(1, T // 12), row=2, col=1)
        fig.update_yaxes(title_text="mass", row=2, col=1)
        self.figure = go.FigureWidget(fig)
        self.figure.data[_HEAT].on_click(self._on_click)

        self.frame_slider.observe(lambda _: self._draw(full=False), "value")
        self.layer_slider.observe(lambda _: self._draw(full=True), "value")
        for control in (self.view_buttons, self.head_menu, self.step_menu, self.class_menu):
            control.observe(lambda _: self._recompute(), "value")
        self.clear_button.on_click(lambda _: self.select_patch(None))
        self.widget = widgets.VBox([
            widgets.HBox([self.play, self.frame_slider, self.layer_slider]),
            self.view_buttons,
            widgets.HBox([self.head_menu, self.step_menu, self.class_menu, self.clear_button]),
            self.figure,
            self.status,
        ])

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
        self._stack = self.stack()
        self._draw(full=True)

    def _draw(self, full: bool) -> None:
        t = self.frame
        layer = self._stack[self.layer - 1]  # (T, H', W')
        ph, pw = self.patch_size
        with self.figure.batch_update():
            heat = self.figure.data[_HEAT]
            heat.z = layer[t]
            self.figure.data[_FRAME].source = self.images[t]
            bar = self.figure.data[_MASS]
            bar.marker.color = [_BAR_NOW if i == t else _BAR for i in range(layer.shape[0])]
            if full:
                heat.zmax = float(layer.max()) or 1.0
                bar.y = layer.sum(axis=(1, 2))
                q = self.query
                marker = self.figure.data[_QUERY]
                marker.x = [] if q is None else [q[2] * pw + (pw - 1) / 2]
                marker.y = [] if q is None else [q[1] * ph + (ph - 1) / 2]
        self.status.value = self.describe()

    def describe(self) -> str:
        """One line saying what the heat map shows."""
        head = self.head if isinstance(self.head, str) else f"head {self.head}"
        head = f"{head} over heads" if isinstance(self.head, str) else head
        who = "the clip's cls" if self.query is None else "patch (t, h, w) = {}".format(self.query)
        what = {"rollout": f"rollout of blocks 1..{self.layer}",
                "raw": f"raw attention of block {self.layer}, step {self.step_menu.value!r}",
                "gradient": f"gradient rollout of blocks 1..{self.layer} for "
                            f"{self.classes[self.target]!r}"}[self.view]
        pred = int(np.argmax(self.probs))
        return (f"<b>{what}</b>, {head}, from {who}; frame {self.frame + 1}/{self.grid[0]} "
                f"(patch grid {self.grid[1]} x {self.grid[2]}). Prediction: {self.classes[pred]} "
                f"(p={self.probs[pred]:.2f}).")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- standalone HTML --------------------------------------------------------------

    def to_html(self, path: str | Path, *, views: Sequence[str] = tuple(VIEWS), title: str | None = None) -> Path:
        """Write the views (at the current head, step, class and query) as one standalone page.

        The page has a frame slider, a layer slider, a view menu and a play button, and needs
        neither a kernel nor a network: ``plotly.min.js`` is written once into the page's
        folder (kept if already there) and referenced, not inlined. The maps are stored scaled
        to their layer's maximum over the clip (4 decimals). Returns the page's path.
        """
        path = Path(path)
        if path.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"expected an .html path, got {str(path)!r}")
        views = list(views)
        for v in views:
            if v not in VIEWS:
                raise ValueError(f"view must be one of {list(VIEWS)}, got {v!r}")
        T, H, W = self.grid
        ph, pw = self.patch_size
        data = {"views": views, "labels": [VIEWS[v] for v in views], "depth": self.depth, "frames": T,
                "images": self.images, "maps": {}, "mass": {},
                "title": title or self._page_title()}
        for v in views:
            s = self.stack(v)
            top = s.max(axis=(1, 2, 3), keepdims=True)
            scaled = np.divide(s, top, out=np.zeros_like(s), where=top > 0)
            data["maps"][v] = np.round(scaled, 4).tolist()
            data["mass"][v] = np.round(scaled.sum(axis=(2, 3)), 4).tolist()
        start = data["maps"][views[0]][self.depth - 1][0]
        fig = make_subplots(rows=2, cols=1, row_heights=[0.8, 0.2], vertical_spacing=0.1)
        fig.add_trace(go.Image(source=self.images[0], hoverinfo="skip"), row=1, col=1)
        fig.add_trace(go.Heatmap(z=start, x0=(pw - 1) / 2, dx=pw, y0=(ph - 1) / 2, dy=ph, zmin=0.0, zmax=1.0,
                                 colorscale=self.colorscale, opacity=self.opacity,
                                 colorbar=dict(len=0.7, y=0.62, thickness=12, title=dict(text="x max")),
                                 hovertemplate="%{z:.3f} of the layer's max<extra></extra>"), row=1, col=1)
        q = self.query
        fig.add_trace(go.Scatter(x=[] if q is None else [q[2] * pw + (pw - 1) / 2],
                                 y=[] if q is None else [q[1] * ph + (ph - 1) / 2], mode="markers",
                                 hoverinfo="skip", marker=dict(symbol="square-open", size=14, color="#00e5ff",
                                                               line=dict(width=3))), row=1, col=1)
        fig.add_trace(go.Bar(x=list(range(T)), y=data["mass"][views[0]][self.depth - 1],
                             marker_color=[_BAR_NOW] + [_BAR] * (T - 1),
                             hovertemplate="frame %{x}: %{y:.3f}<extra></extra>"), row=2, col=1)

        def slider(name: str, labels: list[str], active: int, y: float) -> dict:
            return dict(name=name, active=active, y=y, len=0.9, x=0.05, pad=dict(t=0, b=0),
                        currentvalue=dict(prefix=f"{name}: "),
                        steps=[dict(method="skip", label=lab, value=str(i)) for i, lab in enumerate(labels)])

        size = 460
        fig.update_layout(
            title=dict(text=data["title"], font=dict(size=13), x=0.02, xanchor="left", y=0.985,
                       yanchor="top", yref="container"),
            width=size * W / max(H, W) + 140, height=size * H / max(H, W) / 0.8 + 330,
            margin=dict(l=20, r=20, t=130, b=170), showlegend=False, dragmode=False,
            sliders=[slider("frame", [str(t) for t in range(T)], 0, -0.12),
                     slider("layer", [str(k + 1) for k in range(self.depth)], self.depth - 1, -0.32)],
            updatemenus=[
                dict(name="view", type="dropdown", x=0.0, y=1.03, xanchor="left", yanchor="bottom", active=0,
                     showactive=True,
                     buttons=[dict(method="skip", label=lab, args=[]) for lab in data["labels"]]),
                dict(name="play", type="buttons", direction="left", x=1.0, y=1.03, xanchor="right",
                     yanchor="bottom",
                     showactive=False, buttons=[dict(method="skip", label="play", args=[]),
                                                dict(method="skip", label="pause", args=[])]),
            ])
        fig.update_xaxes(showticklabels=False, row=1, col=1)
        fig.update_yaxes(showticklabels=False, scaleanchor="x", row=1, col=1)
        fig.update_xaxes(title_text="frame", dtick=max(1, T // 12), row=2, col=1)
        fig.update_yaxes(title_text="mass", row=2, col=1)
        script = _PAGE_SCRIPT.replace("__DATA__", json.dumps(data, separators=(",", ":")).replace("</", "<\\/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.write_html(path, include_plotlyjs="directory", include_mathjax=False, full_html=True,
                       post_script=script, config={"displayModeBar": False, "scrollZoom": False})
        log.info("wrote %s (plotly.min.js beside it)", path)
        return path

    def _page_title(self) -> str:
        cfg = getattr(self.model, "config", None)
        scheme = f"{cfg.attention} attention, " if cfg is not None else ""
        head = self.head if isinstance(self.head, str) else f"head {self.head}"
        who = "the clip's cls" if self.query is None else f"patch (t, h, w) = {self.query}"
        pred = int(np.argmax(self.probs))
        return (f"TimeSformer ({scheme}{self.depth} blocks), {head} over heads, from {who}<br>"
                f"<sub>prediction: {self.classes[pred]} (p={self.probs[pred]:.2f}); gradient view: "
                f"{self.classes[self.target]}</sub>")


# The page's controls: plotly draws the sliders and menus (method "skip"); this script keeps
# the state (view, layer, frame) and swaps the heat map's data. {plot_id} is plotly's div id.
_PAGE_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var D = __DATA__;
var S = {view: 0, layer: D.depth - 1, frame: 0, timer: null};
function tsfDraw() {
  var v = D.views[S.view];
  var colors = [];
  for (var t = 0; t < D.frames; t++) { colors.push(t === S.frame ? '#d62728' : '#8fa8c8'); }
  Plotly.restyle(gd, {z: [D.maps[v][S.layer][S.frame]]}, [1]);
  Plotly.restyle(gd, {source: [D.images[S.frame]]}, [0]);
  Plotly.restyle(gd, {y: [D.mass[v][S.layer]], 'marker.color': [colors]}, [3]);
  gd.setAttribute('data-tsf-state', JSON.stringify({view: v, layer: S.layer + 1, frame: S.frame}));
}
gd.on('plotly_sliderchange', function (e) {
  var i = parseInt(e.step.value, 10);
  if (e.slider.name === 'frame') { S.frame = i; } else { S.layer = i; }
  tsfDraw();
});
gd.on('plotly_buttonclicked', function (e) {
  if (e.menu.name === 'view') { S.view = e.active; tsfDraw(); return; }
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
"""
