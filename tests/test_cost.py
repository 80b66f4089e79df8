"""Cost accounting: exact parameter counts, the paper's TFLOPs, and the FLOP counter's view."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import tsf
from tsf.attention import SCHEMES
from tsf.config import ATTENTION_SCHEMES, PRESETS
from tsf.cost import attention_matrix_elements, mac_breakdown

# Table 1 of the paper, ViT-B/16 8 x 224 with 174 classes; the first three are the exact
# counts of the authors' code, the last two the paper's rounded figures.
PAPER_PARAMS = {"space": 85_932_462, "joint": 85_938_606, "divided": 121_392_558}
PAPER_PARAMS_M = {"local_global": 121.4, "axial": 156.8}
# Table 3: inference TFLOPs for 3 views (3 crops x 1 clip), divided attention.
PAPER_TFLOPS = {"base": 0.59, "hr": 5.11, "large": 7.14}
# Every preset under every scheme, with the preset's own class count. A new preset or scheme
# fails test_every_preset_has_a_pinned_count until its count is written here.
PRESET_PARAMS = {
    "base": {"space": 86_106_256, "joint": 86_112_400, "divided": 121_566_352, "local_global": 121_566_352,
             "axial": 157_020_304},
    "hr": {"space": 86_557_840, "joint": 86_570_128, "divided": 122_024_080, "local_global": 122_024_080,
           "axial": 157_478_032},
    "large": {"space": 86_106_256, "joint": 86_179_984, "divided": 121_633_936, "local_global": 121_633_936,
              "axial": 157_087_888},
    "small": {"space": 821_642, "joint": 822_666, "divided": 1_153_930, "local_global": 1_153_930, "axial": 1_485_194},
    "compact": {"space": 214_218, "joint": 214_730, "divided": 298_442, "local_global": 298_442, "axial": 382_154},
    "medium": {"space": 4_807_946, "joint": 4_812_042, "divided": 6_788_874, "local_global": 6_788_874,
               "axial": 8_765_706},
    "tiny": {"space": 19_461, "joint": 19_589, "divided": 30_277, "local_global": 30_277, "axial": 40_965},
}


def closed_form_params(cfg: tsf.TimeSformerConfig) -> int:
    """ViT arithmetic written out by hand, independent of the module tree."""
    D, P, C, K = cfg.embed_dim, cfg.patch_size, cfg.in_chans, cfg.num_classes
    hidden = int(D * cfg.mlp_ratio)
    n_extra = len(SCHEMES[cfg.attention].extra_steps)
    attention = (3 * D * D + 3 * D * cfg.qkv_bias) + (D * D + D)
    block = 2 * D + attention + 2 * D + (D * hidden + hidden + hidden * D + D)
    block += n_extra * (2 * D + attention + D * D + D)
    total = C * P * P * D + D + D  # patch embedding, cls
    total += (1 + cfg.num_patches) * D if cfg.has_pos_embed else 0
    total += cfg.num_frames * D if cfg.has_time_embed else 0
    return total + cfg.depth * block + 2 * D + (D * K + K if K else 0)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_table1_parameter_counts(attention):
    count = tsf.count_params(tsf.preset("base", attention=attention, num_classes=174))
    if attention in PAPER_PARAMS:
        assert count == PAPER_PARAMS[attention]
    else:
        assert round(count / 1e6, 1) == PAPER_PARAMS_M[attention]


def test_every_preset_has_a_pinned_count():
    assert {(p, a) for p in PRESETS for a in ATTENTION_SCHEMES} == {(p, a) for p in PRESET_PARAMS
                                                                    for a in PRESET_PARAMS[p]}


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_every_preset_has_its_pinned_parameter_count(name, attention):
    assert tsf.count_params(tsf.preset(name, attention=attention)) == PRESET_PARAMS[name][attention]


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_every_preset_matches_the_closed_form(name, attention):
    cfg = tsf.preset(name, attention=attention)
    assert tsf.count_params(cfg) == closed_form_params(cfg)
    for pos in ("space", "none"):
        ablated = cfg.replace(pos_embed=pos)
        assert tsf.count_params(ablated) == closed_form_params(ablated)


def test_count_params_of_model_and_config_agree():
    cfg = tsf.preset("tiny", attention="axial")
    assert tsf.count_params(tsf.TimeSformer(cfg)) == tsf.count_params(cfg)


@pytest.mark.parametrize("name", sorted(PAPER_TFLOPS))
def test_table3_inference_tflops(name):
    cfg = tsf.preset(name, attention="divided")
    tflops = 3 * tsf.count_macs(cfg) / 1e12
    assert tflops == pytest.approx(PAPER_TFLOPS[name], rel=0.01)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
@pytest.mark.parametrize("img,frames", [(32, 8), (40, 3)])
def test_macs_match_torch_flop_counter_on_small_models(attention, img, frames):
    """Analytic MACs vs FlopCounterMode (2 FLOPs per MAC) on real tensors, odd grid included.
    The explicit-attention path is counted: the CPU's fused attention kernel has no formula."""
    cfg = tsf.preset("small", attention=attention, img_size=img, num_frames=frames)
    model = tsf.TimeSformer(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, frames, img, img), return_attention=True)
    assert counter.get_total_flops() / 2 == pytest.approx(tsf.count_macs(cfg), rel=0.01)


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_macs_match_torch_flop_counter_at_vit_b(attention):
    """The same at ViT-B/16 8 x 224, on the meta device (shapes only, no memory)."""
    cfg = tsf.preset("base", attention=attention, num_classes=174)
    with torch.device("meta"):
        model = tsf.TimeSformer(cfg).eval()
        video = torch.empty(1, 3, 8, 224, 224)
        with FlopCounterMode(display=False) as counter:
            model(video)
    assert counter.get_total_flops() / 2 == pytest.approx(tsf.count_macs(cfg), rel=0.01)


def test_cost_grows_slower_for_divided_than_joint():
    """Figure 3: from 8 to 96 frames, joint's cost grows much faster than divided's."""
    joint, divided = (tsf.preset("base", attention=a) for a in ("joint", "divided"))
    ratio = lambda cfg: tsf.count_macs(cfg, num_frames=96) / tsf.count_macs(cfg, num_frames=8)
    assert ratio(joint) > 2 * ratio(divided)
    crop = lambda cfg: tsf.count_macs(cfg, img_size=560) / tsf.count_macs(cfg)
    assert crop(joint) > 1.5 * crop(divided)


def test_breakdown_and_attention_sizes():
    cfg = tsf.preset("base", attention="divided")
    parts = mac_breakdown(cfg)
    assert parts.total == tsf.count_macs(cfg)
    assert parts.extra_fc == 12 * 1568 * 768 * 768
    sizes = attention_matrix_elements(cfg)
    assert sizes == {"temporal": 12 * 196 * 8 * 8, "main": 12 * 8 * 197 * 197}
    joint = attention_matrix_elements(tsf.preset("base", attention="joint"), num_frames=96)
    assert joint == {"main": 12 * (1 + 96 * 196) ** 2}
    with pytest.raises(ValueError, match="not divisible"):
        tsf.count_macs(cfg, img_size=230)
