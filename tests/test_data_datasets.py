"""Datasets over real mp4 files: annotation formats, modes, and the bad-input policy."""

from __future__ import annotations

import json
import signal
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from tsf.data import (
    AnnotationError,
    BadVideoWarning,
    ClipSampling,
    EvalTransform,
    FolderDataset,
    KineticsDataset,
    SSv2Dataset,
    VideoDataset,
    VideoError,
    read_clip,
    read_kinetics_annotations,
    read_ssv2_annotations,
    read_ssv2_labels,
    scan_class_folders,
)

from .helpers import flaky_decoder
from .videogen import coded_video, corrupt_files, read_codes

SMALL = dict(sampling=ClipSampling(num_frames=4, sampling_rate=4), crop_size=32, scale=(40, 48))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/{cat,dog}/*.mp4 (good), root/bad/*.mp4 (corrupt), root/short.mp4 (6 frames)."""
    root = tmp_path_factory.mktemp("dataset")
    good = [coded_video(root / "cat" / "c0.mp4", 60, 30, 48, 64), coded_video(root / "cat" / "c1.mp4", 45, 30, 48, 64),
            coded_video(root / "dog" / "d0.mp4", 90, 60, 64, 48 * 2)]
    bad = corrupt_files(root / "bad", good[0])
    coded_video(root / "short.mp4", 6, 30, 48, 64)
    return root, good, bad


def write(path, text):
    path.write_text(text)
    return path


# -- annotation formats -------------------------------------------------------------------


def test_kinetics_annotations_space_comma_names_header_comments(tmp_path):
    ann = write(tmp_path / "a.csv", "path,label\n# a comment\ncat/c0.mp4,cat\n\nmy videos/d 0.mp4 , dog\n")
    samples, classes = read_kinetics_annotations(ann, root="/data")
    assert classes == ["cat", "dog"]
    assert samples == [("/data/cat/c0.mp4", 0), ("/data/my videos/d 0.mp4", 1)]
    ints = write(tmp_path / "b.txt", "x.mp4 2\ny.mp4\t0\n")
    samples, classes = read_kinetics_annotations(ints, num_classes=3)  # class 1 has no sample: say so
    assert [s[1] for s in samples] == [2, 0] and classes == ["0", "1", "2"]
    assert samples[0][0] == str(tmp_path / "x.mp4")  # relative to the file's folder by default


@pytest.mark.parametrize("text, match", [
    ("a.mp4 0\nlonely\n", r"b\.txt line 2: expected 'path label'"),
    ("a.mp4 0\nb.mp4 -1\n", r"b\.txt line 2: label -1 is not among 0 \.\.\. 1"),
    ("", r"b\.txt: no samples"),
    ("a.mp4 cat\nb.mp4 cow\n", r"b\.txt line 2: unknown class 'cow'"),
    ("label,youtube_id,time_start,time_end,split\n", r"b\.txt line 1: expected 'path,label' \(2 fields\), got 5"),
])
def test_kinetics_annotation_errors_name_file_and_line(tmp_path, text, match):
    ann = write(tmp_path / "b.txt", text)
    with pytest.raises(AnnotationError, match=match):
        read_kinetics_annotations(ann, classes=["cat", "dog"] if "cat" in text else None)


def test_integer_labels_must_be_dense_unless_a_class_count_or_names_say_otherwise(tmp_path):
    lines = [f"v{i}.mp4 {i}" for i in range(20)]
    for huge in (1_000_000, 100_000_000_000):  # one typo must not size the model (nor allocate its classes)
        ann = write(tmp_path / "train.txt", "\n".join(lines + [f"v20.mp4 {huge}"]) + "\n")
        with pytest.raises(AnnotationError) as err:
            read_kinetics_annotations(ann)
        assert str(err.value).splitlines() == [
            f"{ann} line 21: label {huge} is not among 0 ... 20",
            "integer labels must be dense from 0: 21 distinct labels are 0 ... 20, but no sample has 20; give the "
            "class names (a labels file) or the class count if some classes really have no samples"]
    with pytest.raises(AnnotationError, match=rf"{ann} line 21: label 100000000000 outside \[0, 1001\)"):
        read_kinetics_annotations(ann, num_classes=1001)
    assert read_kinetics_annotations(write(tmp_path / "ok.txt", "a.mp4 1\nb.mp4 0\nc.mp4 1\n"))[1] == ["0", "1"]


def test_a_class_name_among_integer_labels_is_an_error_not_a_reordering(tmp_path):
    lines = [f"v{i}.mp4 {i % 12}" for i in range(24)]
    lines[7] = "v7.mp4 seven"
    ann = write(tmp_path / "train.txt", "\n".join(lines) + "\n")
    with pytest.raises(AnnotationError) as err:
        read_kinetics_annotations(ann)
    assert str(err.value).splitlines() == [
        f"{ann} line 8: class name 'seven' among integer labels (line 1: 0)",
        "a list's labels are all class indices or all class names, not a mix"]
    names = write(tmp_path / "names.txt", "a.mp4 cat\nb.mp4 dog\nc.mp4 3\n")
    with pytest.raises(AnnotationError, match=rf"{names} line 3: class name '3'|{names} line 3: integer label 3"):
        read_kinetics_annotations(names)


def test_every_bad_line_is_reported_at_once(tmp_path):
    ann = write(tmp_path / "a.txt", "a.mp4 cat\nb.mp4 cow\nno_label\nc.mp4 dog\nd.mp4 emu\n")
    with pytest.raises(AnnotationError) as err:
        read_kinetics_annotations(ann, classes=["cat", "dog"], classes_from="names.txt")
    assert str(err.value).splitlines() == [f"{ann} line 3: expected 'path label' (space or comma separated), "
                                           "got 'no_label'"]
    write(ann, "a.mp4 cat\nb.mp4 cow\nc.mp4 dog\nd.mp4 emu\n")
    with pytest.raises(AnnotationError) as err:
        read_kinetics_annotations(ann, classes=["cat", "dog"], classes_from="names.txt")
    assert str(err.value).splitlines() == [f"{ann} line 2: unknown class 'cow' (the classes of names.txt)",
                                           f"{ann} line 4: unknown class 'emu' (the classes of names.txt)"]


def test_held_out_splits_are_mapped_through_the_training_classes(tmp_path):
    from tsf.train import TrainConfig, apply_overrides, train_preset
    from tsf.train.data import build_datasets

    train = write(tmp_path / "train.txt", "".join(f"t{i}.mp4 {name}\n" for i, name in enumerate("abcd" * 2)))
    val = write(tmp_path / "val.txt", "v0.mp4 b\nv1.mp4 d\n")  # no 'a', no 'c': sorted alone, 'd' would be 1

    def config(val_list) -> TrainConfig:
        return apply_overrides(train_preset("smoke"), {"data.kind": "kinetics", "data.train_annotations": str(train),
                                                       "data.val_annotations": str(val_list)})

    train_set, val_set = build_datasets(config(val))
    assert val_set.classes == train_set.classes == ["a", "b", "c", "d"]
    assert [label for _, label in val_set.samples] == [1, 3]
    other = write(tmp_path / "other.txt", "v0.mp4 b\nv1.mp4 e\n")  # as many classes, another set
    with pytest.raises(AnnotationError, match=rf"{other} line 2: unknown class 'e' \(the classes of the training "
                                              rf"split {train}\)"):
        build_datasets(config(other))
    for split, names in (("train", "abc"), ("val", "bd")):  # a folder per class: the same rule
        for name in names:
            (tmp_path / "folders" / split / name).mkdir(parents=True)
            (tmp_path / "folders" / split / name / "x.mp4").write_bytes(b"")
    _, classes = scan_class_folders(tmp_path / "folders" / "train")
    with pytest.raises(AnnotationError, match=r"val/d: unknown class 'd' \(the classes of train\)"):
        scan_class_folders(tmp_path / "folders" / "val", classes=classes, classes_from="train")
    samples, _ = scan_class_folders(tmp_path / "folders" / "val", classes=["a", "b", "c", "d"])
    assert [label for _, label in samples] == [1, 3]


def test_ssv2_annotations_and_labels(tmp_path):
    labels = write(tmp_path / "labels.json", json.dumps({"Pushing something from left to right": "1",
                                                        "Pushing something from right to left": "0"}))
    ann = write(tmp_path / "train.json", json.dumps([
        {"id": "42", "label": "pushing a cup from left to right", "template": "Pushing [something] from left to right",
         "placeholders": ["a cup"]},
        {"id": "7", "label": "pushing a pen from right to left", "template": "Pushing [something] from right to left",
         "placeholders": ["a pen"]},
    ]))
    assert read_ssv2_labels(labels) == ["Pushing something from right to left", "Pushing something from left to right"]
    samples, classes = read_ssv2_annotations(ann, labels, root="/v", extension=".mp4")
    assert samples == [("/v/42.mp4", 1), ("/v/7.mp4", 0)] and len(classes) == 2
    test_split, _ = read_ssv2_annotations(write(tmp_path / "test.json", '[{"id": "3"}]'), None)
    assert test_split[0][1] == -1


@pytest.mark.parametrize("content, match", [
    ('[{"id": "1", "template": "Nothing"}]', r"entry 0 \(id 1\): unknown class 'Nothing'"),
    ('[{"id": "1", "template": "Pushing [something] from right to left"}, {"id": "2"}]', r"entry 1 \(id 2\): missing 'template'"),
    ('[{"id": "1",\n "template": }]', r"a\.json line 2: invalid JSON"),
    ('{"id": "1"}', r"expected a JSON list"),
])
def test_ssv2_annotation_errors(tmp_path, content, match):
    labels = write(tmp_path / "labels.json", '{"Pushing something from right to left": 0}')
    with pytest.raises(AnnotationError, match=match):
        read_ssv2_annotations(write(tmp_path / "a.json", content), labels)


def test_ssv2_labels_errors(tmp_path):
    with pytest.raises(AnnotationError, match="class indices must be 0 ... 1"):
        read_ssv2_labels(write(tmp_path / "l.json", '{"a": 0, "b": 2}'))
    with pytest.raises(AnnotationError, match="non-integer index"):
        read_ssv2_labels(write(tmp_path / "l.json", '{"a": "zero"}'))


def test_folder_per_class(tree):
    root, good, _ = tree
    samples, classes = scan_class_folders(root)
    assert classes == ["bad", "cat", "dog"]
    assert (str(good[2]), 2) in samples
    with pytest.raises(AnnotationError, match="no class folders"):
        scan_class_folders(root / "cat")


# -- modes ----------------------------------------------------------------------------------


def kinetics(tree, tmp_path, lines, **kwargs):
    root = tree[0]
    ann = write(tmp_path / "ann.txt", "\n".join(lines) + "\n")
    return KineticsDataset(ann, root, **{**SMALL, **kwargs})


def test_train_mode_clip_label_and_reproducibility(tree, tmp_path):
    ds = kinetics(tree, tmp_path, ["cat/c0.mp4 cat", "dog/d0.mp4 dog"])
    clip, label = ds[1]
    assert clip.shape == (3, 4, 32, 32) and clip.dtype == torch.float32 and label == 1
    assert torch.equal(ds[1][0], clip)  # the same (seed, epoch, index): the same clip
    ds.set_epoch(1)
    assert not torch.equal(ds[1][0], clip)
    other = kinetics(tree, tmp_path, ["cat/c0.mp4 cat", "dog/d0.mp4 dog"], seed=1)
    assert not torch.equal(other[1][0], clip)


def test_val_mode_is_the_middle_clip_centre_crop(tree, tmp_path):
    ds = kinetics(tree, tmp_path, ["dog/d0.mp4 dog"], mode="val")
    clip, label = ds[0]
    raw = read_clip(tree[1][2], 4, sampling_rate=4, mode="test")
    assert torch.equal(clip, EvalTransform(32, 1)(raw)[0])
    assert read_codes(raw) == [29, 39, 49, 60]  # 60 fps: a window of 32 frames, starting at (90 - 32) / 2


def test_test_mode_returns_all_views_with_the_index(tree, tmp_path):
    ds = kinetics(tree, tmp_path, ["cat/c0.mp4 0", "dog/d0.mp4 1"], mode="test",
                  sampling=ClipSampling(num_frames=4, sampling_rate=2, num_clips=2))
    views, label, index = ds[1]
    assert views.shape == (6, 3, 4, 32, 32) and label == 1 and index == 1  # 2 clips x 3 crops, clip-major
    assert not torch.equal(views[0], views[3])  # another window
    assert not torch.equal(views[0], views[2])  # another crop
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch[0].shape == (2, 6, 3, 4, 32, 32) and batch[2].tolist() == [0, 1]


def test_ssv2_defaults_segment_sampling_and_no_flip(tree, tmp_path):
    root = tree[0]
    labels = write(tmp_path / "labels.json", '{"Moving something": 0}')
    ann = write(tmp_path / "ssv2.json", '[{"id": "c0", "label": "moving a cat", "template": "Moving [something]", '
                                        '"placeholders": ["a cat"]}]')
    ds = SSv2Dataset(ann, labels, root / "cat", extension=".mp4", crop_size=32, scale=(40, 48))
    assert ds.sampling.sampling == "segment" and ds.train_transform.flip is False
    clip, label = ds[0]
    assert clip.shape == (3, 8, 32, 32) and label == 0


def test_folder_dataset_loads(tree):
    ds = FolderDataset(tree[0], on_error="skip", **SMALL)
    assert ds.classes == ["bad", "cat", "dog"]
    with pytest.warns(BadVideoWarning):
        clip, label = ds[0]  # bad/empty.mp4 -> the next usable video
    assert label == 1 and clip.shape == (3, 4, 32, 32)


# -- bad input ------------------------------------------------------------------------------


def test_raise_policy_names_file_and_reason(tree, tmp_path):
    ds = kinetics(tree, tmp_path, ["cat/c0.mp4 0", "bad/empty.mp4 0", "bad/random.mp4 0", "bad/truncated.mp4 0",
                                   "cat/missing.mp4 0"])
    reasons = {1: "empty file", 2: "cannot be opened", 3: "cannot be opened", 4: "missing"}
    for index, reason in reasons.items():
        with pytest.raises(VideoError, match=reason) as info:
            ds[index]
        assert info.value.path == ds.samples[index][0]


def test_skip_policy_warns_counts_and_substitutes_the_next_good_sample(tree, tmp_path):
    lines = ["cat/c0.mp4 0", "bad/empty.mp4 0", "bad/text.mp4 0", "dog/d0.mp4 1"]
    ds = kinetics(tree, tmp_path, lines, on_error="skip")
    with pytest.warns(BadVideoWarning) as caught:
        clip, label = ds[1]
    assert [str(w.message) for w in caught] == [
        f"skipping {ds.samples[1][0]}: empty file (0 bytes)",
        f"skipping {ds.samples[2][0]}: cannot be opened as a video (not a video, or truncated or corrupt: "
        "Invalid data found when processing input)"]
    assert label == 1 and torch.equal(clip, ds[3][0])  # sample 3 exactly: deterministic substitute
    assert ds.skipped == 2 and ds.bad_indices == [1, 2]
    assert "empty file" in ds.bad_reasons[ds.samples[1][0]]
    ds_test = kinetics(tree, tmp_path, lines, on_error="skip", mode="test")
    with pytest.warns(BadVideoWarning):
        assert ds_test[2][2] == 3  # the index returned is the substitute's
    every_bad = kinetics(tree, tmp_path, ["bad/empty.mp4 0", "bad/text.mp4 0"], on_error="skip")
    with pytest.warns(BadVideoWarning), pytest.raises(VideoError, match="no usable video"):
        every_bad[0]


def test_short_videos_are_padded_and_counted_or_rejected(tree, tmp_path):
    ds = kinetics(tree, tmp_path, ["short.mp4 0", "cat/c0.mp4 0"], mode="val")
    ds[0], ds[1]
    assert ds.padded == 1 and ds.log.short_indices() == [0]
    strict = kinetics(tree, tmp_path, ["short.mp4 0", "cat/c0.mp4 0"], mode="val", on_short="error")
    with pytest.raises(VideoError, match=r"shorter than the clip \(6 frames, the clip needs 16\)"):
        strict[0]
    skipping = kinetics(tree, tmp_path, ["short.mp4 0", "cat/c0.mp4 0"], mode="val", on_short="error", on_error="skip")
    with pytest.warns(BadVideoWarning, match="shorter than the clip"):
        skipping[0]
    assert skipping.skipped == 1


def test_counters_include_dataloader_workers(tree, tmp_path):
    lines = ["cat/c0.mp4 0", "bad/empty.mp4 0", "short.mp4 0", "bad/random.mp4 0", "cat/c1.mp4 0", "dog/d0.mp4 1"]
    ds = kinetics(tree, tmp_path, lines, on_error="skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BadVideoWarning)
        batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert sum(b[0].shape[0] for b in batches) == 6
    assert ds.skipped >= 2 and ds.bad_indices == [1, 3] and ds.padded >= 1


def test_bad_arguments(tree, tmp_path):
    with pytest.raises(ValueError, match="on_error must be one of"):
        kinetics(tree, tmp_path, ["cat/c0.mp4 0"], on_error="ignore")
    with pytest.raises(ValueError, match="mode must be one of"):
        kinetics(tree, tmp_path, ["cat/c0.mp4 0"], mode="eval")


def test_isolated_decoding_gives_the_same_clips_and_randomness(tree, tmp_path):
    lines = ["cat/c0.mp4 0", "dog/d0.mp4 1", "short.mp4 0"]
    for mode in ("train", "test"):  # a random clip (the generator crosses to the child and back), every view
        isolated, inline = kinetics(tree, tmp_path, lines, mode=mode), kinetics(tree, tmp_path, lines, mode=mode,
                                                                               isolate=False)
        for i in range(3):
            a, b = isolated[i], inline[i]
            assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
        assert isolated.padded == inline.padded == 1


@pytest.mark.parametrize("workers", [0, 2])
def test_a_decoder_crash_or_hang_is_bad_input_under_either_policy(workers):
    sig = int(signal.SIGSEGV)
    names = ["v0", "crash", "v2", "hang", "v4", "v5"]
    samples = [(f"/videos/{name}.mp4", i % 2) for i, name in enumerate(names)]
    common = dict(sampling=ClipSampling(num_frames=4), crop_size=16, scale=(16, 20), decoder=flaky_decoder, timeout=1)
    skipping = VideoDataset(samples, ["a", "b"], on_error="skip", **common)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BadVideoWarning)
        batches = list(DataLoader(skipping, batch_size=2, num_workers=workers))
    assert sum(len(b[1]) for b in batches) == 6  # every index answered, bad ones by their substitutes
    assert skipping.bad_indices == [1, 3] and skipping.skipped >= 2
    if workers == 0:  # (a worker's warnings go to its stderr)
        assert [str(w.message) for w in caught] == [f"skipping /videos/crash.mp4: decoder crashed (signal {sig})",
                                                    "skipping /videos/hang.mp4: decoder hung (no answer in 1 s)"]
    raising = VideoDataset(samples, ["a", "b"], on_error="raise", **common)
    with pytest.raises(VideoError) as err:
        list(DataLoader(raising, batch_size=2, num_workers=workers))
    assert (err.value.path, err.value.reason) == ("/videos/crash.mp4", f"decoder crashed (signal {sig})")
    assert str(err.value) == f"/videos/crash.mp4: decoder crashed (signal {sig})"


def test_a_training_config_sets_the_decoder_timeout(tmp_path):
    from tsf.train import apply_overrides, train_preset
    from tsf.train.data import build_datasets

    listing = write(tmp_path / "train.txt", "a.mp4 0\nb.mp4 1\n")
    config = apply_overrides(train_preset("smoke"), {"data.kind": "kinetics", "data.train_annotations": str(listing),
                                                     "data.val_annotations": str(listing), "data.decode_timeout": 7})
    assert [d.decode.worker.timeout for d in build_datasets(config)] == [7.0, 7.0]
    with pytest.raises(ValueError, match="data.decode_timeout must be positive"):
        apply_overrides(config, {"data.decode_timeout": 0})
