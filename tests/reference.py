"""A slow, independent reference of the TimeSformer forward pass, for the tests.

Written from the description in ../shared/PAPER.md and the issue, not from tsf's code: the
tokens live in a dict keyed by their (t, h, w) coordinates, every attention step's groups
are enumerated from coordinates with plain Python loops, and every group is attended with
an explicit softmax. It reads the model's parameters by name (the authors' names) and
shares nothing else with ``tsf.model`` or ``tsf.attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Coord = tuple[int, int, int]  # (t, h, w)


def groups_by_coordinates(kind: str, T: int, H: int, W: int) -> list[list[Coord]]:
    """The groups of one step, as lists of (t, h, w), from the definitions in the paper/issue."""
    every = [(t, h, w) for t in range(T) for h in range(H) for w in range(W)]
    if kind == "full":
        return [every]
    if kind == "time":  # same location, all frames
        return [[(t, h, w) for t in range(T)] for h in range(H) for w in range(W)]
    if kind == "frame":  # same frame
        return [[(t, h, w) for h in range(H) for w in range(W)] for t in range(T)]
    if kind == "width":  # same frame and row
        return [[(t, h, w) for w in range(W)] for t in range(T) for h in range(H)]
    if kind == "height":  # same frame and column
        return [[(t, h, w) for h in range(H)] for t in range(T) for w in range(W)]
    if kind == "local":  # T x ceil(H/2) x ceil(W/2) windows
        ch, cw = math.ceil(H / 2), math.ceil(W / 2)
        windows: dict[tuple[bool, bool], list[Coord]] = {}
        for c in every:
            windows.setdefault((c[1] >= ch, c[2] >= cw), []).append(c)
        return list(windows.values())
    if kind == "global":  # same parity of t, h and w
        lattices: dict[tuple[int, int, int], list[Coord]] = {}
        for c in every:
            lattices.setdefault((c[0] % 2, c[1] % 2, c[2] % 2), []).append(c)
        return list(lattices.values())
    raise ValueError(kind)


STEPS = {  # scheme -> (extra steps as (parameter prefix, grouping), main grouping)
    "joint": ([], "full"),
    "divided": ([("temporal", "time")], "frame"),
    "local_global": ([("local", "local")], "global"),
    "axial": ([("temporal", "time"), ("width", "width")], "height"),
}


def _ln(x, p, name, eps):
    return F.layer_norm(x, x.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"], eps)


def _linear(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def _attend(x, p, name, heads):
    """x: (B, L, D) -> (B, L, D), explicit softmax."""
    B, L, D = x.shape
    hd = D // heads
    qkv = _linear(x, p, f"{name}.qkv").reshape(B, L, 3, heads, hd)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, heads, L, hd)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
    out = (a @ v).transpose(1, 2).reshape(B, L, D)
    return _linear(out, p, f"{name}.proj")


def _mlp(x, p, name):
    return _linear(F.gelu(_linear(x, p, f"{name}.fc1")), p, f"{name}.fc2")


def reference_forward(model, video: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` (eval mode semantics) on ``video`` at the config's own size."""
    cfg = model.config
    p = dict(model.named_parameters())
    B, C, T, Hp, Wp = video.shape
    P, D, heads, eps = cfg.patch_size, cfg.embed_dim, cfg.num_heads, cfg.layer_norm_eps
    H, W = Hp // P, Wp // P
    assert (H, W) == (cfg.grid_size, cfg.grid_size) and T == cfg.num_frames, "reference runs at config size"

    # Patch embedding as a matrix product over flattened P x P x C pixels.
    weight = p["patch_embed.proj.weight"].reshape(D, -1)
    tokens: dict[Coord, torch.Tensor] = {}
    for t in range(T):
        for h in range(H):
            for w in range(W):
                pixels = video[:, :, t, h * P:(h + 1) * P, w * P:(w + 1) * P].reshape(B, -1)
                tok = pixels @ weight.T + p["patch_embed.proj.bias"]
                if cfg.pos_embed != "none":
                    tok = tok + p["pos_embed"][0, 1 + h * W + w]
                if "time_embed" in p:
                    tok = tok + p["time_embed"][0, t]
                tokens[(t, h, w)] = tok
    cls = p["cls_token"][0, 0].expand(B, D)
    if cfg.pos_embed != "none":
        cls = cls + p["pos_embed"][0, 0]

    if cfg.attention == "space":  # a ViT per frame, each with its own cls; average at the end
        feats = []
        for t in range(T):
            x = torch.stack([cls] + [tokens[(t, h, w)] for h in range(H) for w in range(W)], dim=1)
            for i in range(cfg.depth):
                b = f"blocks.{i}"
                x = x + _attend(_ln(x, p, f"{b}.norm1", eps), p, f"{b}.attn", heads)
                x = x + _mlp(_ln(x, p, f"{b}.norm2", eps), p, f"{b}.mlp")
            feats.append(x[:, 0])
        feat = torch.stack(feats).mean(0)
        return _linear(_ln(feat, p, "norm", eps), p, "head")

    extra, main = STEPS[cfg.attention]
    for i in range(cfg.depth):
        b = f"blocks.{i}"
        for prefix, kind in extra:  # cls sits out; zero-init fc after each
            update = {}
            for group in groups_by_coordinates(kind, T, H, W):
                x = torch.stack([tokens[c] for c in group], dim=1)
                out = _attend(_ln(x, p, f"{b}.{prefix}_norm1", eps), p, f"{b}.{prefix}_attn", heads)
                for j, c in enumerate(group):
                    update[c] = _linear(out[:, j], p, f"{b}.{prefix}_fc")
            tokens = {c: tokens[c] + update[c] for c in tokens}
        # main step: the cls joins each group, its outputs averaged over groups
        update, cls_updates = {}, []
        for group in groups_by_coordinates(main, T, H, W):
            x = torch.stack([cls] + [tokens[c] for c in group], dim=1)
            out = _attend(_ln(x, p, f"{b}.norm1", eps), p, f"{b}.attn", heads)
            cls_updates.append(out[:, 0])
            for j, c in enumerate(group):
                update[c] = out[:, 1 + j]
        cls = cls + torch.stack(cls_updates).mean(0)
        tokens = {c: tokens[c] + update[c] for c in tokens}
        cls = cls + _mlp(_ln(cls, p, f"{b}.norm2", eps), p, f"{b}.mlp")
        tokens = {c: v + _mlp(_ln(v, p, f"{b}.norm2", eps), p, f"{b}.mlp") for c, v in tokens.items()}
    return _linear(_ln(cls, p, "norm", eps), p, "head")
