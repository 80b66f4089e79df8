"""What README.md and the docs/ pages show is what the commands print; the README is a landing page
whose links all lead somewhere."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from tsf.__main__ import build_parser
from tsf.bench.rollout import scores_table, speed_table
from tsf.bench.table import format_table
from tsf.study.presets import STUDY_PRESETS

from .helpers import ROOT, doc_block, doc_text


def test_readme_cost_table_is_what_info_prints():
    out = subprocess.run([sys.executable, "-m", "tsf", "info", "--all", "--preset", "base", "--num-classes", "174"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert doc_block("docs/model.md", "info-table") == out


def test_readme_attention_tables_are_the_committed_results(committed):
    speed = committed("rollout_speed")
    assert doc_block("docs/attention.md", "rollout-speed") == speed_table(speed["rows"])
    for method in ("rollout", "gradient"):
        data = committed(f"attention_scores_untrained_{method}")
        assert doc_block("docs/attention.md", f"scores-{method}") == scores_table(data["summary"])
        assert f"--method {method}" in data["meta"]["command"]


def test_readme_study_presets_are_the_code():
    assert doc_block("docs/study.md", "study-presets") == presets_table()


def presets_table() -> str:
    rows = [{"preset": name, "model": p.model, "clips": p.train_samples, "frames": p.num_frames,
             "epochs": f"{p.epochs} / {p.motion_epochs}", "batch": p.batch_size, "seeds": len(p.seeds),
             "pretrain": p.pretrain_images,
             "sweep": ", ".join(map(str, p.frames_sweep))}
            for name, p in STUDY_PRESETS.items()]
    return format_table(rows, [("preset", "preset", "s"), ("model", "model", "s"), ("clips", "clips", "d"),
                               ("frames", "frames", "d"), ("epochs", "epochs (appearance / motion)", "s"),
                               ("batch", "batch", "d"),
                               ("seeds", "seeds", "d"), ("pretrain", "pretraining images", "d"),
                               ("sweep", "frames (long-range)", "s")])


def test_docs_layout_shows_the_tree():
    """Every module and package of tsf/ is in docs/layout.md's block (and the packages it expands, their modules)."""
    text = doc_text("docs/layout.md")
    layout = text[text.index("```"):]
    layout = layout[:layout.index("```\n", 3)]
    package = ROOT / "tsf"
    for path in sorted(package.iterdir()):
        if path.suffix == ".py":
            assert f"tsf/{path.name}" in layout, path.name
        elif path.is_dir() and (path / "__init__.py").is_file():
            assert f"tsf/{path.name}/" in layout, path.name
    for name in ("weights", "data", "explain", "bench"):
        for path in sorted((package / name).glob("*.py")):
            assert path.name == "__init__.py" or path.name in layout, f"tsf/{name}/{path.name}"


def test_readme_is_a_landing_page_whose_links_work():
    text = doc_text("README.md")
    assert len(text.splitlines()) <= 120, "README.md is the landing page: the reference goes to docs/"
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert {"docs/explorer.png", "docs/model.md", "docs/data-and-training.md", "docs/attention.md",
            "docs/commands.md", "docs/performance.md", "docs/study.md", "docs/layout.md"} <= set(links)
    for link in links:
        assert (ROOT / link).exists(), link
    for page in sorted((ROOT / "docs").glob("*.md")):
        for link in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / link).exists(), f"{page.name}: {link}"
    # the set-up commands (tests/test_project.py checks them and CI) make .venv; everything after runs in it
    assert "source .venv/bin/activate" in text and "`.venv/bin/python`" in text
    assert text.index("source .venv/bin/activate") < text.index("## Quick examples")


def test_readme_quick_examples_are_command_lines_the_parser_accepts():
    block = re.search(r"## Quick examples.*?```bash\n(.*?)```", doc_text("README.md"), re.S).group(1)
    lines = [line for line in block.replace("\\\n", " ").splitlines() if line.startswith("python -m tsf")]
    assert {shlex.split(line)[3] for line in lines} >= {"explain", "predict", "features", "train", "info"}
    for line in lines:
        argv = shlex.split(line, comments=True)[3:]
        assert build_parser().parse_args(argv).command == argv[0], line  # exits (SystemExit) on a bad option
    assert any("--timeline" in line for line in lines)


def test_study_page_shows_the_committed_calibration():
    import pandas as pd

    from tsf.study.calibration import table_text
    frame = pd.read_csv(ROOT / "figures" / "cpu" / "calibration.csv")
    assert doc_block("docs/study.md", "calibration") == table_text(frame)
