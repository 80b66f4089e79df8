"""The authors' clip transforms in torch: shapes, crop positions, flip, normalisation, purity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tsf.data import EvalTransform, TrainTransform, denormalize, normalize, spatial_crops
from tsf.data.transforms import (
    crop_offsets,
    horizontal_flip,
    random_crop,
    random_horizontal_flip,
    random_short_side_resize,
    short_side_resize,
    short_side_shape,
)


def coordinate_clip(t: int, h: int, w: int) -> torch.Tensor:
    """Channel 0 = row, channel 1 = column, channel 2 = frame: every pixel says where it came from."""
    rows = torch.arange(h).view(1, h, 1).expand(t, h, w)
    cols = torch.arange(w).view(1, 1, w).expand(t, h, w)
    frames = torch.arange(t).view(t, 1, 1).expand(t, h, w)
    return torch.stack([rows, cols, frames], dim=-1).to(torch.uint8)


def test_short_side_shape_floors_the_long_side():
    assert short_side_shape(256, 340, 224) == (224, 297)  # floor(340 / 256 * 224) = 297
    assert short_side_shape(340, 256, 224) == (297, 224)
    assert short_side_shape(100, 100, 32) == (32, 32)


def test_resize_matches_float_bilinear_and_keeps_uint8():
    clip = torch.randint(0, 256, (3, 40, 60, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = short_side_resize(clip, 24)
    assert out.dtype == torch.uint8 and out.shape == (3, 24, 36, 3)
    ref = F.interpolate(clip.permute(0, 3, 1, 2).float(), size=(24, 36), mode="bilinear", align_corners=False)
    assert (out.permute(0, 3, 1, 2).float() - ref).abs().max() <= 1.0
    assert short_side_resize(clip, 40) is clip  # already the right size: no work


def test_random_short_side_resize_covers_the_jitter_range():
    clip = torch.zeros(1, 20, 30, 3, dtype=torch.uint8)
    sizes = {random_short_side_resize(clip, 8, 12, torch.Generator().manual_seed(s)).shape[1] for s in range(60)}
    assert sizes == {8, 9, 10, 11, 12}


def test_random_crop_is_a_window_of_the_input_and_seeded():
    clip = coordinate_clip(2, 30, 40)
    a = random_crop(clip, 16, torch.Generator().manual_seed(1))
    b = random_crop(clip, 16, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (2, 16, 16, 3)
    top, left = int(a[0, 0, 0, 0]), int(a[0, 0, 0, 1])
    assert torch.equal(a, clip[:, top : top + 16, left : left + 16])
    corners = {tuple(random_crop(clip, 16, torch.Generator().manual_seed(s))[0, 0, 0, :2].tolist()) for s in range(40)}
    assert len(corners) > 20 and all(0 <= y <= 14 and 0 <= x <= 24 for y, x in corners)
    with pytest.raises(ValueError, match="cannot crop 50x50 from frames of 30x40"):
        random_crop(clip, 50)


def test_three_crops_left_centre_right_and_top_centre_bottom():
    landscape = coordinate_clip(1, 20, 51)
    crops = spatial_crops(landscape, 20, 3)
    assert crops.shape == (3, 1, 20, 20, 3)
    assert [int(c[0, 0, 0, 1]) for c in crops] == [0, 16, 31]  # left, ceil(31/2), right
    assert all(int(c[0, 0, 0, 0]) == 0 for c in crops)
    portrait = coordinate_clip(1, 51, 20)
    assert [int(c[0, 0, 0, 0]) for c in spatial_crops(portrait, 20, 3)] == [0, 16, 31]
    assert crop_offsets(20, 51, 20, 1) == [(0, 16)]


def test_flip_mirrors_columns_only():
    clip = coordinate_clip(2, 4, 5)
    flipped = horizontal_flip(clip)
    assert torch.equal(flipped[..., 1], 4 - clip[..., 1]) and torch.equal(flipped[..., 0], clip[..., 0])
    flips = [random_horizontal_flip(clip, 0.5, torch.Generator().manual_seed(s))[0, 0, 0, 1].item() for s in range(40)]
    assert set(flips) == {0, 4}


def test_normalise_values_and_layout():
    clip = torch.tensor([0, 255, 115], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 4, 3).contiguous()
    out = normalize(clip)
    assert out.shape == (3, 2, 3, 4) and out.dtype == torch.float32
    assert out[0].unique().item() == pytest.approx((0 - 0.45) / 0.225)
    assert out[1].unique().item() == pytest.approx((1 - 0.45) / 0.225)
    assert out[2].unique().item() == pytest.approx((115 / 255 - 0.45) / 0.225, abs=1e-6)
    assert torch.equal(denormalize(out), clip)


def test_train_transform_shapes_flip_off_and_purity():
    clip = coordinate_clip(4, 60, 80)
    before = clip.clone()
    out = TrainTransform(crop_size=32, min_scale=40, max_scale=48, flip=False)(clip, torch.Generator().manual_seed(0))
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.float32
    assert torch.equal(clip, before)
    # without flip, columns increase left to right in every sample
    for s in range(10):
        cols = denormalize(TrainTransform(32, 40, 48, flip=False)(clip, torch.Generator().manual_seed(s)))[0, 0, :, 1]
        assert (cols[1:].int() - cols[:-1].int() >= 0).all()


def test_eval_transform_views():
    clip = coordinate_clip(4, 60, 90)
    views = EvalTransform(crop_size=30, num_crops=3)(clip)
    assert views.shape == (3, 3, 4, 30, 30)
    firsts = [int(denormalize(v)[0, 0, 0, 1]) for v in views]  # short side 60 -> 30: columns halve
    assert firsts[0] < firsts[1] < firsts[2]
    assert EvalTransform(crop_size=30, num_crops=1)(clip).shape == (1, 3, 4, 30, 30)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected a uint8 clip"):
        short_side_resize(torch.zeros(2, 8, 8, 3), 4)
    with pytest.raises(ValueError, match=r"expected a clip \(T, H, W, C\)"):
        short_side_resize(torch.zeros(8, 8, 3, dtype=torch.uint8), 4)
