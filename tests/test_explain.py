"""tsf.explain: rollout invariants, token order, gradients, purity, scores."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import pytest
import torch

import tsf
from tsf import explain
from tsf.__main__ import main
from tsf.bench.rollout import maps_bytes, random_maps, run_rollout_benchmark
from tsf.config import ATTENTION_SCHEMES
from tsf.data import moving_square
from tsf.model import randomise_zero_inits


def model_and_clip(attention, frames=3, height=20, width=16, batch=2, seed=0, **kw):
    cfg = tsf.preset("tiny", attention=attention, img_size=16, patch_size=4, num_frames=frames,
                     depth=3, **kw)
    torch.manual_seed(seed)
    model = tsf.TimeSformer(cfg)
    randomise_zero_inits(model, seed)
    video = torch.randn(batch, 3, frames, height, width, generator=torch.Generator().manual_seed(seed))
    return model, video


def snapshot(maps):
    return [[[w.clone() for w in s.weights] for s in steps] for steps in maps]


def same(maps, snap) -> bool:
    return all(torch.equal(w, c) for steps, ss in zip(maps, snap) for s, cs in zip(steps, ss)
               for w, c in zip(s.weights, cs))


# -- token order ----------------------------------------------------------------------


def test_tokens_to_grid_puts_canonical_index_at_t_h_w():
    T, H, W = 3, 5, 4
    for q in [(0, 0, 0), (2, 4, 3), (1, 0, 3), (2, 3, 0)]:
        row = torch.zeros(T * H * W)
        row[explain.patch_index(q, (T, H, W))] = 1.0
        m = explain.tokens_to_grid(row, (T, H, W))
        assert m.shape == (T, H, W)
        assert m[q] == 1.0 and m.sum() == 1.0
        torch.testing.assert_close(explain.grid_to_tokens(m, (T, H, W)), row)
    assert explain.patch_index((1, 2, 3), (3, 5, 4)) == (2 * 4 + 3) * 3 + 1


def planted(maps, q):
    """Every step an identity, except the last block's main step, where the cls looks only at
    patch q = (t, h, w) from the group that holds q (and at itself from every other group)."""
    T, H, W = maps[0][0].grid
    p = explain.patch_index(q, (T, H, W))
    out = []
    for b, steps in enumerate(maps):
        new = []
        for s in steps:
            weights = []
            for w, idx in zip(s.weights, s.groups):
                extra = 0 if s.cls == "none" else 1
                L = idx.shape[1] + extra
                one_hot = torch.eye(L).expand(*w.shape[:3], L, L).clone()  # (B, G, heads, L, L)
                if b == len(maps) - 1 and s.step == "main":
                    for g in range(idx.shape[0]):
                        hit = (idx[g] == p).nonzero()
                        if len(hit):
                            one_hot[:, g, :, 0] = 0.0
                            one_hot[:, g, :, 0, 1 + int(hit)] = 1.0
                weights.append(one_hot)
            new.append(replace(s, weights=tuple(weights)))
        out.append(tuple(new))
    return tuple(out)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_a_planted_pattern_maps_back_to_its_frame_and_patch(attention):
    """Catches the 'bars' bug: the mass lands on exactly the planted (t, h, w), on a 3 x 5 x 4 grid."""
    model, video = model_and_clip(attention)
    _, maps = explain.attention_maps(model, video)
    T, H, W = maps[0][0].grid
    assert (T, H, W) == (3, 5, 4)
    groups = T if attention == "space" else sum(g.shape[0] for g in maps[-1][-1].groups)
    for q in [(0, 0, 0), (2, 4, 1), (1, 1, 3), (2, 0, 3)]:
        fake = planted(maps, q)
        for m, value in [(explain.rollout(fake), 0.5 / groups), (explain.raw_attention(fake), 1.0 / groups),
                         (explain.rollout(fake, query=q), 1.0)]:
            assert m.shape == (2, T, H, W)
            expected = torch.zeros(T, H, W)
            expected[q] = value
            torch.testing.assert_close(m[0], expected)
            torch.testing.assert_close(m[1], expected)


# -- rollout invariants ---------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_rollout_rows_sum_to_one_and_are_non_negative(attention):
    model, video = model_and_clip(attention)
    _, maps = explain.attention_maps(model, video)
    for kw in [dict(), dict(head="max"), dict(head="min"), dict(discard_ratio=0.9), dict(head=0, upto=1),
               dict(query=(2, 4, 3)), dict(query=(0, 1, 0), discard_ratio=0.5, head="max")]:
        row = explain.rollout_tokens(maps, **kw)
        assert row.shape == (2, 1 + 3 * 5 * 4)
        assert (row >= 0).all()
        torch.testing.assert_close(row.sum(-1), torch.ones(2))
        m = explain.rollout(maps, **kw)
        torch.testing.assert_close(m.sum((1, 2, 3)) + row[:, 0], torch.ones(2))


def test_space_rollout_gives_each_frame_one_over_t():
    """Space: frame t's cls sees only frame t, so each frame (with its cls share) holds 1/T."""
    model, video = model_and_clip("space", frames=4)
    _, maps = explain.attention_maps(model, video)
    m = explain.rollout(maps)
    per_frame = m.sum((2, 3))  # (B, T)
    assert (per_frame < 0.25).all() and (per_frame > 0).all()
    q = explain.rollout(maps, query=(2, 1, 1))
    assert q[:, [0, 1, 3]].abs().sum() == 0  # a patch of frame 2 never sees another frame


def test_rollout_by_layer_matches_rollout_upto():
    model, video = model_and_clip("divided")
    _, maps = explain.attention_maps(model, video)
    stack = explain.rollout_by_layer(maps, head="max", query=(1, 2, 2))
    assert stack.shape == (3, 2, 3, 5, 4)
    for k in range(3):
        torch.testing.assert_close(stack[k], explain.rollout(maps, head="max", query=(1, 2, 2), upto=k + 1))


@pytest.mark.parametrize("attention", ["divided", "space"])
def test_batch_elements_are_independent(attention):
    """Every clip of a batch gets its own map (not only element 0)."""
    model, video = model_and_clip(attention, batch=3)
    _, maps = explain.attention_maps(model, video)
    batch = explain.rollout(maps)
    for i in range(3):
        _, one = explain.attention_maps(model, video[i])
        torch.testing.assert_close(batch[i], explain.rollout(one)[0], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])


def test_discard_lowest_keeps_the_diagonal_and_drops_the_right_count():
    a = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    a.diagonal(dim1=-2, dim2=-1).fill_(0.0)  # the diagonal is the smallest: still kept
    before = a.clone()
    d = explain.discard_lowest(a, 0.5)  # floor(0.5 * 5) = 2 per row
    assert torch.equal(a, before)
    assert ((d == 0).sum(-1) == 3).all()  # 2 dropped + the zero diagonal
    kept = d != 0
    for row, krow in zip(a.reshape(-1, 6), kept.reshape(-1, 6)):
        off = row[krow]
        dropped = row[~krow]
        assert off.min() >= dropped.max()
    assert explain.discard_lowest(a, 0.0) is a
    with pytest.raises(ValueError, match="discard_ratio"):
        explain.discard_lowest(a, 1.0)


# -- gradient rollout -----------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_gradient_rollout_runs_is_non_negative_and_depends_on_the_class(attention):
    model, video = model_and_clip(attention, num_classes=4)
    maps = [explain.explain(model, video, "gradient", target=c) for c in range(2)]
    for m in maps:
        assert m.shape == (2, 3, 5, 4) and torch.isfinite(m).all() and (m >= 0).all()
        assert m.sum() > 0
    assert not torch.allclose(maps[0], maps[1])
    torch.testing.assert_close(explain.explain(model, video, "gradient", target=explain.ClassTarget(1)), maps[1])
    lam = explain.explain(model, video, "gradient", target=lambda logits: logits[:, 1])
    torch.testing.assert_close(lam, maps[1])


def test_relevance_is_positive_part_of_gradient_times_attention():
    model, video = model_and_clip("divided", num_classes=4)
    logits, maps, rel = explain.relevance_maps(model, video, target=2)
    step = maps[-1][-1]
    w = step.weights[0]
    r = rel[-1][-1].weights[0]
    assert r.shape == w.shape and (r >= 0).all() and r.abs().sum() > 0
    assert not w.requires_grad and not r.requires_grad
    assert logits.shape == (2, 4)


def test_predicted_class_is_the_default_target():
    model, video = model_and_clip("joint", num_classes=4)
    logits, _ = explain.attention_maps(model, video)
    default = explain.explain(model, video, "gradient")
    for i, c in enumerate(logits.argmax(-1).tolist()):
        torch.testing.assert_close(default[i], explain.explain(model, video[i], "gradient", target=c)[0],
                                   rtol=1e-4, atol=1e-7)


# -- purity ---------------------------------------------------------------------------


def test_nothing_mutates_its_inputs():
    model, video = model_and_clip("axial", num_classes=4)
    video_before = video.clone()
    state = copy.deepcopy(model.state_dict())
    model.train()
    logits, maps = explain.attention_maps(model, video)
    assert model.training  # restored
    snap = snapshot(maps)
    explain.rollout(maps, discard_ratio=0.5, head="max")
    explain.rollout_by_layer(maps, query=(1, 1, 1))
    explain.raw_attention(maps, 1, "width", query=(0, 0, 0))
    assert same(maps, snap)
    _, _, rel = explain.relevance_maps(model, video, target=1)
    rsnap = snapshot(rel)
    explain.gradient_rollout(rel, head="min")
    assert same(rel, rsnap)
    m = explain.rollout(maps)
    m_before = m.clone()
    mask = torch.zeros(3, 20, 16, dtype=torch.bool)
    mask[:, 4:8, 4:12] = True
    mask_before = mask.clone()
    explain.upsample(m, (20, 16))
    explain.mask_scores(m, mask)
    assert torch.equal(m, m_before) and torch.equal(mask, mask_before)
    assert torch.equal(video, video_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


# -- errors ---------------------------------------------------------------------------


def test_bad_arguments_give_clear_errors():
    model, video = model_and_clip("divided")
    _, maps = explain.attention_maps(model, video)
    with pytest.raises(ValueError, match="head"):
        explain.rollout(maps, head="median")
    with pytest.raises(ValueError, match="out of range"):
        explain.rollout(maps, head=7)
    with pytest.raises(ValueError, match="outside the grid"):
        explain.rollout(maps, query=(3, 0, 0))
    with pytest.raises(ValueError, match="upto"):
        explain.rollout(maps, upto=4)
    with pytest.raises(ValueError, match="steps"):
        explain.raw_attention(maps, 0, "width")
    with pytest.raises(ValueError, match="no attention"):
        explain.rollout(())
    with pytest.raises(ValueError, match="method"):
        explain.explain(model, video, "saliency")
    with pytest.raises(ValueError, match="patch tokens"):
        explain.tokens_to_grid(torch.zeros(10), (3, 5, 4))
    with pytest.raises(ValueError, match="one score per clip"):
        explain.relevance_maps(model, video, target=lambda logits: logits)


# -- upsampling and scores ------------------------------------------------------------


def test_upsample_nearest_paints_patches_and_bilinear_keeps_constants():
    m = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # (T, H, W)
    up = explain.upsample(m, (12, 8))
    assert up.shape == (2, 12, 8)
    assert torch.equal(up[1, 4:8, 4:8], torch.full((4, 4), float(m[1, 1, 1])))
    flat = explain.upsample(torch.full((1, 4, 3, 2), 0.25), (9, 6), mode="bilinear")
    torch.testing.assert_close(flat, torch.full((1, 4, 9, 6), 0.25))


def test_mask_scores_share_against_chance():
    T, H, W = 2, 4, 4
    mask = torch.zeros(T, 16, 16, dtype=torch.bool)
    mask[0, 0:4, 0:4] = True  # exactly patch (0, 0) of frame 0
    mask[1, 0:8, 0:2] = True  # half of patches (0, 0) and (1, 0) of frame 1
    uniform = torch.ones(T, H, W)
    s = explain.mask_scores(uniform, mask)
    torch.testing.assert_close(s.share, s.chance)
    torch.testing.assert_close(s.chance, torch.tensor([1 / 16, 1 / 16], dtype=torch.float64))
    focused = torch.zeros(T, H, W)
    focused[0, 0, 0] = 2.0
    focused[1, 1, 0] = 1.0
    focused[1, 3, 3] = 1.0
    s = explain.mask_scores(focused, mask)
    torch.testing.assert_close(s.share, torch.tensor([1.0, 0.25], dtype=torch.float64))
    torch.testing.assert_close(s.lift, torch.tensor([16.0, 4.0], dtype=torch.float64))
    batch = explain.mask_scores(torch.stack([uniform, focused]), torch.stack([mask, mask]))
    assert batch.share.shape == (2, T)
    with pytest.raises(ValueError, match="does not divide"):
        explain.mask_scores(uniform, torch.zeros(T, 10, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="frames"):
        explain.mask_scores(uniform, torch.zeros(3, 16, 16, dtype=torch.bool))


def test_score_models_returns_a_tidy_table():
    cfg = tsf.preset("tiny", img_size=16, patch_size=4, num_frames=4, depth=2)
    models = [(a, tsf.TimeSformer(cfg.replace(attention=a))) for a in ("space", "divided")]
    samples = [moving_square(4, 16, seed=s) for s in range(2)]
    clip, mask = samples[0]
    assert clip.shape == (3, 4, 16, 16) and mask.shape == (4, 16, 16) and mask.dtype == torch.bool
    assert all(mask[t].sum() == 16 for t in range(4))
    rows = explain.score_models(models, samples, progress=False)
    assert len(rows) == 2 * 2 * 4
    assert set(rows[0]) == {"model", "method", "sample", "frame", "share", "chance", "lift"}
    for r in rows:
        assert 0 <= r["share"] <= 1 and r["chance"] == pytest.approx(1 / 16)
        assert r["lift"] == pytest.approx(r["share"] / r["chance"])
    summary = explain.summarise_scores(rows)
    assert [s["model"] for s in summary] == ["space", "divided"]
    for s in summary:
        mine = [r for r in rows if r["model"] == s["model"]]
        assert s["share"] == pytest.approx(sum(r["share"] for r in mine) / len(mine))
        assert s["frames"] == 8 and 0 <= s["above_chance"] <= 1
    grad_rows = explain.score_models(models[:1], samples[:1], method="gradient", target=0, progress=False)
    assert len(grad_rows) == 4 and all(not math.isnan(r["share"]) for r in grad_rows)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_random_maps_have_the_layout_the_model_records(attention):
    model, video = model_and_clip(attention)
    _, maps = explain.attention_maps(model, video)
    fake = random_maps(attention, maps[0][0].grid, depth=3, heads=2, batch=2)
    for steps, fsteps in zip(maps, fake):
        for s, f in zip(steps, fsteps):
            assert (s.step, s.grouping, s.grid, s.cls) == (f.step, f.grouping, f.grid, f.cls)
            assert [w.shape for w in s.weights] == [w.shape for w in f.weights]
            assert all(torch.equal(a, b) for a, b in zip(s.groups, f.groups))
    torch.testing.assert_close(explain.rollout_tokens(fake).sum(-1), torch.ones(2))


def test_explain_bench_cli_writes_its_rows(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["bench", "explain", "--preset", "tiny", "--frames", "3", "--repeats", "1", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["attention"] for r in data["rows"]] == list(ATTENTION_SCHEMES)
    assert all(r["rollout_s"] > 0 and r["tokens"] == 1 + 3 * 16 for r in data["rows"])
    assert data["meta"]["command"].startswith("python -m tsf bench explain --preset tiny")
    # the memory estimate is what random_maps allocates
    maps = random_maps("local_global", (3, 5, 4), depth=2, heads=3)
    assert maps_bytes("local_global", (3, 5, 4), 2, 3) == sum(w.numel() * 4 for s in maps for st in s for w in st.weights)
    (row,) = run_rollout_benchmark("base", [96], schemes=["joint"], max_gb=1)
    assert "skipped" in row and "rollout_s" not in row


def test_attention_scores_cli_writes_summary_rows_and_figure(tmp_path, capsys):
    out, fig = tmp_path / "scores.json", tmp_path / "scores.png"
    assert main(["bench", "attention-scores", "--preset", "tiny", "--samples", "1", "--out", str(out),
                 "--figure", str(fig)]) == 0
    data = json.loads(out.read_text())
    assert [r["model"] for r in data["summary"]] == list(ATTENTION_SCHEMES)
    assert len(data["rows"]) == 5 * 4 and fig.stat().st_size > 1000
    assert "lift" in capsys.readouterr().out
