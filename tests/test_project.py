"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from .helpers import ROOT, readme_setup


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
    study, tests = readme_setup()  # the whole set-up: the study at the cpu preset, then the tests
    assert study == "make reproduce" and tests == "make test"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.strip()]
    assert ci[-1] == tests, "CI runs exactly the README's test command, last"


def _lab_recipe() -> str:
    import subprocess

    # --no-print-directory: under `make test` MAKELEVEL>0 and make would add "Leaving directory" lines.
    recipe = subprocess.run(
        ["make", "--no-print-directory", "-s", "-n", "lab"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    return recipe.replace("\\\n", " ")  # one shell command, its continuation lines joined


def test_make_lab_binds_to_loopback_with_a_token():
    command = next(line for line in _lab_recipe().splitlines() if "-m jupyterlab" in line)
    assert "--ip=127.0.0.1" in command and "--port=" in command and "--ServerApp.port_retries=0" in command
    assert "--IdentityProvider.token=" in command and "token=''" not in command and 'token=""' not in command
    assert "--ServerApp.root_dir=notebooks" in command and "--allow-root" in command  # only when uid 0


@pytest.mark.slow  # starts JupyterLab
def test_make_lab_prints_a_url_that_works_as_root_too(tmp_path):
    """What a user does: `make lab`, then open the URL it printed (on many machines as root)."""
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(tmp_path / "home"), JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "jdata"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jrun"),
               IPYTHONDIR=str(tmp_path / "ipython"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"))
    log = tmp_path / "lab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            match = re.search(r"open (http://127\.0\.0\.1:\d+/lab\?token=[0-9a-f]+)", log.read_text())
            if match:
                url = match.group(1)
                try:
                    with urllib.request.urlopen(url.replace("/lab?", "/api/status?"), timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
            assert proc.poll() is None, f"make lab stopped: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"the printed URL did not answer: {log.read_text()[-2000:]}"
            time.sleep(0.5)
        assert url.startswith(f"http://127.0.0.1:{port}/lab?token=")
        with urllib.request.urlopen(url, timeout=10) as r:  # the page itself, with the token: no login form
            assert r.status == 200 and "JupyterLab" in r.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make, its shell and the server: the group started here
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
