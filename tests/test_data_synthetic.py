"""The synthetic study tasks keep their promises."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from tsf.__main__ import main
from tsf.data import TASKS, ClipSampling, KineticsDataset, SyntheticVideos, mirror_pairs, normalize, task_classes
from tsf.data.synthetic import MOTION_DESIGNS, cue_visibility


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("frames, size", [(8, 32), (1, 16), (5, 33), (16, 48)])
def test_shapes_types_and_item(task, frames, size):
    ds = SyntheticVideos(task, 12, num_frames=frames, size=size)
    s = ds.sample(3)
    assert s.frames.shape == (frames, size, size, 3) and s.frames.dtype == torch.uint8
    assert s.mask.shape == (frames, size, size) and s.mask.dtype == torch.bool
    assert s.parts.shape == (2 if task == "long_range" else 1, frames, size, size)
    assert s.label == 3 % ds.num_classes and s.class_name == ds.classes[s.label] and len(s.frame_indices) == frames
    clip, label = ds[3]
    assert label == s.label and torch.equal(clip, normalize(s.frames)) and clip.shape == (3, frames, size, size)


def test_classes_and_chance():
    assert [len(task_classes(t)) for t in TASKS] == [10, 10, 2, 2]
    assert mirror_pairs("motion") == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert mirror_pairs("long_range") == [(0, 1)] and mirror_pairs("appearance") == []
    assert task_classes("motion")[6:8] == ("rotating clockwise", "rotating anticlockwise")
    with pytest.raises(ValueError, match="unknown synthetic task 'colour'"):
        SyntheticVideos("colour", 1)
    with pytest.raises(ValueError, match="split must be one of"):
        SyntheticVideos("motion", 1, split="dev")


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_from_seed_split_index(task):
    a = SyntheticVideos(task, 4, seed=3).sample(2)
    b = SyntheticVideos(task, 4, seed=3).sample(2)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.mask, b.mask)
    assert not torch.equal(a.frames, SyntheticVideos(task, 4, seed=4).sample(2).frames)
    assert not torch.equal(a.frames, SyntheticVideos(task, 4, seed=3, split="val").sample(2).frames)
    assert not torch.equal(SyntheticVideos(task, 4, seed=3, split="test").sample(2).frames,
                           SyntheticVideos(task, 4, seed=3, split="val").sample(2).frames)


def test_items_are_drawn_once_and_kept_within_the_budget(monkeypatch):
    """dataset[i] keeps the clips it drew (up to cache_bytes): a later epoch gets the same clips without drawing."""
    drawn = []
    draw = SyntheticVideos.sample
    monkeypatch.setattr(SyntheticVideos, "sample", lambda self, i, **kw: drawn.append(i) or draw(self, i, **kw))
    ds = SyntheticVideos("motion", 5)
    first = [ds[i] for i in range(5)]
    again = [ds[i] for i in reversed(range(5))][::-1]
    assert drawn == list(range(5))
    fresh = SyntheticVideos("motion", 5)
    fresh.cache_bytes = 2 * 8 * 32 * 32 * 3  # room for two clips
    drawn.clear()
    for _ in range(2):
        for i, ((clip, label), (clip2, label2)) in enumerate(zip(first, again)):
            clip3, label3 = fresh[i]
            assert label == label2 == label3 and torch.equal(clip, clip2) and torch.equal(clip, clip3)
    assert drawn == [0, 1, 2, 3, 4, 2, 3, 4]  # the first two kept, the rest drawn again


@pytest.mark.parametrize("task, source", [("motion", None), ("motion", 24), ("long_range", None)])
def test_mirror_classes_are_exact_reversals(task, source):
    ds = SyntheticVideos(task, 20, num_frames=8, size=32, source_frames=source)
    for i in range(0, 20, 3):
        for forward, twin in mirror_pairs(task):
            a, b = ds.sample(i, label=forward), ds.sample(i, label=twin)
            assert torch.equal(a.frames, b.frames.flip(0)) and torch.equal(a.mask, b.mask.flip(0))
            assert not torch.equal(a.frames, b.frames)  # order matters: the clip is not a palindrome
            # the same multiset of frames: no single frame, no set of frames tells the twins apart
            assert sorted(f.numpy().tobytes() for f in a.frames) == sorted(f.numpy().tobytes() for f in b.frames)


def object_colour(sample) -> np.ndarray:
    """Mean RGB (0..1) of the deciding object over the frames where it is visible."""
    return sample.frames[sample.mask].float().mean(0).numpy() / 255


def test_motion_appearance_is_independent_of_the_class():
    ds = SyntheticVideos("motion", 800, size=32)
    per_class = {c: [] for c in range(10)}
    for i in range(800):
        s = ds.sample(i)
        background = s.frames[~s.mask].float().mean(0).numpy() / 255
        hue = colorsys.rgb_to_hsv(*object_colour(s))[0]
        per_class[s.label].append(np.r_[background, np.cos(2 * np.pi * hue), np.sin(2 * np.pi * hue)])
    means = np.stack([np.mean(v, axis=0) for v in per_class.values()])  # (10 classes, 5 statistics)
    assert np.ptp(means[:, :3], axis=0).max() < 0.06  # background colour
    assert np.ptp(means[:, 3:], axis=0).max() < 0.3  # object hue spread over the whole circle in every class


def test_motion_classes_share_every_draw_but_the_deciding_motion():
    """Forcing another class at the same index keeps background, distractor and object appearance."""
    ds = SyntheticVideos("motion", 10, size=32)
    for i in range(10):
        a, b = ds.sample(i, label=0), ds.sample(i, label=6)  # moving right vs rotating clockwise
        # away from the two objects the same pixels (4 px of margin: a thin arm can be drawn with coverage < 1/2)
        near = torch.nn.functional.max_pool2d((a.mask | b.mask).float()[:, None], 9, 1, 4)[:, 0] > 0
        assert torch.equal(a.frames[~near], b.frames[~near])
        assert np.allclose(object_colour(a), object_colour(b), atol=0.03)  # the same object colour


def test_appearance_class_is_visible_in_every_frame():
    ds = SyntheticVideos("appearance", 60, size=32)
    for i in range(60):
        s = ds.sample(i)
        family = s.class_name.split()[0]
        for t in range(s.frames.shape[0]):
            assert s.mask[t].any()
            hue = colorsys.rgb_to_hsv(*(s.frames[t][s.mask[t]].float().mean(0).numpy() / 255))[0]
            warm = hue < 0.2 or hue > 0.9
            assert warm == (family == "warm"), (i, t, hue)


@pytest.mark.parametrize("task", [t for t in TASKS if t != "ramp"])  # ramp's mask is the whole frame
def test_masks_cover_the_deciding_object(task):
    ds = SyntheticVideos(task, 30, size=32)
    for i in range(30):
        s = ds.sample(i)
        for t in range(s.frames.shape[0]):
            if not s.mask[t].any():
                continue
            inside = s.frames[t][s.mask[t]].float()
            outside = s.frames[t][~s.mask[t]].float()
            # bright, saturated object against a dark background
            assert inside.max(-1).values.mean() - outside.max(-1).values.median() > 60, (i, t)
            assert inside.std(0).max() < 60  # one colour, up to anti-aliased edges (large share on tiny objects)
        visible = s.mask.flatten(1).any(1)
        if task == "appearance" or (task == "motion" and "appear" not in s.class_name):
            assert visible.all()


def test_appearing_and_disappearing_masks_are_empty_before_and_after():
    ds = SyntheticVideos("motion", 20, size=32)
    appear, disappear = ds.sample(8), ds.sample(9)
    assert appear.class_name == "appearing" and disappear.class_name == "disappearing"
    a = appear.mask.flatten(1).any(1).tolist()
    assert not a[0] and a[-1] and a == sorted(a)  # hidden, then visible
    assert disappear.mask.flatten(1).any(1).tolist()[::-1] == disappear.mask.flip(0).flatten(1).any(1).tolist()


def test_long_range_cues_brief_separated_and_ordered():
    ds = SyntheticVideos("long_range", 30, num_frames=8, size=32)
    assert ds.source_frames == 64
    for i in range(30):
        s = ds.sample(i, full=True)
        visible = s.mask.flatten(1).any(1).numpy()
        edges = np.flatnonzero(np.diff(np.r_[0, visible.astype(int), 0]))
        starts, ends = edges[::2], edges[1::2]
        assert len(starts) == 2 and all(2 <= e - b <= 4 for b, e in zip(starts, ends))
        assert starts[1] - ends[0] >= 16
        first = s.frames[starts[0]][s.mask[starts[0]]].float().mean(0)
        red_first = bool(first[0] > first[2])
        assert red_first == (s.class_name == "red before blue")
        red, blue = (part.flatten(1).any(1).nonzero()[:, 0] for part in s.parts)  # parts: red cue, blue cue
        assert (red.min() < blue.min()) == red_first and torch.equal(s.parts.any(0), s.mask)
        red_pixels = s.frames[red[0]][s.parts[0, red[0]]].float().mean(0)
        assert red_pixels[0] > red_pixels[2]


def test_long_range_more_frames_catch_more_cues():
    one, both = [], []
    for frames in (4, 8, 16, 32):
        ds = SyntheticVideos("long_range", 200, num_frames=frames, size=16, split="test")
        seen = np.array([ds.sample(i).parts.flatten(2).any(2).any(1).numpy() for i in range(200)])  # (200, 2 cues)
        one.append(seen.any(1).mean())
        both.append(seen.all(1).mean())
    assert one == sorted(one) and both == sorted(both)
    assert both[0] < 0.1 and both[-1] == 1.0  # 4 of 64 frames rarely show both cues; 32 always do


@pytest.mark.parametrize("task, extra", [("motion", []), ("long_range", ["--source-frames", "24"])])
def test_make_synthetic_round_trip_through_decord(tmp_path, task, extra, capsys):
    out = tmp_path / task
    assert main(["make-synthetic", task, str(out), "--num", "6", "--frames", "8", "--size", "32", "--split", "val",
                 "--seed", "5", *extra]) == 0
    assert "wrote 6 videos" in capsys.readouterr().out
    ds = KineticsDataset(out / "val.txt", mode="val", sampling=ClipSampling(num_frames=8, sampling="segment"),
                         crop_size=32, flip=False)
    source = SyntheticVideos(task, 6, num_frames=8, size=32, seed=5, split="val",
                             source_frames=24 if extra else None)
    assert ds.classes == [str(k) for k in range(len(ds.classes))]
    for i in range(6):
        clip, label = ds[i]
        expected, expected_label = source[i]
        assert label == expected_label and torch.equal(clip, expected)  # lossless: bit-exact through mp4
    masks = np.load(out / "val_masks.npz")
    assert masks["mask_0"].shape == (source.source_frames, 32, 32)


def test_ramp_twins_are_reversals_and_order_is_visible_everywhere():
    ds = SyntheticVideos("ramp", 8, num_frames=4, size=16)
    assert ds.classes == ["brightening", "darkening"] and mirror_pairs("ramp") == [(0, 1)]
    for i in range(8):
        a, b = ds.sample(i, label=0), ds.sample(i, label=1)
        assert torch.equal(a.frames, b.frames.flip(0)) and a.mask.all()
        brightness = a.frames.float().mean((1, 2, 3))
        assert (brightness[1:] >= brightness[:-1]).all(), "brightening never darkens"


@pytest.mark.parametrize("design", sorted(MOTION_DESIGNS))
def test_every_motion_design_keeps_the_twins_exact_and_its_ranges(design):
    d = MOTION_DESIGNS[design]
    ds = SyntheticVideos("motion", 40, num_frames=4, size=32, design=design)
    assert ds.distractors == d.distractors
    for i in range(0, 40, 10):  # label i % 10 == 0: moving right
        a = ds.sample(i)
        assert torch.equal(a.frames, ds.sample(i, label=1).frames.flip(0))
        xs = [float(np.nonzero(m.numpy())[1].mean()) for m in a.mask]  # mask centroid per frame
        assert all(x1 > x0 for x0, x1 in zip(xs, xs[1:])), "moving right moves right"
        if design == "coarse":
            assert xs[-1] - xs[0] >= 0.45 * 32, "coarse: the object crosses most of the frame"
    with pytest.raises(ValueError, match="unknown motion design 'huge'"):
        SyntheticVideos("motion", 1, design="huge")


def test_long_range_ceiling_is_the_best_rule_on_what_the_frames_show():
    rows = [cue_visibility(t, num_samples=600, source_frames=32, split="val") for t in (1, 2, 8, 16)]
    ceilings = [r["ceiling"] for r in rows]
    assert ceilings == sorted(ceilings) and ceilings[-1] == 1.0, "16 of 32 frames catch every 2-4 frame cue"
    for r in rows:  # at least: certain with both cues, a coin flip otherwise (one cue's place can only add)
        assert 0.5 + 0.5 * r["both_cues"] - 1e-9 <= r["ceiling"] <= 1.0


@pytest.mark.parametrize("task", ["motion", "ramp", "long_range"])
def test_a_mirrored_set_pairs_each_clip_with_its_exact_reversal(task):
    plain = SyntheticVideos(task, 8, num_frames=4, size=16, split="val")
    mirrored = SyntheticVideos(task, 8, num_frames=4, size=16, split="val", mirrored=True)
    for k in range(4):
        a, b = mirrored.sample(2 * k), mirrored.sample(2 * k + 1)
        assert (a.label, b.label) == (2 * k % mirrored.num_classes, (2 * k + 1) % mirrored.num_classes)
        assert (a.label, b.label) in mirror_pairs(task)
        assert torch.equal(b.frames, a.frames.flip(0)) and torch.equal(b.mask, a.mask.flip(0))
        assert torch.equal(a.frames, plain.sample(2 * k).frames), "the even clips are the plain set's"
    assert not torch.equal(plain.sample(1).frames, plain.sample(0).frames.flip(0)), "plain clips are independent"
    assert "mirrored=True" in repr(mirrored)
    with pytest.raises(ValueError, match="mirror twins; 'appearance' has none"):
        SyntheticVideos("appearance", 4, mirrored=True)
