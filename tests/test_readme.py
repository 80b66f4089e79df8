"""What README.md shows is what the commands print."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block(name: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {name}:begin -->\s*```\n(.*?)```\s*<!-- {name}:end -->", text, re.S)
    assert match, f"README.md has no {name} block"
    return match.group(1).strip()


def test_readme_cost_table_is_what_info_prints():
    out = subprocess.run([sys.executable, "-m", "tsf", "info", "--all", "--preset", "base", "--num-classes", "174"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
    assert _block("info-table") == out
