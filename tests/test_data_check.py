"""python -m tsf check-data: every bad file and why, crashes and hangs of the decoder included."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tsf.__main__ import main
from tsf.data import ClipSampling, check_files, check_video

from .videogen import coded_video, corrupt_files, damaged_files


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    good = coded_video(root / "ok" / "a.mp4", 40, 30, 48, 64)
    coded_video(root / "ok" / "b.mp4", 40, 60, 48, 64)
    coded_video(root / "short.mp4", 5, 30, 48, 64)
    bad = corrupt_files(root / "bad", good)
    bad.update(damaged_files(root / "bad", good))
    lines = ["ok/a.mp4 0", "bad/empty.mp4 0", "ok/b.mp4 1", "bad/random.mp4 1", "bad/text.mp4 0",
             "bad/truncated.mp4 1", "bad/cut.mp4 0", "bad/garbled.mp4 1", "short.mp4 0", "gone/missing.mp4 1"]
    (root / "all.txt").write_text("\n".join(lines) + "\n")
    (root / "good.txt").write_text("ok/a.mp4 0\nok/b.mp4 1\n")
    return root


def test_check_video_verdicts(dataset):
    assert check_video(dataset / "ok" / "a.mp4").status == "ok"
    ok = check_video(dataset / "ok" / "b.mp4", full=True)
    assert (ok.status, ok.num_frames, ok.fps, ok.height, ok.width) == ("ok", 40, 60.0, 48, 64)
    short = check_video(dataset / "short.mp4", ClipSampling(num_frames=8, sampling="segment"))
    assert short.status == "short" and "5 frames, a clip needs 8" in short.reason
    assert check_video(dataset / "bad" / "empty.mp4").reason == "empty file (0 bytes)"


def test_cli_json_report_lists_every_bad_file_and_exits_non_zero(dataset, capsys):
    code = main(["check-data", str(dataset / "all.txt"), "--root", str(dataset), "--json",
                 "--frames", "8", "--sampling-rate", "1"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] == 10 and report["ok"] == 2
    reasons = {os.path.relpath(f["path"], dataset): f["reason"] for f in report["bad"]}
    assert set(reasons) == {"bad/empty.mp4", "bad/random.mp4", "bad/text.mp4", "bad/truncated.mp4", "bad/cut.mp4",
                            "bad/garbled.mp4", "gone/missing.mp4"}
    assert reasons["bad/empty.mp4"] == "empty file (0 bytes)"
    assert reasons["gone/missing.mp4"] == "missing (no such file)"
    assert reasons["bad/text.mp4"].startswith("cannot be opened as a video")
    assert reasons["bad/garbled.mp4"].startswith(("cannot be opened", "frames cannot be decoded"))
    assert [os.path.relpath(f["path"], dataset) for f in report["short"]] == ["short.mp4"]


def test_cli_text_report_and_exit_codes(dataset, capsys):
    assert main(["check-data", str(dataset / "good.txt"), "--no-isolate"]) == 0
    assert capsys.readouterr().out.strip() == "checked 2 videos: 0 bad, 0 short"
    (dataset / "with_short.txt").write_text("ok/a.mp4 0\nshort.mp4 0\n")
    args = ["check-data", str(dataset / "with_short.txt"), "--no-isolate", "--frames", "8", "--sampling", "segment"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "checked 2 videos: 0 bad, 1 short" in out and "short.mp4: shorter than the clip" in out
    assert main(args + ["--strict"]) == 1


def test_cli_malformed_annotations_is_one_clear_line(dataset, capsys):
    (dataset / "broken.txt").write_text("ok/a.mp4 0\nno_label_here\n")
    assert main(["check-data", str(dataset / "broken.txt")]) == 2
    assert f"error: {dataset / 'broken.txt'} line 2: expected 'path label'" in capsys.readouterr().err


def test_cli_reports_bad_labels_with_file_and_line(dataset, capsys):
    typo = dataset / "typo.txt"
    typo.write_text("ok/a.mp4 0\nok/b.mp4 1\nshort.mp4 1000000\n")
    assert main(["check-data", str(typo), "--no-isolate"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {typo} line 3: label 1000000 is not among 0 ... 2\n"
                                              "integer labels must be dense from 0")
    assert main(["check-data", str(typo), "--no-isolate", "--num-classes", "1000001"]) == 0
    capsys.readouterr()
    mixed = dataset / "mixed.txt"
    mixed.write_text("ok/a.mp4 0\nok/b.mp4 one\nshort.mp4 1\n")
    assert main(["check-data", str(mixed), "--no-isolate"]) == 2
    assert f"error: {mixed} line 2: class name 'one' among integer labels" in capsys.readouterr().err
    train, val = dataset / "names_train.txt", dataset / "names_val.txt"
    train.write_text("ok/a.mp4 cat\nok/b.mp4 dog\n")
    val.write_text("ok/a.mp4 dog\nok/b.mp4 emu\n")
    assert main(["check-data", str(val), "--no-isolate", "--train", str(train)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {val} line 2: unknown class 'emu' (the classes of the "
                                               f"training list {train})")


def flaky_probe(path: str, sampling, full: bool):
    """A decoder that segfaults or hangs on some files (runs in the isolated worker)."""
    if "segfault" in path:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in path:
        time.sleep(60)
    return check_video(path, sampling, full)


@pytest.mark.slow  # waits out a hanging decoder
def test_isolated_worker_survives_decoder_crash_and_hang(dataset):
    good = str(dataset / "ok" / "a.mp4")
    paths = [good, "/x/segfault.mp4", good, "/x/hang.mp4", good]
    report = check_files(paths, probe=flaky_probe, timeout=4, progress=False)
    assert [f.status for f in report.files] == ["ok", "bad", "ok", "bad", "ok"]
    assert report.files[1].reason == f"decoder crashed (signal {int(signal.SIGSEGV)})"
    assert report.files[3].reason == "decoder hung (no answer in 4 s)"
