"""Weights in and out: Hugging Face parity, ViT inflation, the authors' format, safety, bad input.

No downloads: every foreign model is built here from a small config with random weights.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import (
    TimesformerConfig, TimesformerForVideoClassification, TimesformerModel, ViTConfig, ViTForImageClassification,
    ViTModel,
)

import tsf
from tsf.config import TIME_EMBED_INITS
from tsf.model import sinusoidal_time_embed
from tsf.config import ATTENTION_SCHEMES
from tsf.model import resize_pos_embed
from tsf.weights import CheckpointError, adapt

SMALL = dict(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, num_labels=5)
HF_ATTENTION = {"divided": "divided_space_time", "joint": "joint_space_time", "space": "space_only"}


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values of a useful scale in every parameter (LayerNorm weights near 1), so that
    no path of the model is an identity and a wrong mapping shows in the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            norm_weight = p.ndim == 1 and name.endswith("weight")
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype)
            p.copy_(1.0 + 0.1 * noise if norm_weight else 0.2 * noise)
    return module.eval()


def tiny(attention: str = "divided", **kw) -> tsf.TimeSformerConfig:
    return tsf.preset("tiny", attention=attention, **kw)


def our_model(attention: str = "divided", seed: int = 0, **kw) -> tsf.TimeSformer:
    return randomise(tsf.TimeSformer(tiny(attention, **kw)), seed)


def clip(batch=2, frames=4, size=16, seed=1) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Equal to ``tol`` relative to the scale of the expected values."""
    assert actual.shape == expected.shape
    err = (actual - expected).abs().max().item()
    assert err <= tol * expected.abs().max().item(), f"max error {err} vs scale {expected.abs().max().item()}"


def assert_same_state(a: torch.nn.Module | dict, b: torch.nn.Module | dict) -> None:
    sa = a if isinstance(a, dict) else a.state_dict()
    sb = b if isinstance(b, dict) else b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


def hf_timesformer(attention: str, seed: int = 0, **kw) -> TimesformerForVideoClassification:
    config = TimesformerConfig(**{**SMALL, "num_frames": 4, **kw}, attention_type=HF_ATTENTION[attention])
    return randomise(TimesformerForVideoClassification(config), seed)


def hf_vit(seed: int = 0, cls=ViTForImageClassification, **kw) -> torch.nn.Module:
    return randomise(cls(ViTConfig(**{**SMALL, **kw})), seed)


def run(model: torch.nn.Module, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(model, tsf.TimeSformer):
            return model(video)
        return model(video.transpose(1, 2)).logits  # Hugging Face: (B, T, C, H, W)


# --------------------------------------------------------------------------------------
# Hugging Face TimeSformer
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_hf_timesformer_state_dict_gives_the_same_logits(attention):
    hf = hf_timesformer(attention)
    ours = tsf.load_pretrained(hf.state_dict(), num_heads=2)  # a bare state dict cannot tell the heads
    assert ours.config.attention == attention and ours.config.num_frames == 4 and ours.config.num_classes == 5
    assert not ours.training
    video = clip()
    assert_rel_close(run(ours, video), run(hf, video))


@pytest.mark.parametrize("attention", ["divided", "joint"])
def test_hf_timesformer_folder_reads_config_json(attention, tmp_path):
    hf = hf_timesformer(attention, layer_norm_eps=1e-5)
    hf.save_pretrained(tmp_path)
    ours = tsf.load_pretrained(tmp_path)  # heads and eps from config.json
    assert ours.config.num_heads == 2 and ours.config.layer_norm_eps == 1e-5
    assert_rel_close(run(ours, clip()), run(hf, clip()))


def test_hf_timesformer_model_without_head_and_sharded_folder(tmp_path):
    base = randomise(TimesformerModel(TimesformerConfig(**SMALL, num_frames=4)))
    base.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    ours = tsf.load_pretrained(tmp_path)
    assert ours.config.num_classes == 0
    video = clip()
    with torch.no_grad():
        expected = base(video.transpose(1, 2)).last_hidden_state[:, 0]
        assert_rel_close(ours.forward_features(video), expected)


@pytest.mark.parametrize("attention", ["divided", "joint", "space"])
def test_to_hf_round_trips(attention):
    ours = our_model(attention)
    hf = tsf.to_hf(ours)
    assert type(hf).__name__ == "TimesformerForVideoClassification" and not hf.training
    back = tsf.load_pretrained(hf)
    assert back.config == ours.config.replace(drop_path_rate=back.config.drop_path_rate)
    assert_same_state(back, ours)
    if attention != "space":
        assert_rel_close(run(hf, clip()), run(ours, clip()))


def test_hf_space_only_loads_but_its_outputs_are_per_frame():
    """Hugging Face's space-only returns one (separately normalised) row of logits per frame;
    the authors' model (and ours) averages the frames' cls tokens before the final norm."""
    hf = hf_timesformer("space")
    ours = tsf.load_pretrained(hf)
    assert ours.config.attention == "space" and ours.time_embed is None
    assert torch.equal(ours.blocks[1].attn.qkv.weight, hf.timesformer.encoder.layer[1].attention.attention.qkv.weight)
    assert torch.equal(ours.head.weight, hf.classifier.weight)
    assert torch.equal(ours.pos_embed, hf.timesformer.embeddings.position_embeddings)
    same_frames = clip(frames=1).expand(2, 3, 4, 16, 16)
    per_frame = run(hf, same_frames).view(2, 4, 5)
    for t in range(4):  # identical frames: every frame's logits are ours
        assert_rel_close(per_frame[:, t], run(ours, same_frames))
    different = run(hf, clip()).view(2, 4, 5).mean(1)
    assert not torch.allclose(different, run(ours, clip()), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("attention", ["local_global", "axial"])
def test_to_hf_refuses_schemes_hugging_face_lacks(attention):
    with pytest.raises(ValueError, match="Hugging Face's TimeSformer implements"):
        tsf.to_hf(our_model(attention))


# --------------------------------------------------------------------------------------
# ImageNet ViT inflation
# --------------------------------------------------------------------------------------


def vit_logits(vit: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return vit(image).logits


def still_clip(image: torch.Tensor, frames: int) -> torch.Tensor:
    return image.unsqueeze(2).expand(-1, -1, frames, -1, -1)  # (B, C, T, H, W): the image in every frame


@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_inflated_hf_vit_on_a_still_clip_gives_the_vit_logits(attention):
    """Space and Divided reproduce the ViT on a clip of one repeated image by construction (zero
    *_fc, zero time embedding, per-frame spatial attention). Joint does on one frame only (the
    cls key is not repeated with the patches); L+G and Axial attend within partial frames."""
    vit = hf_vit()
    image = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    model = tsf.load_pretrained(vit.state_dict(), attention=attention, num_frames=4, num_heads=2)
    assert model.config.layer_norm_eps == 1e-12  # Hugging Face ViT's default
    out = run(model, still_clip(image, 4))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    if attention in ("space", "divided"):
        assert_rel_close(out, vit_logits(vit, image))
    if attention == "joint":
        assert_rel_close(run(model, still_clip(image, 1)), vit_logits(vit, image))
    for name, p in model.named_parameters():  # the authors' inflation, step by step
        if "_fc." in name or name == "time_embed":
            assert torch.count_nonzero(p) == 0, name
    for block in model.blocks:
        for step in model.scheme.extra_steps:
            assert torch.equal(getattr(block, f"{step.name}_attn").qkv.weight, block.attn.qkv.weight)
            assert torch.equal(getattr(block, f"{step.name}_norm1").weight, block.norm1.weight)
            # copies, not ties: training the extra step must not move the spatial attention
            assert getattr(block, f"{step.name}_attn").qkv.weight.data_ptr() != block.attn.qkv.weight.data_ptr()


def timm_names(vit: ViTForImageClassification) -> dict[str, torch.Tensor]:
    """The state dict timm's vit_base_patch16_224 would have for these weights (written out
    here by hand, independently of tsf's adapters)."""
    s = vit.state_dict()
    out = {"cls_token": s["vit.embeddings.cls_token"], "pos_embed": s["vit.embeddings.position_embeddings"],
           "patch_embed.proj.weight": s["vit.embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": s["vit.embeddings.patch_embeddings.projection.bias"],
           "norm.weight": s["vit.layernorm.weight"], "norm.bias": s["vit.layernorm.bias"],
           "head.weight": s["classifier.weight"], "head.bias": s["classifier.bias"]}
    for i, layer in enumerate(vit.vit.layers):
        att = layer.attention
        for p in ("weight", "bias"):
            out[f"blocks.{i}.norm1.{p}"] = getattr(layer.layernorm_before, p)
            out[f"blocks.{i}.attn.qkv.{p}"] = torch.cat([getattr(att.q_proj, p), getattr(att.k_proj, p),
                                                        getattr(att.v_proj, p)])
            out[f"blocks.{i}.attn.proj.{p}"] = getattr(att.o_proj, p)
            out[f"blocks.{i}.norm2.{p}"] = getattr(layer.layernorm_after, p)
            out[f"blocks.{i}.mlp.fc1.{p}"] = getattr(layer.mlp.fc1, p)
            out[f"blocks.{i}.mlp.fc2.{p}"] = getattr(layer.mlp.fc2, p)
    return {k: v.detach().clone() for k, v in out.items()}


@pytest.mark.parametrize("attention", ["space", "divided"])
def test_inflated_timm_vit_gives_the_vit_logits(attention):
    vit = hf_vit(layer_norm_eps=1e-6)  # timm's ViT uses 1e-6, tsf's default for timm names
    image = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    adapted = adapt(timm_names(vit), attention=attention, num_frames=3, num_heads=2)
    assert adapted.layout == "timm_vit"
    model = tsf.load_pretrained(timm_names(vit), attention=attention, num_frames=3, num_heads=2)
    assert_rel_close(run(model, still_clip(image, 3)), vit_logits(vit, image))
    from_hf = tsf.load_pretrained(vit.state_dict(), attention=attention, num_frames=3, num_heads=2,
                                  layer_norm_eps=1e-6)
    assert_same_state(model, from_hf)


def test_inflation_from_a_hf_vit_folder_resizes_and_replaces_the_head(tmp_path):
    vit = hf_vit()
    vit.save_pretrained(tmp_path)
    torch.manual_seed(0)
    model = tsf.load_pretrained(tmp_path, img_size=24, num_frames=6, num_classes=7)
    assert (model.config.img_size, model.config.num_frames, model.config.num_classes) == (24, 6, 7)
    assert model.config.num_heads == 2 and model.config.layer_norm_eps == 1e-12  # from config.json
    expected = resize_pos_embed(vit.vit.embeddings.position_embeddings.detach(), (4, 4), (6, 6), "bicubic")
    assert torch.equal(model.pos_embed, expected)
    assert model.head.weight.shape == (7, 32) and torch.count_nonzero(model.head.bias) == 0
    block = model.blocks[1]  # divided by default; its temporal step a copy, not a tie
    assert torch.equal(block.temporal_attn.qkv.weight, block.attn.qkv.weight)
    assert block.temporal_attn.qkv.weight.data_ptr() != block.attn.qkv.weight.data_ptr()
    assert 0 < model.head.weight.std() < 0.05  # trunc-normal std 0.02
    assert torch.isfinite(run(model, clip(frames=6, size=24))).all()


def test_hf_vit_model_without_head_keeps_its_features():
    vit = hf_vit(cls=ViTModel)  # has a pooler, which a classifier does not use
    assert any(k.startswith("pooler.") for k in vit.state_dict())
    model = tsf.load_pretrained(vit.state_dict(), attention="space", num_frames=2, num_heads=2)
    assert model.config.num_classes == 0
    image = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert_rel_close(model.forward_features(still_clip(image, 2)), vit(image).last_hidden_state[:, 0])


# --------------------------------------------------------------------------------------
# The authors' checkpoints
# --------------------------------------------------------------------------------------


def authors_cfg(attention="divided_space_time", frames=8, crop=224, classes=400) -> str:
    """A cfg as the authors' training code stores it (yacs dump: YAML text)."""
    return yaml.safe_dump({
        "DATA": {"NUM_FRAMES": frames, "SAMPLING_RATE": 32, "TRAIN_CROP_SIZE": crop, "TEST_CROP_SIZE": crop},
        "MODEL": {"ARCH": "vit", "MODEL_NAME": "vit_base_patch16_224", "NUM_CLASSES": classes},
        "TIMESFORMER": {"ATTENTION_TYPE": attention, "PRETRAINED_MODEL": ""},
        "SOLVER": {"BASE_LR": 0.005, "MAX_EPOCH": 15, "MOMENTUM": 0.9},
    })


def write_authors(path: Path, model: tsf.TimeSformer, cfg: str | None = None, **changes) -> Path:
    """torch.save in the authors' nesting: {epoch, model_state ('model.' keys), optimizer_state, cfg}."""
    cfg = cfg if cfg is not None else authors_cfg(
        {"space": "space_only", "joint": "joint_space_time"}.get(model.config.attention, "divided_space_time"),
        model.config.num_frames, model.config.img_size, model.config.num_classes)
    state = {f"model.{k}": v.clone() for k, v in model.state_dict().items()}
    for key, value in changes.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    torch.save({"epoch": 15, "model_state": state, "cfg": cfg,
                "optimizer_state": {"state": {0: {"momentum_buffer": torch.zeros(3)}},
                                    "param_groups": [{"lr": 5e-5, "momentum": 0.9, "params": [0]}]}}, path)
    return path


@pytest.mark.parametrize("attention", ["space", "joint", "divided"])
def test_authors_checkpoint_round_trips(attention, tmp_path):
    model = our_model(attention)
    path = write_authors(tmp_path / "TimeSformer_K400.pyth", model)
    loaded = tsf.load_pretrained(path, num_heads=2)
    assert adapt(path, num_heads=2).layout == "authors"
    assert loaded.config == model.config.replace(drop_path_rate=loaded.config.drop_path_rate)
    assert_same_state(loaded, model)
    assert torch.equal(run(loaded, clip()), run(model, clip()))


def test_authors_bare_state_dict_without_prefix(tmp_path):
    model = our_model("divided")
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    assert_same_state(tsf.load_pretrained(tmp_path / "bare.pth", num_heads=2), model)


@pytest.mark.parametrize("kind,frames,size", [("HR", 16, 32), ("L", 96, 16)])
def test_hr_and_l_checkpoints_load_with_their_frames_and_crop(kind, frames, size, tmp_path):
    """TimeSformer-HR (16 x 448: twice the base grid) and -L (96 frames), in tiny dims. The
    authors' loader resizes the time embedding to 8 frames and fails on them; we read T and
    the grid from the shapes (and check them against the cfg)."""
    model = our_model("divided", num_frames=frames, img_size=size)
    path = write_authors(tmp_path / f"TimeSformer_divST_{kind}.pyth", model)
    loaded = tsf.load_pretrained(path, num_heads=2)
    assert (loaded.config.num_frames, loaded.config.img_size) == (frames, size)
    video = clip(batch=1, frames=frames, size=size)
    assert torch.equal(run(loaded, video), run(model, video))


@pytest.mark.parametrize("frames,size", [(8, 16), (24, 48), (5, 20)])
def test_resizing_to_other_frames_and_crops(frames, size, tmp_path):
    """Loading at another size resizes the embeddings the way the model does at run time
    (nearest), so the resized model computes what the original computes on such clips."""
    model = our_model("divided", num_frames=16, img_size=32)
    path = write_authors(tmp_path / "hr.pyth", model)
    resized = tsf.load_pretrained(path, num_heads=2, num_frames=frames, img_size=size)
    assert (resized.config.num_frames, resized.config.img_size) == (frames, size)
    assert resized.time_embed.shape == (1, frames, 32) and resized.pos_embed.shape == (1, 1 + (size // 4) ** 2, 32)
    video = clip(batch=1, frames=frames, size=size)
    assert_rel_close(run(resized, video), run(model, video), tol=1e-6)


def test_cfg_that_disagrees_with_the_shapes_is_an_error_naming_both(tmp_path):
    model = our_model("divided", num_frames=16)
    path = write_authors(tmp_path / "x.pyth", model, cfg=authors_cfg(frames=8, crop=16, classes=5))
    with pytest.raises(CheckpointError) as err:
        tsf.load_pretrained(path, num_heads=2)
    assert str(path) in str(err.value) and "DATA.NUM_FRAMES: 8" in str(err.value)
    assert "time_embed is (1, 16, 32)" in str(err.value)
    path = write_authors(tmp_path / "y.pyth", model, cfg=authors_cfg(frames=16, crop=16, classes=400))
    with pytest.raises(CheckpointError, match=r"MODEL.NUM_CLASSES: 400.*head.weight is \(5, 32\)"):
        tsf.load_pretrained(path, num_heads=2)
    path = write_authors(tmp_path / "z.pyth", model, cfg=authors_cfg("joint_space_time", 16, 16, 5))
    with pytest.raises(CheckpointError, match=r"asks for 'joint'.*fit only \['divided'\]"):
        tsf.load_pretrained(path, num_heads=2)


def test_head_replaced_only_when_num_classes_is_given(tmp_path):
    model = our_model("divided")
    path = write_authors(tmp_path / "k400.pyth", model)
    loaded = tsf.load_pretrained(path, num_heads=2, num_classes=174)
    assert loaded.head.weight.shape == (174, 32)
    assert torch.equal(loaded.blocks[1].mlp.fc2.weight, model.blocks[1].mlp.fc2.weight)
    with pytest.raises(CheckpointError, match=r"cannot set embed_dim=64: patch_embed.proj.weight is \(32, 3, 4, 4\)"):
        tsf.load_pretrained(path, num_heads=2, embed_dim=64)
    with pytest.raises(CheckpointError, match="asks for 'axial'"):
        tsf.load_pretrained(path, num_heads=2, attention="axial")
    with pytest.raises(TypeError, match="unknown override"):
        tsf.load_pretrained(path, heads=2)
    with pytest.raises(CheckpointError, match="pass num_heads"):
        tsf.load_pretrained(path)


# --------------------------------------------------------------------------------------
# Safety and bad input
# --------------------------------------------------------------------------------------


class Planted:
    """Unpickling this calls open(marker, 'w'): code that runs on load, creating a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_would_run_code_is_refused_and_the_code_does_not_run(writer, tmp_path):
    marker = tmp_path / "pwned"
    payload = {"epoch": 1, "model_state": {"model.cls_token": torch.zeros(1, 1, 4)}, "cfg": Planted(marker)}
    path = tmp_path / "TimeSformer_divST_8x32_224_K400.pyth"
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
        pickle.loads(pickle.dumps(Planted(tmp_path / "live")))  # the payload is real: plain pickle runs it
        assert (tmp_path / "live").exists()
    with pytest.raises(CheckpointError) as err:
        tsf.load_pretrained(path)
    message = str(err.value)
    assert str(path) in message and "refused" in message and "execute code" in message
    assert "weights_only=True" in message
    assert not marker.exists()


def test_truncated_text_and_empty_files_fail_naming_the_file(tmp_path):
    good = write_authors(tmp_path / "good.pyth", our_model())
    truncated = tmp_path / "truncated.pyth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    tsf.save_pretrained(our_model(), tmp_path / "ours")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes((tmp_path / "ours" / "model.safetensors").read_bytes()[:300])
    for path in (truncated, cut):
        with pytest.raises(CheckpointError, match="truncated or not a checkpoint") as err:
            tsf.load_pretrained(path)
        assert str(path) in str(err.value)
    noise = tmp_path / "noise.pth"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for path in (text, empty, noise):  # not "would execute code": they are not pickles at all
        with pytest.raises(CheckpointError) as err:
            tsf.load_pretrained(path)
        assert str(err.value) == f"{path}: not a checkpoint (not a pickle or zip archive)"
    with pytest.raises(FileNotFoundError):
        tsf.load_pretrained(tmp_path / "missing.pyth")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(CheckpointError, match="needs one of model.safetensors"):
        tsf.load_pretrained(tmp_path / "empty_folder")


def test_unknown_layout_names_the_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, path)
    with pytest.raises(CheckpointError, match=r"unknown key layout.*conv1.weight \(64, 3, 7, 7\)") as err:
        tsf.load_pretrained(path)
    assert str(path) in str(err.value)
    with pytest.raises(CheckpointError, match=r"<state dict>: not a state dict.*epoch \(int\)"):
        tsf.load_pretrained({"epoch": 3, "cls_token": torch.zeros(1)})


def test_a_wrong_shape_a_missing_and_an_unexpected_key_are_named(tmp_path):
    model = our_model("divided")
    wrong = write_authors(tmp_path / "wrong.pyth", model, **{"model.blocks.1.mlp.fc2.weight": torch.zeros(32, 60)})
    with pytest.raises(CheckpointError) as err:
        tsf.load_pretrained(wrong, num_heads=2)
    assert str(wrong) in str(err.value)
    assert "blocks.1.mlp.fc2.weight (32, 60) (the model needs (32, 64))" in str(err.value)
    missing = write_authors(tmp_path / "missing.pyth", model, **{"model.blocks.1.norm2.bias": None})
    with pytest.raises(CheckpointError, match=r"missing.pyth .*missing keys: blocks.1.norm2.bias \(32,\)"):
        tsf.load_pretrained(missing, num_heads=2)
    extra = write_authors(tmp_path / "extra.pyth", model, **{"model.blocks.0.ls1.gamma": torch.ones(32)})
    with pytest.raises(CheckpointError, match=r"unexpected keys: blocks.0.ls1.gamma \(32,\)"):
        tsf.load_pretrained(extra, num_heads=2)


# --------------------------------------------------------------------------------------
# Our format
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("pos_embed", ["space_time", "space", "none"])
@pytest.mark.parametrize("attention", ATTENTION_SCHEMES)
def test_save_and_load_are_bit_exact(attention, pos_embed, tmp_path):
    model = our_model(attention, img_size=20, num_frames=3, layer_norm_eps=1e-5, pos_embed=pos_embed)
    folder = tsf.save_pretrained(model, tmp_path / attention)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["format"] == "tsf.TimeSformer" and meta["tsf_version"] == tsf.__version__
    for source in (folder, folder / "model.safetensors", model):  # the file alone carries the config too
        loaded = tsf.load_pretrained(source)
        assert loaded.config == model.config and not loaded.training
        assert_same_state(loaded, model)
        assert torch.equal(run(loaded, clip(frames=3, size=20)), run(model, clip(frames=3, size=20)))


def test_save_and_load_keep_the_dtype_and_do_not_alias_the_caller(tmp_path):
    model = our_model("divided").double()
    loaded = tsf.load_pretrained(tsf.save_pretrained(model, tmp_path / "f64"))
    assert loaded.pos_embed.dtype == torch.float64
    assert_same_state(loaded, model)
    state = model.state_dict()
    before = state["pos_embed"].clone()
    copy = tsf.load_pretrained(state, num_heads=2)
    with torch.no_grad():
        copy.pos_embed.add_(1.0)
    assert torch.equal(state["pos_embed"], before)  # the caller's tensors are untouched


def test_cli_convert_writes_a_loadable_folder(tmp_path, capsys):
    from tsf.__main__ import main

    model = our_model("divided", num_frames=16, img_size=32)
    path = write_authors(tmp_path / "hr.pyth", model)
    assert main(["convert", str(path), str(tmp_path / "out"), "--num-heads", "2"]) == 0
    assert "divided, 16 frames x 32 px" in capsys.readouterr().out
    assert_same_state(tsf.load_pretrained(tmp_path / "out"), model)
    assert main(["convert", str(path), str(tmp_path / "hf"), "--num-heads", "2", "--hf"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "timesformer"
    assert_same_state(tsf.load_pretrained(tmp_path / "hf"), model)
    assert main(["convert", str(tmp_path / "nothing.pyth"), str(tmp_path / "x")]) == 2



def test_time_embedding_start_is_the_authors_zeros_unless_asked():
    """``time_embed_init`` (the study's departure) starts the time embedding of fresh and of
    inflated models; its default keeps the authors' zeros, and a checkpoint's own is never touched."""
    vit = hf_vit()
    for kind in TIME_EMBED_INITS:
        for seed in (0, 1):
            torch.manual_seed(seed)
            fresh = tsf.TimeSformer(tsf.preset("tiny", time_embed_init=kind, time_embed_init_std=0.3))
            torch.manual_seed(seed)
            inflated = tsf.load_pretrained(vit.state_dict(), attention="divided", num_frames=4, num_heads=2,
                                           time_embed_init=kind, time_embed_init_std=0.3)
            for model in (fresh, inflated):
                te = model.time_embed.detach()[0]  # (T, D)
                assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if "_fc." in n)
                if kind == "zeros":
                    assert torch.count_nonzero(te) == 0
                elif kind == "trunc_normal":
                    assert te.abs().max() <= 0.6 and 0.15 < te.std() < 0.36
                else:  # the same code in every seed: centred over frames, RMS 0.3, order readable
                    assert torch.allclose(te, 0.3 * sinusoidal_time_embed(4, 32)[0])
                    assert torch.allclose(te.mean(0), torch.zeros(32), atol=1e-6)
                    assert abs(te.pow(2).mean().sqrt() - 0.3) < 1e-5
                    slow = te[:, 15]  # the slowest sine pair: monotonic over the clip
                    assert (slow.diff() > 0).all()
    trained = tsf.TimeSformer(tsf.preset("tiny"))
    with torch.no_grad():
        trained.time_embed.fill_(0.7)
    loaded = tsf.load_pretrained(trained.state_dict(), num_heads=2, time_embed_init="sinusoidal")
    assert torch.all(loaded.time_embed == 0.7), "a checkpoint's time embedding is kept"
    assert torch.count_nonzero(sinusoidal_time_embed(1, 8)) == 0, "one frame has no order"
