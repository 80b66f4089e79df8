"""Reading real mp4 files: the frames decoded are exactly the frames the sampling chose."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tsf.data import (
    VideoError,
    decode_frames,
    dense_indices,
    probe_video,
    read_clip,
    read_clips,
    segment_indices,
    write_video,
)

from .videogen import coded_frames, coded_video, corrupt_files, damaged_files, read_codes

# name: (frames, fps, height, width, quality)
VIDEOS = {
    "v30": (90, 30, 64, 96, "standard"),
    "v60": (240, 60, 72, 128, "standard"),
    "v24": (60, 24, 96, 80, "high"),  # portrait
    "short": (10, 30, 64, 96, "standard"),
    "w48": (30, 24, 64, 48, "standard"),  # a width decord 0.6 mis-sizes: read through PyAV
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    return {name: coded_video(root / f"{name}.mp4", *spec) for name, spec in VIDEOS.items()}


@pytest.mark.parametrize("name", list(VIDEOS))
def test_probe_and_every_frame_decodes_to_its_number(videos, name):
    num, fps, height, width, _ = VIDEOS[name]
    info = probe_video(videos[name])
    assert (info.num_frames, info.height, info.width) == (num, height, width)
    assert info.fps == pytest.approx(fps)
    frames = decode_frames(videos[name], list(range(num)))
    assert frames.shape == (num, height, width, 3) and frames.dtype == torch.uint8
    assert read_codes(frames) == list(range(num))


def test_dense_test_clip_at_60fps_takes_the_30fps_window_in_the_middle(videos):
    # 4 frames at rate 8 = a window of 32 frames at 30 fps = 64 frames of the 60 fps file
    clip = read_clip(videos["v60"], 4, sampling_rate=8, mode="test")
    start = (240 - 64) / 2
    assert read_codes(clip) == [math.floor(start + k * 63 / 3) for k in range(4)] == [88, 109, 130, 151]
    first = read_clip(videos["v60"], 4, sampling_rate=8, mode="test", test_position="start")
    assert read_codes(first) == [0, 21, 42, 63]


def test_dense_at_24fps_spans_the_same_time(videos):
    clip = read_clip(videos["v24"], 4, sampling_rate=8, mode="test", test_position="start")
    codes = read_codes(clip)
    assert codes == [math.floor(k * (8 * 4 / 30 * 24 - 1) / 3) for k in range(4)]  # window 25.6 frames
    assert clip.shape == (4, 96, 80, 3)


def test_k_test_clips_are_spread_and_decoded_in_one_pass(videos):
    clips = read_clips(videos["v30"], 4, sampling_rate=4, num_clips=3)  # window 16, delta 74
    assert clips.shape == (3, 4, 64, 96, 3)
    for k, clip in enumerate(clips):
        expected = dense_indices(90, 4, 4, mode="test", num_clips=3, clip_index=k).indices
        assert read_codes(clip) == list(expected)
        assert expected[0] == math.floor(74 * (k + 0.5) / 3)
    single = read_clip(videos["v30"], 4, sampling_rate=4, mode="test", num_clips=3, clip_index=2)
    assert torch.equal(single, clips[2])


def test_segment_sampling_reads_segment_middles_and_random_frames(videos):
    clip = read_clip(videos["v30"], 6, sampling="segment", mode="test")
    assert read_codes(clip) == [7, 22, 37, 52, 67, 82]  # segments of 15 frames, middles at +7
    draws = [read_codes(read_clip(videos["v30"], 6, sampling="segment", generator=torch.Generator().manual_seed(s)))
             for s in range(4)]
    assert all(15 * i <= c < 15 * (i + 1) for d in draws for i, c in enumerate(d))
    assert len({tuple(d) for d in draws}) > 1


def test_train_clip_is_reproducible_from_the_generator(videos):
    a = read_clip(videos["v60"], 4, sampling_rate=8, generator=torch.Generator().manual_seed(5))
    b = read_clip(videos["v60"], 4, sampling_rate=8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    codes = read_codes(a)
    assert codes[-1] - codes[0] == 63 and 0 <= codes[0] <= 176
    starts = {read_codes(read_clip(videos["v60"], 4, sampling_rate=8,
                                   generator=torch.Generator().manual_seed(s)))[0] for s in range(6)}
    assert len(starts) > 3


def test_short_video_is_padded_with_its_last_frame(videos):
    clip = read_clip(videos["short"], 8, sampling_rate=2, mode="test")  # needs 16 frames, has 10
    assert read_codes(clip) == [0, 2, 4, 6, 8, 9, 9, 9]
    seg = read_clip(videos["short"], 12, sampling="segment", mode="test")
    assert read_codes(seg) == list(range(10)) + [9, 9]
    assert segment_indices(10, 12).padded == 2


def test_resize_while_decoding(videos):
    clip = read_clip(videos["v60"], 4, sampling_rate=8, mode="test", size=36)  # short side 36
    assert clip.shape == (4, 36, 64, 3)
    assert read_codes(clip) == [88, 109, 130, 151]
    exact = read_clip(videos["v24"], 4, sampling_rate=8, mode="test", size=(50, 40))
    assert exact.shape == (4, 50, 40, 3)


def test_decord_width_bug_falls_back_to_pyav(videos):
    clip = read_clip(videos["w48"], 5, sampling="segment", mode="test")
    assert clip.shape == (5, 64, 48, 3) and read_codes(clip) == [3, 9, 15, 21, 27]
    small = read_clip(videos["v30"], 5, sampling="segment", mode="test", size=(32, 48))  # decoding to width 48
    assert small.shape == (5, 32, 48, 3) and read_codes(small) == [9, 27, 45, 63, 81]


def test_bad_files_raise_a_video_error_naming_file_and_reason(videos, tmp_path):
    bad = corrupt_files(tmp_path / "bad", videos["v30"])
    bad.update(damaged_files(tmp_path / "bad", videos["v30"]))
    expected = {
        "empty": "empty file",
        "random": "cannot be opened",
        "text": "cannot be opened",
        "truncated": "cannot be opened",
        "cut": "cannot be opened|frames cannot be decoded",
        "garbled": "cannot be opened|frames cannot be decoded",
    }
    for name, path in bad.items():
        with pytest.raises(VideoError, match=expected[name]) as info:
            read_clip(path, 8, sampling="segment", mode="test")
        assert info.value.path == str(path) and str(path) in str(info.value)
    with pytest.raises(VideoError, match="missing"):
        read_clip(tmp_path / "nowhere.mp4", 8)
    with pytest.raises(VideoError, match="not a file"):
        read_clip(tmp_path, 8)


def test_write_video_lossless_round_trip_and_clear_errors(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 17, 23, 3), dtype=np.uint8)  # odd sizes, noise
    path = write_video(tmp_path / "exact.mp4", frames, 25, quality="lossless")
    assert torch.equal(decode_frames(path, list(range(5))), torch.from_numpy(frames))
    with pytest.raises(ValueError, match="needs even frame sizes"):
        write_video(tmp_path / "odd.mp4", frames, quality="standard")
    with pytest.raises(ValueError, match=r"expected uint8 frames \(T, H, W, 3\)"):
        write_video(tmp_path / "bad.mp4", frames[..., 0])
    assert read_codes(coded_frames(3, 8, 40)) == [0, 1, 2]
