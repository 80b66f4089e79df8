"""In a real browser: the standalone HTML page, and the explorer live in JupyterLab.

Headless Chromium is Debian's ``chromium`` package (``.ci/run`` installs it), driven by
Playwright through ``executable_path``; ``playwright install`` is never run. Every wait has a
timeout, so a broken page fails instead of hanging. Set ``TSF_SCREENSHOTS=DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import json
import os
import re
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
# where the frame's plotting area sits on the page: it must not move when the view changes
PLOT_BOX = ("(sel) => { const r = document.querySelector(sel + ' .draglayer .xy .nsewdrag').getBoundingClientRect();"
            " return [r.x, r.y, r.width, r.height]; }")
STATE = "() => { const d = document.querySelector('.js-plotly-plot'); return d && d.getAttribute('data-tsf-state'); }"


def open_page(browser, path: Path, errors: list[str], requests: list[str]):
    page = browser.new_page(viewport={"width": 900, "height": 1300})
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), timeout=WAIT_MS)
    page.wait_for_function(STATE, timeout=WAIT_MS)
    return page


def page_state(page) -> dict:
    return json.loads(page.locator(".js-plotly-plot").get_attribute("data-tsf-state"))


def choose_view(page, label: str) -> None:
    """Open the page's view menu and pick an entry, as a user does."""
    page.locator(".updatemenu-header-group").first.click()
    page.locator(".updatemenu-dropdown-button", has_text=label).first.click()


def test_standalone_page_reads_and_reacts(browser, tmp_path):
    from tsf.viz import AttentionExplorer

    torch.manual_seed(0)
    cfg = tsf.preset("small", attention="divided", depth=2)
    clip, mask = moving_square(cfg.num_frames, cfg.img_size, seed=3)
    page_path = AttentionExplorer(tsf.TimeSformer(cfg), clip, mask=mask).to_html(tmp_path / "pages" / "attention.html")
    errors: list[str] = []
    requests: list[str] = []
    page = open_page(browser, page_path, errors, requests)
    out = shots(tmp_path)
    assert page.title() == "Where TimeSformer looks (divided attention, 2 blocks)"
    assert page_state(page) == {"view": "rollout", "layer": 2, "frame": 1, "outline": True}
    assert page.get_by_text("rollout: where the cls token's information comes from").is_visible()
    assert page.get_by_text("the map divided by its largest value in the clip").is_visible()
    assert "Near-uniform map" in page.locator("#tsf-note").inner_text()  # an untrained model's rollout
    outline = "() => JSON.stringify(document.querySelector('.js-plotly-plot').data[3].x)"
    assert json.loads(page.evaluate(outline))  # the square's outline is drawn
    before = page.evaluate(PLOT_Z, ".js-plotly-plot")
    box = page.evaluate(PLOT_BOX, ".js-plotly-plot")
    page.screenshot(path=str(out / "html_frame1.png"), full_page=True)
    rail = page.locator("rect.slider-rail-touch-rect").first  # the first slider is the frame slider
    rbox = rail.bounding_box(timeout=WAIT_MS)
    page.mouse.click(rbox["x"] + rbox["width"] * 0.75, rbox["y"] + rbox["height"] / 2)
    page.wait_for_function(f"(z) => ({PLOT_Z})('.js-plotly-plot') !== z", arg=before, timeout=WAIT_MS)
    assert page_state(page)["frame"] > 1
    page.screenshot(path=str(out / "html_frame_moved.png"), full_page=True)
    assert (out / "html_frame1.png").read_bytes() != (out / "html_frame_moved.png").read_bytes()
    for label, view in [("gradient rollout", "gradient"), ("raw attention", "raw"), ("rollout", "rollout")]:
        choose_view(page, label)
        page.wait_for_function(f"() => JSON.parse(({STATE})()).view === '{view}'", timeout=WAIT_MS)
        assert page.evaluate(PLOT_BOX, ".js-plotly-plot") == box, f"the plot moved when the view became {view}"
    page.locator(".updatemenu-button", has_text="outline on/off").first.click()
    page.wait_for_function(f"() => JSON.parse(({STATE})()).outline === false", timeout=WAIT_MS)
    assert json.loads(page.evaluate(outline)) == []
    assert not errors, errors
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests
    page.close()


def test_explain_command_page_for_a_real_mp4(browser, tmp_path):
    """`python -m tsf explain` on an mp4 file and a saved model: the page loads and plays, offline."""
    from tsf.data import SyntheticVideos, write_video

    cfg = tsf.preset("tiny", attention="divided", num_frames=4, img_size=32, patch_size=8, num_classes=10)
    torch.manual_seed(0)
    tsf.save_pretrained(tsf.TimeSformer(cfg), tmp_path / "model")
    sample = SyntheticVideos("motion", 1, num_frames=4, size=32, seed=0, split="val").sample(0)
    video = write_video(tmp_path / "clip.mp4", sample.frames, 30.0, quality="lossless")
    proc = subprocess.run([sys.executable, "-m", "tsf", "explain", str(tmp_path / "model"), str(video),
                           "--out", str(tmp_path / "page" / "clip.html"), "--sampling", "segment"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    errors: list[str] = []
    requests: list[str] = []
    page = open_page(browser, tmp_path / "page" / "clip.html", errors, requests)
    assert page.title().startswith("clip.mp4")
    assert page_state(page) == {"view": "rollout", "layer": 2, "frame": 1, "outline": False}
    page.locator(".updatemenu-button", has_text="play").first.click()
    page.wait_for_function(f"() => JSON.parse(({STATE})()).frame > 1", timeout=WAIT_MS)
    page.locator(".updatemenu-button", has_text="pause").first.click()
    page.screenshot(path=str(shots(tmp_path) / "explain_command_page.png"), full_page=True)
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


def cells_done(page) -> bool:
    """Every code cell of the notebook has run: numbered prompts, none pending ([*])."""
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)


def test_explorer_renders_and_reacts_in_jupyterlab(browser, jupyterlab, tmp_path):
    base, token, root = jupyterlab
    out = shots(tmp_path)
    page = browser.new_page(viewport={"width": 1300, "height": 1600})
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"{base}/lab/tree/notebooks/06_attention_maps.ipynb?token={token}", timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.get_by_text("| Idle").first.wait_for(timeout=60_000)  # the kernel is up
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        plot = ".jp-OutputArea .js-plotly-plot"
        page.wait_for_function(f"() => ({PLOT_Z})('{plot}') !== null", timeout=300_000)
        widget = page.locator(".widget-vbox", has=page.locator(".js-plotly-plot")).first
        # while the later cells run, the explorer says the kernel is busy instead of looking frozen
        busy = page.locator(".tsf-busy")
        if not cells_done(page):
            busy.wait_for(state="visible", timeout=60_000)
            widget.scroll_into_view_if_needed()
            widget.screenshot(path=str(out / "lab_explorer_busy.png"))
        # what the controls depend on: the kernel free again (every cell run), the banner gone
        deadline = time.monotonic() + 300
        while not cells_done(page):
            assert time.monotonic() < deadline, "the notebook did not finish"
            time.sleep(1)
        busy.wait_for(state="detached", timeout=WAIT_MS)
        page.get_by_text("| Idle").first.wait_for(timeout=WAIT_MS)
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=str(out / "lab_explorer_frame1.png"))
        assert "Colour" in widget.inner_text() and "frame 1 of" in widget.inner_text()
        outline = f"() => JSON.stringify(document.querySelector('{plot}').data[3].x)"
        assert json.loads(page.evaluate(outline)), "the study's clip has a mask: its outline is drawn"
        box = page.evaluate(PLOT_BOX, plot)
        for label, value in [("frame", 4), ("layer", 1)]:
            before = page.evaluate(PLOT_Z, plot)
            set_slider(page, label, value)
            page.wait_for_function(f"(z) => ({PLOT_Z})('{plot}') !== z", arg=before, timeout=WAIT_MS)
        assert "frame 4 of" in widget.inner_text()
        for view in ("gradient rollout", "raw attention", "rollout"):
            before = page.evaluate(PLOT_Z, plot)
            widget.locator(".widget-toggle-button", has_text=view).first.click()
            page.wait_for_function(f"(z) => ({PLOT_Z})('{plot}') !== z", arg=before, timeout=WAIT_MS)
            assert page.evaluate(PLOT_BOX, plot) == box, f"the plot moved when the view became {view}"
        widget.screenshot(path=str(out / "lab_explorer_moved.png"))
        figures = root / "figures"
        assert (figures / "attention_scores_gradient.png").exists()
        assert (figures / "plotly.min.js").exists() and (figures / "attention_divided.html").exists()
    except Exception:
        page.screenshot(path=str(out / "lab_failure.png"))
        raise
    finally:
        page.close()
