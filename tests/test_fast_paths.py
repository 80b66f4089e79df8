"""The model's fast paths compute what the plain ones do (issue 8).

* an extra step's output projection and its ``*_fc`` fused into one linear map;
* the pattern groupings' strided views: the cls put first in every group and the groups'
  outputs added back onto the tokens, one pass each;
* Joint and Space: the block input is the one group, no split, merge or average;
* the attention path chosen by group length (explicit matmul-softmax for short groups on a
  CPU, the fused kernel otherwise), and the groups cut into chunks past the CUDA limits.

The end-to-end agreement with the float64 reference (``tests/test_model.py``) covers every
path at its sizes; here each fast path is compared with its plain twin directly.
"""

from __future__ import annotations

import copy

import pytest
import torch

import tsf
from tsf import attention
from tsf.attention import FRAME, FULL, HEIGHT, TIME, WIDTH, Attention, Grouping
from tsf.model import Block, randomise_zero_inits

from .helpers import clip, tiny


def _plain(model: tsf.TimeSformer) -> tsf.TimeSformer:
    twin = copy.deepcopy(model)
    for block in twin.blocks:
        block.fuse_projections = False
    return twin


def _loss_and_grads(model: tsf.TimeSformer, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    logits = model(video)
    logits.logsumexp(-1).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("attention", ["divided", "local_global", "axial"])
@pytest.mark.parametrize("img,patch,frames", [(16, 4, 4), (20, 4, 3)])
def test_fused_projections_give_the_same_logits_and_gradients(attention, img, patch, frames):
    cfg = tiny(attention, img, patch, frames, drop_path_rate=0.0)
    model = tsf.TimeSformer(cfg).double().train()
    randomise_zero_inits(model)
    video = clip(cfg, batch=3).double()
    rows = 3 * frames * (img // patch) ** 2
    step = tsf.attention.SCHEMES[attention].extra_steps[0].name
    block = model.blocks[0]
    assert block._fused_projection(getattr(block, f"{step}_attn"), getattr(block, f"{step}_fc"), rows) is not None
    fused_logits, fused_grads = _loss_and_grads(model, video)
    plain_logits, plain_grads = _loss_and_grads(_plain(model), video)
    torch.testing.assert_close(fused_logits, plain_logits, rtol=1e-12, atol=1e-12)
    assert fused_grads.keys() == plain_grads.keys()
    for name in fused_grads:
        torch.testing.assert_close(fused_grads[name], plain_grads[name], rtol=1e-10, atol=1e-12, msg=name)


def test_fusion_runs_only_where_nothing_random_sits_between_and_it_pays():
    cfg = tiny("divided", drop_path_rate=0.5)
    block: Block = tsf.TimeSformer(cfg).blocks[1]  # block 0 has rate 0
    attn, fc, D = block.temporal_attn, block.temporal_fc, cfg.embed_dim
    block.train()
    assert block._fused_projection(attn, fc, 100 * D) is None  # drop path between proj and fc
    block.eval()
    assert block._fused_projection(attn, fc, 100 * D) is not None
    assert block._fused_projection(attn, fc, 4 * D - 1) is None  # too few tokens to pay for the D^3 product
    weight, bias = block._fused_projection(attn, fc, 4 * D)
    x = torch.randn(5, D)
    torch.testing.assert_close(torch.nn.functional.linear(x, weight, bias), fc(attn.proj(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("grouping", [FULL, TIME, FRAME, WIDTH, HEIGHT], ids=lambda g: g.name)
@pytest.mark.parametrize("grid", [(3, 5, 5), (4, 2, 3), (1, 3, 1)])
def test_pattern_views_equal_split_and_merge(grouping, grid):
    T, H, W = grid
    B, D = 2, 6
    x = torch.randn(B, T * H * W, D, requires_grad=True)
    cls = torch.randn(B, 1, D, requires_grad=True)
    grouped = grouping.grouped(x, grid)
    assert grouped.data_ptr() == x.data_ptr()  # a view, no copy
    assert torch.equal(grouped.reshape(-1, *grouped.shape[-2:]), grouping.split(x, grid)[0])
    fast = grouping.split_with_cls(x, cls, grid)
    generic = Grouping.split_with_cls(grouping, x, cls, grid)
    assert len(fast) == len(generic) == 1 and torch.equal(fast[0], generic[0])
    assert torch.equal(fast[0][:, 0], cls.expand(B, fast[0].shape[0] // B, D).reshape(-1, D))
    outs = [torch.randn_like(fast[0])[:, 1:]]  # a slice, as the block passes it
    torch.testing.assert_close(grouping.merge_add(x, outs, grid), Grouping.merge_add(grouping, x, outs, grid),
                               rtol=0, atol=0)
    # and the gradients flow back through the views as through the copies
    g1 = torch.autograd.grad(grouping.split_with_cls(x, cls, grid)[0].square().sum(), (x, cls))
    g2 = torch.autograd.grad(Grouping.split_with_cls(grouping, x, cls, grid)[0].square().sum(), (x, cls))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("attention", ["joint", "space"])
def test_whole_clip_path_keeps_drop_path_and_attention_records(attention):
    """Joint and Space skip split, merge and the cls average; drop path still draws one mask per clip."""
    cfg = tiny(attention, drop_path_rate=0.5)
    model = tsf.TimeSformer(cfg).train()
    video = clip(cfg, batch=4)
    torch.manual_seed(3)
    a = model(video)
    torch.manual_seed(3)
    b = model(video)
    torch.manual_seed(4)
    c = model(video)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    logits, maps = model.eval()(video, return_attention=True)
    torch.testing.assert_close(logits, model(video), rtol=1e-5, atol=1e-6)
    assert all(len(steps) == 1 and steps[0].step == "main" for steps in maps)


def _all_paths(monkeypatch, explicit: bool) -> None:
    monkeypatch.setattr(attention, "EXPLICIT_MAX_LENGTH", 10**6 if explicit else 0)


@pytest.mark.parametrize("attention_name", ["space", "joint", "divided", "local_global", "axial"])
def test_explicit_and_fused_attention_give_the_same_logits_and_gradients(attention_name, monkeypatch):
    cfg = tiny(attention_name, 20, 4, 3, drop_path_rate=0.0)
    model = tsf.TimeSformer(cfg).double().train()
    randomise_zero_inits(model)
    video = clip(cfg, batch=3).double()
    _all_paths(monkeypatch, explicit=True)
    explicit_logits, explicit_grads = _loss_and_grads(model, video)
    _all_paths(monkeypatch, explicit=False)
    fused_logits, fused_grads = _loss_and_grads(model, video)
    torch.testing.assert_close(explicit_logits, fused_logits, rtol=1e-12, atol=1e-12)
    for name in fused_grads:
        torch.testing.assert_close(explicit_grads[name], fused_grads[name], rtol=1e-10, atol=1e-12, msg=name)


def test_the_path_follows_the_group_length_and_the_device(monkeypatch):
    calls = []
    fused = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention",
                        lambda q, *a, **k: calls.append(q.shape[-2]) or fused(q, *a, **k))
    attn = Attention(16, 2)
    cpu = torch.device("cpu")
    short, long = attention.EXPLICIT_MAX_LENGTH, attention.EXPLICIT_MAX_LENGTH + 1
    assert attention.explicit_path(short, cpu) and not attention.explicit_path(long, cpu)
    assert not attention.explicit_path(short, torch.device("cuda"))  # the fused kernel on a GPU
    attn(torch.randn(3, short, 16))
    attn(torch.randn(2, long, 16))
    attn(torch.randn(2, long, 16), need_weights=True)  # asked for the weights: explicit whatever the length
    assert calls == [long]


@pytest.mark.parametrize("explicit", [True, False], ids=["explicit", "fused"])
@pytest.mark.parametrize("limit", ["groups", "elements"])
def test_attention_in_chunks_equals_one_call(explicit, limit, monkeypatch):
    """Past the CUDA limits (lowered here) the groups run in chunks: the same outputs, weights, gradients."""
    _all_paths(monkeypatch, explicit)
    torch.manual_seed(0)
    attn = Attention(16, 2).double()
    G, L = 12, 5
    x = torch.randn(G, L, 16, dtype=torch.double, requires_grad=True)

    def run(need_weights: bool):
        out, w = attn(x, need_weights, batch=3)
        grads = torch.autograd.grad(out.square().sum() + (w.square().sum() if w is not None else 0),
                                    (x, *attn.parameters()))
        return out, w, grads

    whole = [run(need) for need in (False, True)]
    if limit == "groups":
        monkeypatch.setattr(attention, "MAX_GROUPS", 5)
    else:  # room for two groups per call: their q padded to PAD_TOKENS (fused) or their L x L matrices (explicit)
        per_group = 2 * (max(L * 8, L * L) if explicit else attention.PAD_TOKENS * 8)
        monkeypatch.setattr(attention, "MAX_PADDED_ELEMENTS", 2 * per_group + 1)
    assert attention.chunk_groups(G, L, 2, 8, explicit) == (5 if limit == "groups" else 2)
    chunked = [run(need) for need in (False, True)]
    for (o1, w1, g1), (o2, w2, g2) in zip(whole, chunked):
        torch.testing.assert_close(o2, o1, rtol=1e-12, atol=1e-12)
        assert (w1 is None) == (w2 is None)
        if w1 is not None:
            assert w2.shape == (3, G // 3, 2, L, L)
            torch.testing.assert_close(w2, w1, rtol=1e-12, atol=1e-12)
        for a, b in zip(g1, g2):
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_chunks_stay_within_the_cuda_limits():
    # divided's temporal step on ViT-B/16, 8 frames, 112 clips: past 2^31 padded elements in one call
    groups, L, heads, head_dim = 112 * 196, 8, 12, 64
    per_call = attention.chunk_groups(groups, L, heads, head_dim)
    assert per_call < groups and per_call * heads * 128 * head_dim <= 2**31 - 1
    assert attention.chunk_groups(111 * 196, L, heads, head_dim) == 111 * 196  # below it: one call
    assert attention.chunk_groups(10**6, 4, 1, 8) == attention.MAX_GROUPS == 65_535  # the grid limit on groups
    # Joint on ViT-B at 96 x 224 (18,817 tokens): the fused kernel takes many clips per call; the
    # explicit path's matrices of one clip pass the bound, so it goes one clip at a time (and no less)
    assert attention.chunk_groups(64, 18_817, 12, 64) == 64
    assert attention.chunk_groups(4, 18_817, 12, 64, explicit=True) == 1
