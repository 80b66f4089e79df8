"""tsf.viz: overlay helpers, static figures, the explorer widget (no browser), the HTML page."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import tsf
from tsf import explain, viz
from tsf.data import moving_square
from tsf.model import randomise_zero_inits
from tsf.viz.explorer import VIEWS, AttentionExplorer


@pytest.fixture(scope="module")
def explorer():
    cfg = tsf.preset("tiny", attention="divided", img_size=16, patch_size=4, num_frames=5, depth=3, num_classes=4)
    torch.manual_seed(0)
    model = tsf.TimeSformer(cfg)
    randomise_zero_inits(model)
    clip, _ = moving_square(5, 16, seed=2)
    return AttentionExplorer(model, clip, classes=["a", "b", "c", "d"])


# -- overlay helpers ------------------------------------------------------------------


def test_display_frames_undoes_the_normalisation():
    clip, mask = moving_square(3, 8, seed=0, noise=0.0)
    frames = viz.display_frames(clip)
    assert frames.shape == (3, 8, 8, 3)
    np.testing.assert_allclose(frames[mask.numpy()], 0.95, atol=1e-6)
    np.testing.assert_allclose(frames[~mask.numpy()], 0.2, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        viz.display_frames(torch.zeros(2, 3, 8, 8))


def test_overlay_colorize_and_normalise_are_pure():
    frames = np.random.default_rng(0).random((2, 8, 8, 3))
    heat = np.random.default_rng(1).random((2, 2, 2))
    f0, h0 = frames.copy(), heat.copy()
    out = viz.overlay(frames, heat, alpha=0.4)
    assert out.shape == (2, 8, 8, 3) and out is not frames
    np.testing.assert_array_equal(frames, f0)
    np.testing.assert_array_equal(heat, h0)
    # patch (1, 0) of frame 1 paints pixels 4..7 x 0..3 with one colour
    colour = viz.colorize(heat[1, 1, 0])
    np.testing.assert_allclose(out[1, 4:8, 0:4], 0.6 * frames[1, 4:8, 0:4] + 0.4 * colour)
    np.testing.assert_array_equal(viz.overlay(frames, heat, alpha=0.0), frames)
    t = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[1.0, 1.0], [0.0, 0.0]]])
    t0 = t.clone()
    n = viz.normalise_maps(t)
    np.testing.assert_allclose(n[0], [[0, 0.5], [0.25, 1.0]])
    np.testing.assert_allclose(viz.normalise_maps(t, per="frame")[1], [[1, 1], [0, 0]])
    assert torch.equal(t, t0)
    with pytest.raises(ValueError, match="alpha"):
        viz.overlay(frames, heat, alpha=2)


def test_static_figures_are_written_and_labelled(tmp_path):
    clip, mask = moving_square(4, 16, seed=0)
    heats = torch.rand(3, 4, 4, 4)
    fig = viz.plot_layer_grid(clip, heats, tmp_path / "grid.png", title="rollout by layer: test", frames=[0, 3])
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert fig._suptitle.get_text() == "rollout by layer: test"
    assert len(fig.axes) == 3 * 2
    fig = viz.plot_frame_strip(clip, heats[0], tmp_path / "sub" / "strip.pdf", title="strip", caption="made by a test")
    assert (tmp_path / "sub" / "strip.pdf").exists() and len(fig.axes) == 2 * 4
    rows = explain.score_models([("m", tsf.TimeSformer(tsf.preset("tiny", num_frames=4)))],
                                [(clip, mask)], progress=False)
    fig = viz.plot_mask_scores(rows, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="layers"):
        viz.plot_layer_grid(clip, heats[0], tmp_path / "bad.png")


# -- the explorer, without a browser --------------------------------------------------


def heat_z(ex) -> np.ndarray:
    return np.array(ex.figure.data[1].z, dtype=float)


def shown(maps: torch.Tensor, layer: int, frame: int) -> np.ndarray:
    """What the colour shows: a layer's map divided by its maximum over the clip. ``maps``: (layers, T, H, W)."""
    m = maps[layer].double().numpy()
    return m[frame] / m.max()


def test_explorer_builds_and_shows_the_rollout(explorer):
    ex = explorer
    assert ex.grid == (5, 4, 4) and ex.depth == 3 and ex.patch_size == (4, 4)
    np.testing.assert_allclose(heat_z(ex), shown(explain.rollout_by_layer(ex.maps)[:, 0], 2, 0), rtol=1e-6)
    assert ex.figure.data[0].source.startswith("data:image/jpeg;base64,")
    assert "rollout of blocks 1..3" in ex.status.value and "frame 1 of 5" in ex.status.value
    heat = ex.figure.data[1]
    assert (heat.zmin, heat.zmax) == (0.0, 1.0) and heat.colorbar.title.text == "÷ max"
    assert heat.colorscale[0][1].endswith(",0)"), "the scale starts transparent: a low map leaves the frame visible"
    bars = np.array(ex.figure.data[4].y)
    assert list(ex.figure.data[4].x) == [1, 2, 3, 4, 5] and bars.sum() == pytest.approx(1.0)
    assert ex.figure.layout.shapes[0].y0 == pytest.approx(1 / 5)  # the dashed line: a uniform map
    assert all(ex._cache.get(k) is not None for k in ex._cache) and {k[0] for k in ex._cache} == set(VIEWS)


def test_explorer_reacts_to_every_control(explorer):
    ex = explorer
    seen = [heat_z(ex)]

    def changed():
        z = heat_z(ex)
        assert not any(np.array_equal(z, s) for s in seen), "the heat map did not change"
        seen.append(z)

    image = ex.figure.data[0].source
    ex.frame_slider.value = 4  # counted from 1: frame index 3
    assert ex.frame == 3 and "frame 4 of 5" in ex.status.value
    changed()
    assert ex.figure.data[0].source != image
    assert list(ex.figure.data[4].marker.color).index("#d62728") == 3
    ex.layer_slider.value = 1
    changed()
    np.testing.assert_allclose(heat_z(ex), shown(explain.rollout_by_layer(ex.maps)[:, 0], 0, 3), rtol=1e-6)
    ex.head_menu.value = "max"
    changed()
    ex.view_buttons.value = "raw"
    assert not ex.step_menu.disabled and ex.class_menu.disabled
    changed()
    raw = torch.stack([explain.raw_attention(ex.maps, b, "main", head="max")[0] for b in range(3)])
    np.testing.assert_allclose(heat_z(ex), shown(raw, 0, 3), rtol=1e-6)
    ex.step_menu.value = "temporal"
    changed()
    ex.view_buttons.value = "gradient"
    assert ex.class_menu.disabled is False
    changed()
    other = next(v for _, v in ex.class_menu.options if v != ex.class_menu.value)
    ex.set_target(ex.classes[other])
    assert ex.class_menu.value == other
    changed()
    expected = torch.stack([explain.explain(ex.model, ex.video, "gradient", target=other, head="max", upto=k)[0]
                            for k in (1, 2, 3)])
    np.testing.assert_allclose(heat_z(ex), shown(expected, 0, 3), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        ex.set_target("zebra")
    with pytest.raises(ValueError, match="outside the model's 4 classes"):
        ex.set_target(7)
    # back to the defaults for the next test
    ex.view_buttons.value, ex.head_menu.value, ex.layer_slider.value, ex.frame_slider.value = "rollout", "mean", 3, 1


def test_clicking_a_patch_shows_where_it_attends(explorer):
    ex = explorer
    ex.frame_slider.value = 3
    before = heat_z(ex)
    # what the front end sends when the heat map cell at pixel (x, y) = (13.5, 5.5) is clicked
    ex.figure._js2py_pointsCallback = {
        "event_type": "plotly_click",
        "points": {"xs": [13.5], "ys": [5.5], "point_indexes": [[1, 3]], "trace_indexes": [1]},
        "device_state": None, "selector": None}
    assert ex.query == (2, 1, 3)
    assert not ex.clear_button.disabled
    query = explain.rollout_by_layer(ex.maps, query=(2, 1, 3))[:, 0]
    np.testing.assert_allclose(heat_z(ex), shown(query, 2, 2), rtol=1e-6)
    assert not np.array_equal(heat_z(ex), before)
    assert list(ex.figure.data[2].x) == [13.5] and list(ex.figure.data[2].y) == [5.5]
    assert "the patch at frame 3, row 2, column 4" in ex.status.value  # counted from 1, as the slider
    ex.clear_button.click()
    assert ex.query is None
    np.testing.assert_allclose(heat_z(ex), before)
    with pytest.raises(ValueError, match="outside the grid"):
        ex.select_patch((5, 0, 0))
    ex.frame_slider.value = 1


def test_explorer_caches_stacks_and_checks_its_input(explorer):
    ex = explorer
    a = ex.stack("rollout", head="min")
    assert ex.stack("rollout", head="min") is a
    assert a.shape == (3, 5, 4, 4)
    with pytest.raises(ValueError, match="one clip"):
        AttentionExplorer(ex.model, torch.zeros(2, 3, 5, 16, 16))
    with pytest.raises(ValueError, match="class names"):
        AttentionExplorer(ex.model, ex.video, classes=["x"])
    with pytest.raises(ValueError, match="mask must be"):
        AttentionExplorer(ex.model, ex.video, mask=torch.zeros(5, 8, 8, dtype=torch.bool))


def test_mask_outline_traces_the_pixel_boundary():
    m = np.zeros((4, 5), bool)
    m[1:3, 1:4] = True
    xs, ys = viz.mask_outline(m)
    segments = {((xs[i], ys[i]), (xs[i + 1], ys[i + 1])) for i in range(0, len(xs), 3)}
    assert segments == {((0.5, 0.5), (3.5, 0.5)), ((0.5, 2.5), (3.5, 2.5)),  # top, bottom
                        ((0.5, 0.5), (0.5, 2.5)), ((3.5, 0.5), (3.5, 2.5))}  # left, right
    assert xs[2::3] == [None] * 4 and viz.mask_outline(np.zeros((3, 3))) == ([], [])


def test_the_object_outline_follows_the_frame_and_can_be_hidden():
    cfg = tsf.preset("tiny", attention="divided", img_size=16, patch_size=4, num_frames=4, depth=2)
    torch.manual_seed(0)
    clip, mask = moving_square(4, 16, seed=1)
    ex = AttentionExplorer(tsf.TimeSformer(cfg), clip, mask=mask)
    outline = ex.figure.data[3]
    for t in (1, 3):
        ex.frame_slider.value = t + 1
        rows, cols = np.nonzero(mask[t].numpy())
        xs = [x for x in outline.x if x is not None]
        ys = [y for y in outline.y if y is not None]
        assert (min(xs), max(xs), min(ys), max(ys)) == (cols.min() - 0.5, cols.max() + 0.5,
                                                        rows.min() - 0.5, rows.max() + 0.5)
    ex.outline_box.value = False
    assert list(ex.figure.data[3].x) == []
    assert "Outline" in ex.legend.value and ex.outline_box.layout.display is None


def test_a_near_uniform_map_says_so_and_a_peaked_one_does_not(explorer):
    from tsf.viz.explorer import NEAR_UNIFORM, uniform_note, uniformity

    assert uniformity(np.full((2, 3, 3), 0.2)) == 1.0 and uniformity(np.zeros((2, 2))) == 0.0
    flat = np.full((2, 3, 3), 1.0)
    flat[0, 0, 0] = 1.2
    assert uniformity(flat) == pytest.approx(1 / 1.2) and "between 83% and 100%" in uniform_note(flat)
    peaked = flat.copy()
    peaked[1, 1, 1] = 1 / (NEAR_UNIFORM * 0.9)
    assert uniform_note(peaked) == ""
    ex = explorer  # an untrained model's rollout: near uniform
    assert uniformity(ex.stack("rollout")[-1]) >= NEAR_UNIFORM and "Near-uniform map" in ex.note.value


def test_the_explorer_says_when_the_kernel_is_busy_with_a_later_cell(monkeypatch):
    from IPython.core.events import EventManager, available_events

    class Shell:
        events = EventManager(None, available_events)

    shell = Shell()
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    cfg = tsf.preset("tiny", attention="joint", img_size=16, patch_size=4, num_frames=2, depth=1)
    ex = AttentionExplorer(tsf.TimeSformer(cfg), moving_square(2, 16, seed=0)[0])
    assert ex.busy.value == ""
    shell.events.trigger("pre_run_cell", None)
    assert "running a later cell" in ex.busy.value
    shell.events.trigger("post_run_cell", None)
    assert ex.busy.value == ""
    ex.close()
    assert not shell.events.callbacks["pre_run_cell"] and not shell.events.callbacks["post_run_cell"]


def test_to_html_writes_plotly_once_and_holds_every_view(explorer, tmp_path):
    ex = explorer
    page = ex.to_html(tmp_path / "one.html")
    js = tmp_path / "plotly.min.js"
    assert js.exists() and js.stat().st_size > 1_000_000
    stamp = js.stat().st_mtime_ns
    ex.to_html(tmp_path / "two.html", views=["rollout"])
    assert js.stat().st_mtime_ns == stamp  # written once, reused
    html = page.read_text()
    assert re.search(r'<script[^>]* src="plotly.min.js"', html) and len(html) < js.stat().st_size
    assert "https://" not in html.split("<body>")[0]  # nothing fetched from the network
    assert "<title>Where TimeSformer looks (divided attention, 3 blocks)</title>" in html
    assert "<b>rollout</b>: where the cls token" in html and "<b>Colour</b>: the map divided by" in html
    data = json.loads(re.search(r"var D = (\{.*?\});\n", html, re.S).group(1))
    assert data["views"] == ["rollout", "raw", "gradient"] and data["depth"] == 3 and data["frames"] == 5
    roll = np.array(data["maps"]["rollout"])  # (layers, T, H, W), scaled per layer
    assert roll.shape == (3, 5, 4, 4)
    ref = explain.rollout_by_layer(ex.maps)[:, 0].numpy()
    np.testing.assert_allclose(roll, np.round(ref / ref.max(axis=(1, 2, 3), keepdims=True), 4), atol=1e-4)
    shares = np.array(data["shares"]["rollout"])
    np.testing.assert_allclose(shares.sum(axis=1), 1.0, atol=1e-3)
    assert len(data["notes"]["rollout"]) == 3 and data["outlines"] == []
    assert len(data["images"]) == 5
    with pytest.raises(ValueError, match="html"):
        ex.to_html(tmp_path / "page.png")
