"""What README.md shows is what the commands print."""

from __future__ import annotations

import subprocess
import sys

from tsf.bench.rollout import scores_table, speed_table
from tsf.bench.table import format_table
from tsf.study.presets import STUDY_PRESETS

from .helpers import ROOT, readme_block


def test_readme_cost_table_is_what_info_prints():
    out = subprocess.run([sys.executable, "-m", "tsf", "info", "--all", "--preset", "base", "--num-classes", "174"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert readme_block("info-table") == out


def test_readme_attention_tables_are_the_committed_results(committed):
    speed = committed("rollout_speed")
    assert readme_block("rollout-speed") == speed_table(speed["rows"])
    for method in ("rollout", "gradient"):
        data = committed(f"attention_scores_untrained_{method}")
        assert readme_block(f"scores-{method}") == scores_table(data["summary"])
        assert f"--method {method}" in data["meta"]["command"]


def test_readme_study_presets_are_the_code():
    assert readme_block("study-presets") == presets_table()


def presets_table() -> str:
    rows = [{"preset": name, "model": p.model, "clips": p.train_samples, "frames": p.num_frames,
             "epochs": f"{p.epochs} / {p.motion_epochs}", "seeds": len(p.seeds), "pretrain": p.pretrain_images,
             "sweep": ", ".join(map(str, p.frames_sweep))}
            for name, p in STUDY_PRESETS.items()]
    return format_table(rows, [("preset", "preset", "s"), ("model", "model", "s"), ("clips", "clips", "d"),
                               ("frames", "frames", "d"), ("epochs", "epochs (appearance / motion)", "s"),
                               ("seeds", "seeds", "d"), ("pretrain", "pretraining images", "d"),
                               ("sweep", "frames (long-range)", "s")])


def test_readme_layout_shows_the_tree():
    """Every module and package of tsf/ is in README.md's Layout block (and the packages it expands, their modules)."""
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("```\n", layout.index("```") + 3)]
    package = ROOT / "tsf"
    for path in sorted(package.iterdir()):
        if path.suffix == ".py":
            assert f"tsf/{path.name}" in layout, path.name
        elif path.is_dir() and (path / "__init__.py").is_file():
            assert f"tsf/{path.name}/" in layout, path.name
    for name in ("weights", "data", "explain", "bench"):
        for path in sorted((package / name).glob("*.py")):
            assert path.name == "__init__.py" or path.name in layout, f"tsf/{name}/{path.name}"
