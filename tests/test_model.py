"""The model: every scheme at several grids and frame counts, against an independent reference."""

from __future__ import annotations

import pytest
import torch

import tsf
from tsf.attention import SCHEMES
from tsf.config import ATTENTION_SCHEMES
from tsf.model import NonFiniteInputWarning, randomise_zero_inits, resize_pos_embed, resize_time_embed

from .helpers import clip, tiny
from .reference import groups_by_coordinates, reference_forward

# (img_size, patch_size, frames): even, odd and one-row grids; one frame to many
GRIDS = [(16, 4, 4), (20, 4, 3), (12, 4, 1), (24, 8, 5), (8, 4, 2)]


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,patch,frames", GRIDS)
def test_shapes_and_finite_outputs(attention, img, patch, frames):
    cfg = tiny(attention, img, patch, frames)
    model = tsf.TimeSformer(cfg).eval()
    randomise_zero_inits(model)
    logits = model(clip(cfg, batch=3))
    assert logits.shape == (3, cfg.num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,patch,frames", [(16, 4, 4), (20, 4, 3), (24, 8, 5)])
def test_matches_independent_reference(attention, img, patch, frames):
    """Exact (float64) agreement with a coordinate-and-loop reference of the paper's schemes."""
    cfg = tiny(attention, img, patch, frames, num_heads=4, embed_dim=32)
    model = tsf.TimeSformer(cfg).double().eval()
    randomise_zero_inits(model)
    video = clip(cfg).double()
    with torch.no_grad():
        ours = model(video)
        ref = reference_forward(model, video)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,patch,frames", [(16, 4, 4), (20, 4, 3)])
def test_fused_and_explicit_attention_agree(attention, img, patch, frames):
    """scaled_dot_product_attention and the explicit softmax path: same logits to 1e-5 (float32)."""
    cfg = tiny(attention, img, patch, frames, embed_dim=64, num_heads=4)
    model = tsf.TimeSformer(cfg).eval()
    randomise_zero_inits(model)
    video = clip(cfg)
    with torch.no_grad():
        fused = model(video)
        explicit, _ = model(video, return_attention=True)
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_every_parameter_gets_a_gradient(attention):
    cfg = tiny(attention, 20, 4, 3, drop_path_rate=0.0)
    model = tsf.TimeSformer(cfg).train()
    randomise_zero_inits(model)
    loss = model(clip(cfg)).logsumexp(-1).sum()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


def test_zero_initialised_linears_make_a_fresh_model_a_framewise_vit():
    """At init every extra step is an identity (zero fc) and the time embedding is zero."""
    for attention in ("divided", "local_global", "axial"):
        model = tsf.TimeSformer(tiny(attention))
        for name, p in model.named_parameters():
            if "_fc." in name or name == "time_embed":
                assert torch.count_nonzero(p) == 0, name


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_attention_record_structure(attention):
    cfg = tiny(attention, 20, 4, 3)
    model = tsf.TimeSformer(cfg).eval()
    randomise_zero_inits(model)
    B = 2
    with torch.no_grad():
        _, maps = model(clip(cfg, batch=B), return_attention=True)
    T, H, W = 3, 5, 5
    assert len(maps) == cfg.depth
    names = [s.name for s in SCHEMES[cfg.attention].steps]
    for i, steps in enumerate(maps):
        assert [s.step for s in steps] == names
        for s in steps:
            assert s.block == i and s.grid == (T, H, W)
            # the groups of every step cover every patch token exactly once
            covered = torch.cat([g.flatten() for g in s.groups]).sort().values
            assert torch.equal(covered, torch.arange(T * H * W))
            extra = 0 if s.cls == "none" else 1
            for w, g in zip(s.weights, s.groups):
                assert w.shape == (B, g.shape[0], cfg.num_heads, g.shape[1] + extra, g.shape[1] + extra)
                torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
            assert s.cls == ("per_group" if attention == "space" else "none" if s.step != "main" else "shared")


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_recorded_weights_are_on_the_path_to_the_logits(attention):
    """Gradient-weighted rollout differentiates the logits with respect to the recorded weights."""
    cfg = tiny(attention, 20, 4, 3)
    model = tsf.TimeSformer(cfg).eval()
    randomise_zero_inits(model)
    logits, maps = model(clip(cfg), return_attention=True)
    weights = [w for steps in maps for s in steps for w in s.weights]
    grads = torch.autograd.grad(logits[:, 0].sum(), weights)
    assert all(g.shape == w.shape for g, w in zip(grads, weights))
    assert all(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("attention,kinds", [
    ("joint", ["full"]), ("divided", ["time", "frame"]), ("local_global", ["local", "global"]),
    ("axial", ["time", "width", "height"])])
@pytest.mark.parametrize("T,H,W", [(4, 4, 4), (3, 5, 5), (1, 3, 2), (5, 1, 4)])
def test_groups_match_coordinate_definitions(attention, kinds, T, H, W):
    """Each step's partition, mapped to (t, h, w), is the group set the paper defines."""
    for step, kind in zip(SCHEMES[attention].steps, kinds):
        ours = {frozenset((p % T, (p // T) // W, (p // T) % W) for p in g.tolist())  # p -> (t, h, w)
                for bucket in step.grouping.partition((T, H, W)) for g in bucket}
        expected = {frozenset(g) for g in groups_by_coordinates(kind, T, H, W) if g}
        assert ours == expected


def test_token_order_is_patch_major_time_minor():
    """A patch lit in frame t at (h, w) lands at token 1 + (h*W + w)*T + t (no 'bars')."""
    cfg = tiny("divided", 12, 4, 3)
    model = tsf.TimeSformer(cfg)
    with torch.no_grad():
        model.patch_embed.proj.weight.fill_(1.0)
        model.patch_embed.proj.bias.zero_()
        for t, h, w in [(0, 0, 0), (2, 1, 0), (1, 2, 2), (2, 0, 1)]:
            video = torch.zeros(1, 3, 3, 12, 12)
            video[0, :, t, h * 4:(h + 1) * 4, w * 4:(w + 1) * 4] = 1.0
            tokens, grid = model.patch_embed(video)
            assert grid == (3, 3, 3)
            lit = tokens[0].abs().sum(-1).nonzero().flatten().tolist()
            assert lit == [(h * 3 + w) * 3 + t]


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_other_sizes_interpolate_the_embeddings(attention):
    """Another crop / frame count equals a model built for that size with the embeddings
    resized as documented (nearest, the authors' run-time rule)."""
    cfg = tiny(attention, 16, 4, 4)
    model = tsf.TimeSformer(cfg).eval()
    randomise_zero_inits(model)
    big = tsf.TimeSformer(cfg.replace(img_size=24, num_frames=6)).eval()
    state = model.state_dict()
    if model.pos_embed is not None:
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], (4, 4), (6, 6), "nearest")
    if model.time_embed is not None:
        state["time_embed"] = resize_time_embed(state["time_embed"], 6, "nearest")
    big.load_state_dict(state)
    video = clip(cfg, frames=6, height=24, width=24)
    with torch.no_grad():
        torch.testing.assert_close(model(video), big(video))
    # a non-square input runs too
    assert model(clip(cfg, frames=2, height=12, width=20)).shape == (2, cfg.num_classes)


def test_resize_functions_are_pure_and_exact_on_identity():
    pos = torch.randn(1, 1 + 16, 8)
    before = pos.clone()
    assert resize_pos_embed(pos, (4, 4), (4, 4)) is pos
    out = resize_pos_embed(pos, (4, 4), (8, 8), "nearest")
    assert torch.equal(pos, before)
    assert out.shape == (1, 65, 8) and torch.equal(out[:, 0], pos[:, 0])
    grid = out[0, 1:].view(8, 8, 8)
    assert torch.equal(grid[::2, ::2].reshape(16, 8), pos[0, 1:])  # nearest: every 2x2 block repeats
    for mode in ("bilinear", "bicubic"):
        assert resize_pos_embed(pos, (4, 4), (5, 7), mode).shape == (1, 36, 8)
    time = torch.randn(1, 4, 8)
    assert torch.equal(resize_time_embed(time, 8, "nearest")[0, ::2], time[0])
    assert resize_time_embed(time, 3, "bicubic").shape == (1, 3, 8)
    with pytest.raises(ValueError, match="does not fit"):
        resize_pos_embed(pos, (3, 3), (4, 4))


@pytest.mark.parametrize("bad,match", [
    (torch.randn(2, 3, 16, 16), r"\(B, C, T, H, W\)"),
    (torch.randn(2, 4, 4, 16, 16), "expected 3 channels"),
    (torch.randn(2, 4, 3, 16, 16), "Hugging Face layout"),
    (torch.randn(2, 3, 4, 18, 16), "not divisible by the patch size 4"),
    (torch.zeros(2, 3, 4, 16, 16, dtype=torch.uint8), "floating-point"),
    (torch.randn(0, 3, 4, 16, 16), "empty"),
])
def test_bad_inputs_are_clear_value_errors(bad, match):
    model = tsf.TimeSformer(tiny("divided"))
    with pytest.raises(ValueError, match=match):
        model(bad)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_inputs_are_cast_to_the_models_dtype(dtype):
    model = tsf.TimeSformer(tiny("divided")).eval()
    video = clip(model.config).to(dtype)
    with torch.no_grad():
        assert torch.equal(model(video), model(video.float()))  # not "Input type (double) and bias type (float)"
        assert model.half()(video.float()).dtype == torch.float16  # and the other way round


def test_a_non_finite_input_is_a_warning_that_counts_the_values(recwarn):
    model = tsf.TimeSformer(tiny("divided")).eval()
    video = clip(model.config)
    with torch.no_grad():
        model(video)
        assert not [w for w in recwarn if issubclass(w.category, NonFiniteInputWarning)]
        video[0, 0, 0, 0, :3] = float("nan")
        video[1, 2, 1, 5, 7] = float("-inf")
        with pytest.warns(NonFiniteInputWarning, match=rf"the input video holds 3 NaN and 1 inf values "
                                                        rf"\(of {video.numel()}\): the logits will not be finite"):
            logits = model(video)
    assert not torch.isfinite(logits).all()


def test_space_has_no_time_embedding_and_pos_embed_ablation():
    assert tsf.TimeSformer(tiny("space")).time_embed is None
    m = tsf.TimeSformer(tiny("divided", pos_embed="space"))
    assert m.time_embed is None and m.pos_embed is not None
    m = tsf.TimeSformer(tiny("divided", pos_embed="none"))
    assert m.time_embed is None and m.pos_embed is None
    video = clip(m.config)
    assert torch.isfinite(m(video)).all()


def test_space_without_time_information_ignores_frame_order():
    """Space sees a set of frames: reversing the clip cannot change its output (the reason it
    cannot learn order-defined classes); divided with a time embedding can tell."""
    video = clip(tiny("space"), frames=4)
    space = tsf.TimeSformer(tiny("space")).eval()
    divided = tsf.TimeSformer(tiny("divided")).eval()
    randomise_zero_inits(divided)
    with torch.no_grad():
        torch.testing.assert_close(space(video), space(video.flip(2)))
        assert not torch.allclose(divided(video), divided(video.flip(2)), atol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients():
    cfg = tiny("divided", drop_path_rate=0.0)
    video = clip(cfg)
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = tsf.TimeSformer(cfg).train()
        randomise_zero_inits(model)
        model.set_grad_checkpointing(ckpt)
        model(video).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_drop_path_drops_whole_groups_in_training_only():
    cfg = tiny("divided", drop_path_rate=0.5, depth=2)
    model = tsf.TimeSformer(cfg)
    video = clip(cfg)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(video), model(video))
        model.train()
        torch.manual_seed(1)
        a = model(video)
        torch.manual_seed(2)
        b = model(video)
    assert not torch.allclose(a, b)


def test_reset_classifier_updates_config():
    model = tsf.TimeSformer(tiny("joint"))
    model.reset_classifier(7)
    assert model.config.num_classes == 7
    assert model(clip(model.config)).shape == (2, 7)
