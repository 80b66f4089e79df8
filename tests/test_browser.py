"""In a real browser: the standalone HTML page, and the explorer live in JupyterLab.

Headless Chromium is Debian's ``chromium`` package (``.ci/run`` installs it), driven by
Playwright through ``executable_path``; ``playwright install`` is never run. Every wait has a
timeout, so a broken page fails instead of hanging. Set ``TSF_SCREENSHOTS=DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
import torch

import tsf
from tsf.data import moving_square

from .helpers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                               "(apt-get install chromium; .ci/run does it)")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True, timeout=WAIT_MS)
        yield b
        b.close()


def shots(tmp_path: Path) -> Path:
    keep = os.environ.get("TSF_SCREENSHOTS")
    out = Path(keep) if keep else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    return out


PLOT_Z = "(sel) => { const d = document.querySelector(sel); return d && d.data ? JSON.stringify(d.data[1].z) : null; }"


def test_standalone_page_frame_slider_changes_the_heat_map(browser, tmp_path):
    from tsf.viz import AttentionExplorer

    torch.manual_seed(0)
    cfg = tsf.preset("small", attention="divided", depth=2)
    clip, _ = moving_square(cfg.num_frames, cfg.img_size, seed=3)
    page_path = AttentionExplorer(tsf.TimeSformer(cfg), clip).to_html(tmp_path / "pages" / "attention.html")
    page = browser.new_page(viewport={"width": 900, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri(), timeout=WAIT_MS)
    page.wait_for_function("() => { const d = document.querySelector('.js-plotly-plot');"
                           " return d && d.getAttribute('data-tsf-state'); }", timeout=WAIT_MS)
    state = lambda: json.loads(page.locator(".js-plotly-plot").get_attribute("data-tsf-state"))  # noqa: E731
    assert state() == {"view": "rollout", "layer": 2, "frame": 0}
    before = page.evaluate(PLOT_Z, ".js-plotly-plot")
    out = shots(tmp_path)
    page.screenshot(path=str(out / "html_frame0.png"))
    rail = page.locator("rect.slider-rail-touch-rect").first  # the first slider is the frame slider
    box = rail.bounding_box(timeout=WAIT_MS)
    page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
    page.wait_for_function(f"(z) => ({PLOT_Z})('.js-plotly-plot') !== z", arg=before, timeout=WAIT_MS)
    assert state()["frame"] > 0
    page.screenshot(path=str(out / "html_frame_moved.png"))
    assert (out / "html_frame0.png").read_bytes() != (out / "html_frame_moved.png").read_bytes()
    assert not errors, errors
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests
    page.close()


@pytest.fixture()
def jupyterlab(tmp_path):
    """JupyterLab on loopback with a random token, its own HOME and Jupyter dirs; shut down after."""
    root = tmp_path / "lab"
    (root / "notebooks").mkdir(parents=True)
    # the notebook as committed, with the smoke preset and private folders injected after its
    # parameters cell (what papermill does), so the run is quick and writes nothing in the repository
    nb = nbformat.read(ROOT / "notebooks" / "06_attention_maps.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(
        f'preset = "smoke"\noutput_dir = {str(root / "figures")!r}\nruns_dir = {str(tmp_path / "runs")!r}'))
    nbformat.write(nb, root / "notebooks" / "06_attention_maps.ipynb")
    token = secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab"
    for extension, plugin, value in [
            ("notebook-extension", "tracker", {"windowingMode": "none"}),  # keep every cell in the DOM
            ("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False})]:
        (settings / extension).mkdir(parents=True)
        (settings / extension / f"{plugin}.jupyterlab-settings").write_text(json.dumps(value))
    env = dict(os.environ, HOME=str(tmp_path / "home"), JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"),
               JUPYTER_DATA_DIR=str(tmp_path / "jdata"), JUPYTER_RUNTIME_DIR=str(tmp_path / "jrun"),
               IPYTHONDIR=str(tmp_path / "ipython"), MPLCONFIGDIR=str(tmp_path / "mpl"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"))
    log = open(tmp_path / "jupyterlab.log", "w")
    # --port=0: the server takes a free port itself and says which in its jpserver-PID.json
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", "--port=0",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=log, stderr=subprocess.STDOUT)
    info = tmp_path / "jrun" / f"jpserver-{proc.pid}.json"
    base = None
    try:
        deadline = time.monotonic() + 90
        while True:
            base = base or _server_url(info)
            if base is not None and _answers(f"{base}/api/status?token={token}"):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("JupyterLab did not start: " + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, token, root
    finally:
        try:
            if base is None:
                raise OSError("the server never said its port")
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=10)
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.close()


def _server_url(info: Path) -> str | None:
    """The server's address from its jpserver-PID.json, once written."""
    try:
        return f"http://127.0.0.1:{json.loads(info.read_text())['port']}"
    except (OSError, json.JSONDecodeError, KeyError):  # not there yet, or still being written
        return None


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def set_slider(page, label: str, value: int) -> None:
    """Type a value into an ipywidgets slider's readout, as a user can."""
    slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text=label)).first
    slider.locator(".widget-readout").click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def test_explorer_renders_and_reacts_in_jupyterlab(browser, jupyterlab, tmp_path):
    base, token, root = jupyterlab
    out = shots(tmp_path)
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"{base}/lab/tree/notebooks/06_attention_maps.ipynb?token={token}", timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.get_by_text("| Idle").first.wait_for(timeout=60_000)  # the kernel is up
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        plot = ".jp-OutputArea .js-plotly-plot"
        page.wait_for_function(f"() => ({PLOT_Z})('{plot}') !== null", timeout=120_000)
        widget = page.locator(".widget-vbox", has=page.locator(".js-plotly-plot")).first
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=str(out / "lab_explorer_frame0.png"))
        for label, value in [("frame", 3), ("layer", 1)]:
            before = page.evaluate(PLOT_Z, plot)
            set_slider(page, label, value)
            page.wait_for_function(f"(z) => ({PLOT_Z})('{plot}') !== z", arg=before, timeout=WAIT_MS)
        widget.screenshot(path=str(out / "lab_explorer_moved.png"))
        # the notebook went on to write its figures and its page where it was told
        deadline = time.monotonic() + 120
        figures = root / "figures"
        while not (figures / "attention_scores_gradient.png").exists():
            assert time.monotonic() < deadline, f"the notebook did not finish: {sorted(figures.glob('*'))}"
            time.sleep(1)
        assert (figures / "plotly.min.js").exists() and (figures / "attention_divided.html").exists()
    except Exception:
        page.screenshot(path=str(out / "lab_failure.png"))
        raise
    finally:
        page.close()
