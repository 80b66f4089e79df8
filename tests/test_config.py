"""Configs and presets."""

from __future__ import annotations

import pytest

import tsf
from tsf.config import ATTENTION_SCHEMES, PRESETS, TimeSformerConfig


@pytest.mark.parametrize("alias,name", [
    ("space_only", "space"), ("joint_space_time", "joint"), ("divided_space_time", "divided"),
    ("Divided", "divided"), ("sparse-local-global", "local_global"), ("T+W+H", "axial"), ("axial", "axial")])
def test_attention_aliases(alias, name):
    assert TimeSformerConfig(attention=alias).attention == name


def test_presets_are_the_papers_models():
    base, hr, large = (tsf.preset(n) for n in ("base", "hr", "large"))
    assert (base.num_frames, base.img_size, base.embed_dim, base.depth, base.num_heads) == (8, 224, 768, 12, 12)
    assert (hr.num_frames, hr.img_size) == (16, 448)
    assert (large.num_frames, large.img_size) == (96, 224)
    small = tsf.preset("small")
    assert (small.depth, small.embed_dim, small.num_frames, small.img_size, small.patch_size) == (4, 128, 8, 32, 8)
    assert tsf.preset("base", attention="joint", num_classes=174).num_classes == 174


def test_every_preset_builds_with_every_scheme():
    for name in PRESETS:
        for attention in ATTENTION_SCHEMES:
            assert tsf.count_params(tsf.preset(name, attention=attention)) > 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(attention="cubic"), "unknown attention scheme"),
    (dict(img_size=30, patch_size=16), "not divisible by patch_size"),
    (dict(embed_dim=100, num_heads=12), "not divisible by num_heads"),
    (dict(pos_embed="time"), "pos_embed"),
    (dict(num_frames=0), "positive integer"),
    (dict(resize_mode="area"), "resize_mode"),
    (dict(time_embed_init="random"), "time_embed_init must be one of"),
    (dict(time_embed_init_std=-0.1), "time_embed_init_std"),
    (dict(time_embed_init_std=float("nan")), "time_embed_init_std"),
])
def test_invalid_configs_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TimeSformerConfig(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        tsf.preset("huge")


def test_round_trip_dict_and_json():
    cfg = tsf.preset("hr", attention="axial", num_classes=174)
    assert TimeSformerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown TimeSformerConfig fields"):
        TimeSformerConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert '"attention": "axial"' in cfg.to_json()
