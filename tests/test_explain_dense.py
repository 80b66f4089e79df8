"""The fast, group-by-group rollout against a dense reference built from explicit matrices.

The reference here shares no code with ``tsf.explain``: it builds, for every step, the full
``(1 + P) x (1 + P)`` operator on all tokens by writing each group's entries into a dense
matrix (with Python loops over the groups), adds the residual to the dense matrix, and
composes the steps and blocks by matrix products. Space is rolled out frame by frame on
``(1 + N) x (1 + N)`` matrices and averaged. Everything in float64.
"""

from __future__ import annotations

import pytest
import torch

import tsf
from tsf import explain
from tsf.config import ATTENTION_SCHEMES
from tsf.model import randomise_zero_inits


GRIDS = [(16, 4, 4), (20, 4, 3), (24, 8, 5), (12, 4, 1)]  # (img, patch, frames): even, odd, one-frame


def fuse(w: torch.Tensor, head) -> torch.Tensor:  # (B, G, heads, L, L) -> (B, G, L, L)
    if head == "mean":
        return w.sum(2) / w.shape[2]
    if head == "max":
        return w.max(dim=2).values
    if head == "min":
        return w.min(dim=2).values
    return w[:, :, head]


def discard(a: torch.Tensor, ratio: float) -> torch.Tensor:
    """Drop the floor(ratio*(L-1)) smallest off-diagonal entries of each row, by argsort."""
    L = a.shape[-1]
    k = int(ratio * (L - 1))
    out = a.clone()
    if k == 0:
        return out
    flat = out.reshape(-1, L, L)
    for m in flat:  # one matrix
        for i in range(L):
            others = [j for j in range(L) if j != i]
            order = torch.argsort(m[i, others])
            for j in order[:k].tolist():
                m[i, others[j]] = 0.0
    return flat.reshape(a.shape)


def group_matrices(step, head, ratio, normalise) -> list[tuple[torch.Tensor, torch.Tensor]]:
    out = []
    for w, idx in zip(step.weights, step.groups):
        a = fuse(w, head)
        if ratio:
            a = discard(a, ratio)
        if normalise:
            a = a / a.sum(-1, keepdim=True)
        out.append((a, idx))
    return out


def dense_step(step, P: int, head, ratio, rule) -> torch.Tensor:
    """The step's operator on all 1 + P tokens: (B, 1 + P, 1 + P)."""
    parts = group_matrices(step, head, ratio, normalise=(rule == "rollout"))
    B = parts[0][0].shape[0]
    A = torch.zeros(B, 1 + P, 1 + P, dtype=torch.float64)
    n_groups = sum(idx.shape[0] for _, idx in parts)
    for a, idx in parts:
        for g in range(idx.shape[0]):
            tokens = [1 + int(p) for p in idx[g]]
            if step.cls == "none":
                for i, ti in enumerate(tokens):
                    for j, tj in enumerate(tokens):
                        A[:, ti, tj] = a[:, g, i, j]
            else:
                slots = [0] + tokens
                for i, ti in enumerate(tokens):
                    for j, tj in enumerate(slots):
                        A[:, ti, tj] = a[:, g, 1 + i, j]
                for j, tj in enumerate(slots):
                    A[:, 0, tj] += a[:, g, 0, j] / n_groups
    eye = torch.eye(1 + P, dtype=torch.float64).expand(B, -1, -1)
    S = {"rollout": lambda: 0.5 * A + 0.5 * eye, "gradient": lambda: A + eye, "raw": lambda: A.clone()}[rule]()
    if step.cls == "none":  # the cls sits out: identity row
        S[:, 0] = eye[:, 0]
    return S


def dense_rollout(maps, head="mean", ratio=0.0, rule="rollout", upto=None, query=None):
    """Row of the dense product for the cls (query=None) or a query patch: (B, 1 + P)."""
    T, H, W = maps[0][0].grid
    P = T * H * W
    R = None
    for steps in maps[:upto]:
        for step in steps:
            S = dense_step(step, P, head, ratio, rule)
            R = S if R is None else S @ R  # later steps act after: R = S_k ... S_1
    row = 0 if query is None else 1 + (query[1] * W + query[2]) * T + query[0]
    return R[:, row]


def dense_space_rollout(maps, head="mean", ratio=0.0, rule="rollout", upto=None, query=None):
    """Space: every frame its own (1 + N)-token clip; average the frames' cls rows."""
    T, H, W = maps[0][0].grid
    N = H * W
    frames = maps[0][0].groups[0]  # (T, N): canonical index of each frame's patches
    B = maps[0][0].weights[0].shape[0]
    out = torch.zeros(B, 1 + T * N, dtype=torch.float64)
    for t in range(T):
        R = None
        for steps in maps[:upto]:
            (step,) = steps
            (a, _), = group_matrices(step, head, ratio, normalise=(rule == "rollout"))
            eye = torch.eye(1 + N, dtype=torch.float64)
            S = 0.5 * a[:, t] + 0.5 * eye if rule == "rollout" else a[:, t] + eye
            R = S if R is None else S @ R
        if query is None:
            row, weight = R[:, 0], 1.0 / T
        elif query[0] == t:
            row, weight = R[:, 1 + query[1] * W + query[2]], 1.0
        else:
            continue
        out[:, 0] += weight * row[:, 0]
        for n in range(N):
            out[:, 1 + int(frames[t, n])] += weight * row[:, 1 + n]
    return out


def reference(attention, maps, **kw):
    return (dense_space_rollout if attention == "space" else dense_rollout)(maps, **kw)


def captured(attention, img, patch, frames, batch=2, heads=2, seed=0):
    cfg = tsf.preset("tiny", attention=attention, img_size=img, patch_size=patch, num_frames=frames,
                     num_heads=heads, embed_dim=16, depth=3)
    torch.manual_seed(seed)
    model = tsf.TimeSformer(cfg).double()
    randomise_zero_inits(model, seed)
    video = torch.randn(batch, 3, frames, img, img, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return model, video


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,patch,frames", GRIDS)
def test_fast_rollout_equals_dense_products(attention, img, patch, frames):
    model, video = captured(attention, img, patch, frames)
    _, maps = explain.attention_maps(model, video)
    T, H, W = maps[0][0].grid
    cases = [dict(), dict(head="max"), dict(head="min", ratio=0.4), dict(head=1, upto=2),
             dict(query=(T - 1, H - 1, 0)), dict(query=(0, H // 2, W - 1), ratio=0.25, upto=1)]
    for case in cases:
        kw = dict(case)
        ratio = kw.pop("ratio", 0.0)
        fast = explain.rollout_tokens(maps, discard_ratio=ratio, **kw)
        dense = reference(attention, maps, ratio=ratio, **kw)
        torch.testing.assert_close(fast, dense, rtol=1e-12, atol=1e-14, msg=f"{attention} {case}")
        torch.testing.assert_close(fast.sum(-1), torch.ones(fast.shape[0], dtype=torch.float64))


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,patch,frames", [(20, 4, 3), (16, 4, 4)])
def test_fast_gradient_rollout_equals_dense_products(attention, img, patch, frames):
    model, video = captured(attention, img, patch, frames)
    _, _, rel = explain.relevance_maps(model, video, target=1)
    T, H, W = rel[0][0].grid
    for kw in [dict(), dict(query=(T - 1, 0, W - 1), upto=2)]:
        fast = explain.gradient_rollout(rel, **kw)
        dense = reference(attention, rel, rule="gradient", **kw)[:, 1:]
        torch.testing.assert_close(fast, explain.tokens_to_grid(dense, (T, H, W)), rtol=1e-12, atol=1e-14)
        assert (fast >= 0).all()


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_raw_attention_is_a_row_of_the_dense_step(attention):
    model, video = captured(attention, 20, 4, 3)
    _, maps = explain.attention_maps(model, video)
    T, H, W = maps[0][0].grid
    P = T * H * W
    q = (1, 3, 2)
    p = (q[1] * W + q[2]) * T + q[0]
    for block in range(len(maps)):
        for j, step in enumerate(maps[block]):
            if attention == "space":
                continue  # checked below: Space's step lives on per-frame clips
            A = dense_step(step, P, "mean", 0.0, "raw")
            if step.cls == "none":
                A[:, 0] = 0.0
                expected_cls = A[:, 1:, 1:].mean(1)  # attention received, averaged over the patch queries
            else:
                expected_cls = A[:, 0, 1:]
            got = explain.raw_attention(maps, block, j)
            torch.testing.assert_close(got, explain.tokens_to_grid(expected_cls, (T, H, W)), rtol=1e-12, atol=1e-14)
            got = explain.raw_attention(maps, block, step.step, query=q)
            torch.testing.assert_close(got, explain.tokens_to_grid(A[:, 1 + p, 1:], (T, H, W)),
                                       rtol=1e-12, atol=1e-14)
    if attention == "space":
        step = maps[-1][-1]
        a = step.weights[0].mean(2)  # (B, T, 1 + N, 1 + N)
        got = explain.grid_to_tokens(explain.raw_attention(maps), (T, H, W))
        frames = step.groups[0]
        for t in range(T):
            torch.testing.assert_close(got[:, frames[t]], a[:, t, 0, 1:] / T, rtol=1e-12, atol=1e-14)
