"""The user's commands on real mp4 files: explain, features, predict --timeline; the help and the
benchmark group; what train prints per epoch."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import tsf
from tsf.__main__ import LEGACY_NAMES, build_parser, canonical_argv, main
from tsf.data import SyntheticVideos, VideoDataset, make_synthetic, write_video
from tsf.data.video import ClipSampling
from tsf.train import apply_overrides, fit, train_preset
from tsf.train.engine import epoch_line
from tsf.train.features import load_features
from tsf.train.predict import sliding_windows

from .helpers import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run on the motion task (its model folder has the class names) and some of its
    held-out clips written as mp4 files by make-synthetic."""
    root = tmp_path_factory.mktemp("commands")
    cfg = apply_overrides(train_preset("smoke"), {"output_dir": str(root / "run"), "progress": False,
                                                  "data.task": "motion", "optim.epochs": 1})
    result = fit(cfg)
    annotations = make_synthetic("motion", root / "videos", num=3, num_frames=4, size=16, split="val", progress=False)
    videos = sorted((root / "videos" / "val").rglob("*.mp4"))
    return root, result.run_dir / "model", annotations, videos


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``python -m tsf ARGS`` in this process (a bad input must come back as code 2 and one line)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# -- the help and the benchmark group ----------------------------------------------------


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_help_lists_the_users_commands_first_and_shows_no_markup():
    out = subprocess.run([sys.executable, "-m", "tsf", "--help"], capture_output=True, text=True, check=True,
                         cwd=ROOT).stdout
    listed = re.findall(r"^    (\S+)", out, re.M)
    assert listed[:4] == ["explain", "predict", "features", "train"] and listed[-1] == "bench"
    for old in LEGACY_NAMES:
        assert old not in listed
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, parser.prog


def test_the_benchmarks_are_one_group_and_their_old_names_still_run():
    parser = build_parser()
    for old, new in LEGACY_NAMES.items():
        assert canonical_argv([old, "--out", "x.json"]) == [*new, "--out", "x.json"]
        assert parser.parse_args(canonical_argv([old])).func is parser.parse_args(new).func
    assert canonical_argv(["bench", "--cases", "small-train"]) == ["bench", "models", "--cases", "small-train"]
    assert canonical_argv(["bench", "data", "--json"]) == ["bench", "data", "--json"]
    assert canonical_argv(["bench", "--help"]) == ["bench", "--help"]
    assert canonical_argv(["explain", "ckpt", "v.mp4"]) == ["explain", "ckpt", "v.mp4"]


def test_train_prints_a_readable_line_per_epoch():
    summary = {"event": "epoch", "epoch": 0, "step": 4, "train_loss": 2.31234, "train_acc": 0.078125,
               "epoch_time": 0.31, "val_loss": 2.2977, "val_acc": 0.125, "val_top5": 0.53125}
    assert epoch_line(summary, 2) == ("epoch 1/2: train loss 2.3123, acc 7.8% | val loss 2.2977, acc 12.5%, "
                                      "top-5 53.1% | step 4, 0.3 s")
    del summary["val_loss"]
    assert epoch_line({**summary, "epoch": 1}, 2).startswith("epoch 2/2: train loss 2.3123, acc 7.8% | step 4")


# -- explain -----------------------------------------------------------------------------


def test_explain_writes_the_page_of_any_video_with_the_class_names(trained, tmp_path, capsys):
    root, model, _, videos = trained
    code, out, err = run_cli(capsys, "explain", model, videos[0], "--out", tmp_path / "page.html", "--target",
                             "moving up", "--method", "gradient", "rollout")
    assert code == 0, err
    assert "predicted" in out and "segment sampling" in out  # a synthetic run's clips: whole videos
    html = (tmp_path / "page.html").read_text()
    assert (tmp_path / "plotly.min.js").exists() and "<title>" in html and videos[0].name in html
    data = json.loads(re.search(r"var D = (\{.*?\});\n", html, re.S).group(1))
    assert data["views"] == ["gradient", "rollout"] and data["frames"] == 4
    assert "the gradient view explains moving up" in html
    code, _, err = run_cli(capsys, "explain", model, videos[0], "--target", "zebra", "--out", tmp_path / "x.html")
    assert code == 2 and err.startswith("error: unknown class 'zebra'")
    code, _, err = run_cli(capsys, "explain", model, tmp_path / "missing.mp4")
    assert code == 2 and "missing.mp4" in err and err.count("\n") == 1


# -- features ----------------------------------------------------------------------------


def test_features_are_the_mean_cls_feature_of_the_test_views(trained, tmp_path):
    root, model_dir, annotations, videos = trained
    out = tmp_path / "f.safetensors"
    assert main(["features", str(model_dir), *map(str, videos), "--out", str(out), "--per-view"]) == 0
    feats = load_features(out)
    model = tsf.load_pretrained(model_dir)
    D = model.config.embed_dim
    assert feats.paths == [str(v) for v in videos] and feats.features.shape == (3, D)
    assert feats.views.shape == (3, 3, D) and feats.labels is None  # 1 clip x 3 crops
    assert feats.protocol == "1 clip x 3 crops, segment sampling"
    # independently: every view through forward_features, then the mean
    data = VideoDataset([(v, 0) for v in videos], ["?"], mode="test", crop_size=model.config.img_size,
                        sampling=ClipSampling(num_frames=model.config.num_frames, sampling="segment"))
    with torch.no_grad():
        views = torch.stack([model.forward_features(data[i][0]) for i in range(3)])
    torch.testing.assert_close(feats.views, views)
    torch.testing.assert_close(feats.features, views.mean(1))

    listed = tmp_path / "listed.safetensors"
    assert main(["features", str(model_dir), "--annotations", str(annotations), "--out", str(listed),
                 "--dataset-labels", str(annotations.parent / "labels.json")]) == 0
    by_list = load_features(listed)
    assert by_list.views is None and by_list.classes == SyntheticVideos("motion", 1).classes
    truth = [int(line.split()[1]) for line in annotations.read_text().splitlines()]
    assert by_list.labels == truth
    order = [feats.paths.index(p) for p in by_list.paths]  # the list's order, the same files
    assert sorted(order) == [0, 1, 2]
    torch.testing.assert_close(by_list.features, feats.features[order])


def test_features_refuse_bad_input(trained, tmp_path, capsys):
    _, model, annotations, videos = trained
    code, _, err = run_cli(capsys, "features", model)
    assert code == 2 and "give video files or --annotations" in err
    code, _, err = run_cli(capsys, "features", model, videos[0], "--out", tmp_path / "f.npy")
    assert code == 2 and "*.safetensors" in err
    code, _, err = run_cli(capsys, "features", model, videos[0], tmp_path / "gone.mp4", "--out", tmp_path / "f.safetensors")
    assert code == 2 and "gone.mp4" in err and not (tmp_path / "f.safetensors").exists()


# -- predict --timeline ------------------------------------------------------------------


def test_sliding_windows_step_by_the_stride_and_pad_a_short_video():
    windows = sliding_windows(100, 30.0, 4, 2, stride=0.5)  # a window spans 8 frames, a stride 15
    assert [w.indices[0] for w in windows] == [0, 15, 30, 45, 60, 75, 90]
    assert windows[0].indices == (0, 2, 4, 7) and all(w.padded == 0 for w in windows)
    assert sliding_windows(100, 60.0, 4, 2, stride=0.5)[1].indices[0] == 30  # the window measured at 30 fps
    (short,) = sliding_windows(5, 30.0, 4, 2, stride=1.0)
    assert short.indices == (0, 2, 4, 4) and short.padded == 1
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(100, 30.0, 4, 2, stride=0)


def test_predict_timeline_over_a_long_video(trained, tmp_path, capsys):
    _, model, _, _ = trained
    ds = SyntheticVideos("motion", 3, num_frames=4, size=16, seed=0, split="val")
    frames = np.concatenate([np.concatenate([ds.sample(i).frames.numpy()] * 10) for i in range(3)])  # 120 frames
    video = write_video(tmp_path / "long.mp4", frames, 30.0, quality="lossless")
    code, out, err = run_cli(capsys, "predict", model, video, "--timeline", "--stride", "0.5", "--sampling-rate", "2",
                             "--plot", tmp_path / "line.png")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"{video}: 8 windows of 4 frames over 0.27 s (sampling rate 2)"
    header = lines[1].split()
    assert header[:5] == ["window", "start", "s", "end", "s"] and "top-3" in header
    rows = lines[3:3 + 8]
    assert [r.split()[:2] for r in rows[:2]] == [["1", "0.00"], ["2", "0.50"]] and "%)" in rows[0]
    assert (tmp_path / "line.png").stat().st_size > 5_000
    code, _, err = run_cli(capsys, "predict", model, video, video, "--timeline")
    assert code == 2 and "one video" in err
