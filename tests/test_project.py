"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r) for r in pip}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"


def test_torch_is_pinned_everywhere_and_no_torchvision_or_timm():
    texts = {p: (ROOT / p).read_text() for p in ("pyproject.toml", "environment.yml", "constraints.txt")}
    for path, text in texts.items():
        assert re.search(r"^\s*-?\s*\"?torch==2\.13\.0", text, re.M), f"{path} does not pin torch==2.13.0"
        assert not re.search(r"^\s*-?\s*\"?(torchvision|timm)\b", text, re.M), f"{path} pulls torchvision/timm"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make reproduce" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_make_lab_binds_to_loopback_with_a_token():
    import subprocess

    # --no-print-directory: under `make test` MAKELEVEL>0 and make would add "Leaving directory" lines.
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-s", "-n", "lab"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    command = next(line for line in recipe.splitlines() if "jupyterlab" in line)
    assert "-m jupyterlab" in command and "--ip=127.0.0.1" in command
    assert "--IdentityProvider.token=" in command and "token=''" not in command and 'token=""' not in command
    assert "--ServerApp.root_dir=notebooks" in command
