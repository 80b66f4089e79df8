"""python -m tsf info, and predict over good and bad files."""

from __future__ import annotations

import json
import subprocess
import sys

import tsf
from tsf.__main__ import main

from .helpers import tiny
from .videogen import coded_video


def test_info_table_all(capsys):
    assert main(["info", "--all", "--preset", "base", "--num-classes", "174"]) == 0
    out = capsys.readouterr().out
    for scheme, params in [("space", "85,932,462"), ("joint", "85,938,606"), ("divided", "121,392,558"),
                           ("local_global", "121,392,558"), ("axial", "156,846,510")]:
        line = next(l for l in out.splitlines() if l.strip().startswith(scheme))
        assert params in line
    assert "0.587" in next(l for l in out.splitlines() if l.strip().startswith("divided"))


def test_info_json_single(capsys):
    assert main(["info", "--preset", "hr", "--attention", "divided_space_time", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["attention"] == "divided" and row["frames"] == 16 and row["crop"] == 448
    assert abs(row["tflops_all_views"] - 5.11) / 5.11 < 0.01


def test_info_json_all_is_a_list(capsys):
    assert main(["info", "--all", "--preset", "small", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["attention"] for r in rows] == ["space", "joint", "divided", "local_global", "axial"]


def test_bad_scheme_is_one_clear_line():
    proc = subprocess.run([sys.executable, "-m", "tsf", "info", "--attention", "cubic"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown attention scheme 'cubic'")
    assert "Traceback" not in proc.stderr


def test_predict_prints_the_good_files_and_names_the_bad_one(tmp_path, capsys):
    model = tsf.TimeSformer(tiny("divided", num_classes=3))
    checkpoint = tsf.save_pretrained(model, tmp_path / "model")
    good = [coded_video(tmp_path / f"v{i}.mp4", 40, 30.0, 32, 32) for i in range(2)]
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video")
    videos = [str(good[0]), str(bad), str(good[1])]
    assert main(["predict", str(checkpoint), *videos, "--topk", "2"]) == 1
    out, err = capsys.readouterr()
    heads = [line for line in out.splitlines() if not line.startswith("  ")]
    assert heads == [f"{good[0]}  (3 views)", f"{good[1]}  (3 views)"] and len(out.splitlines()) == 6
    assert err.splitlines()[0].startswith(f"error: {bad}: ") and "1 of 3 videos could not be used" in err
    assert main(["predict", str(checkpoint), str(bad)]) == 2  # none usable: bad input, as before
