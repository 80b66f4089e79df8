"""Which frames a clip takes: the pure index functions of tsf.data.video."""

from __future__ import annotations

import math

import pytest
import torch

from tsf.data import ClipSampling, dense_indices, segment_indices


def expected_dense(n: int, t: int, rate: int, fps: float, start: float) -> list[int]:
    """The authors' recipe written out: T points of linspace over rate*T frames at 30 fps, floored, clamped."""
    window = rate * t / 30 * fps
    end = start + window - 1
    return [min(n - 1, max(0, math.floor(start + k * (end - start) / (t - 1)))) for k in range(t)]


def test_dense_60fps_window_is_measured_at_30fps():
    # 8 frames at rate 8 cover 64 frames at 30 fps = 2.13 s = 128 frames of a 60 fps file
    idx = dense_indices(600, 8, 8, video_fps=60, mode="test", test_position="start").indices
    assert idx[0] == 0 and idx[-1] == 127
    assert list(idx) == expected_dense(600, 8, 8, 60, 0.0)
    assert idx == (0, 18, 36, 54, 72, 90, 108, 127)  # floor(linspace(0, 127, 8))
    same_time_at_30 = dense_indices(300, 8, 8, video_fps=30, mode="test", test_position="start").indices
    assert idx[-1] / 60 == pytest.approx(same_time_at_30[-1] / 30, abs=1 / 30)


@pytest.mark.parametrize("fps", [24.0, 30.0, 60.0])
def test_dense_test_middle_is_centred(fps):
    n, t, rate = 400, 8, 4
    window = rate * t / 30 * fps
    idx = dense_indices(n, t, rate, video_fps=fps, mode="test").indices
    assert list(idx) == expected_dense(n, t, rate, fps, (n - window) / 2)
    assert abs((idx[0] + idx[-1]) / 2 - (n - 1) / 2) <= 1


def test_dense_start_is_the_authors_single_clip():
    assert dense_indices(400, 4, 8, mode="test", test_position="start").indices == (0, 10, 20, 31)  # floor(linspace(0, 31, 4))


def test_dense_k_test_windows_spread_evenly():
    n, t, rate, k = 1000, 4, 8, 5  # window 32 frames, delta 968
    for position, offset in (("middle", 0.5), ("start", 0.0)):
        starts = [dense_indices(n, t, rate, mode="test", num_clips=k, clip_index=i, test_position=position).indices[0]
                  for i in range(k)]
        assert starts == [math.floor(968 * (i + offset) / k) for i in range(k)]
    last = dense_indices(n, t, rate, mode="test", num_clips=k, clip_index=k - 1).indices
    assert last[-1] <= n - 1


def test_dense_train_is_random_seeded_and_in_range():
    n, t, rate = 300, 8, 4  # window 32, start in [0, 268]
    draws = [dense_indices(n, t, rate, generator=torch.Generator().manual_seed(s)).indices for s in range(50)]
    assert len({d[0] for d in draws}) > 30
    assert all(0 <= d[0] <= 268 and d[-1] - d[0] == 31 for d in draws)
    again = dense_indices(n, t, rate, generator=torch.Generator().manual_seed(7)).indices
    assert again == draws[7]


def test_dense_short_video_repeats_last_frame():
    got = dense_indices(20, 8, 8, mode="test")  # needs 64 frames
    assert got.indices == (0, 9, 18, 19, 19, 19, 19, 19)
    assert got.padded == 5
    assert dense_indices(64, 8, 8, mode="test").padded == 0
    assert dense_indices(63, 8, 8, mode="test").padded == 1


def test_dense_unknown_fps_falls_back_to_target():
    a = dense_indices(500, 8, 8, video_fps=float("nan"), mode="test").indices
    assert a == dense_indices(500, 8, 8, video_fps=30.0, mode="test").indices
    assert dense_indices(500, 8, 8, video_fps=0.0, mode="test").indices == a


def test_segment_test_takes_middle_of_equal_segments():
    assert segment_indices(64, 8, mode="test").indices == (4, 12, 20, 28, 36, 44, 52, 60)
    assert segment_indices(10, 4, mode="test").indices == (1, 3, 6, 8)  # segments [0,2) [2,5) [5,7) [7,10)
    assert segment_indices(8, 8, mode="test").indices == tuple(range(8))


def test_segment_train_one_random_frame_per_segment():
    n, t = 45, 8
    bounds = [(i * n) // t for i in range(t + 1)]
    seen = [set() for _ in range(t)]
    for s in range(60):
        idx = segment_indices(n, t, generator=torch.Generator().manual_seed(s)).indices
        for i, k in enumerate(idx):
            assert bounds[i] <= k < bounds[i + 1]
            seen[i].add(k)
    assert all(len(s) == bounds[i + 1] - bounds[i] for i, s in enumerate(seen))  # every frame gets drawn
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert segment_indices(n, t, generator=g()) == segment_indices(n, t, generator=g())


def test_segment_short_video_pads_with_last_frame():
    got = segment_indices(5, 8, mode="train")
    assert got.indices == (0, 1, 2, 3, 4, 4, 4, 4) and got.padded == 3


def test_clip_sampling_dispatch_and_frames_needed():
    dense = ClipSampling(num_frames=8, sampling_rate=32)
    assert dense.frames_needed(30.0) == 256 and dense.frames_needed(60.0) == 512 and dense.frames_needed(24.0) == 204
    assert ClipSampling(num_frames=8, sampling="segment").frames_needed(60.0) == 8
    assert dense.indices(600, 60.0, mode="test") == dense_indices(600, 8, 32, video_fps=60.0, mode="test")
    with pytest.raises(ValueError, match="segment sampling takes one clip"):
        ClipSampling(sampling="segment", num_clips=3)
    with pytest.raises(ValueError, match="sampling must be one of"):
        ClipSampling(sampling="uniform")
    with pytest.raises(ValueError, match="clip_index"):
        dense_indices(100, 8, 2, mode="test", num_clips=2, clip_index=2)
