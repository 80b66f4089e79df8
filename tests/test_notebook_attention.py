"""notebooks/attention_maps.ipynb: committed without outputs, parameterised, and runs under papermill."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "attention_maps.ipynb"


def test_committed_without_outputs_and_with_a_parameters_cell():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    lines = [line for line in params[0].source.splitlines() if line.strip()]
    assert all(": " in line.split("=")[0] and "#" in line for line in lines), "annotated, commented assignments"
    assert any(line.startswith("preset: str") for line in lines)


def test_runs_under_papermill(tmp_path):
    out_dir = tmp_path / "figures"
    papermill.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(NOTEBOOK.parent),
                               parameters={"preset": "smoke", "attention": "axial", "samples": 2,
                                           "output_dir": str(out_dir)},
                               progress_bar=False, kernel_name="python3")
    for name in ["rollout_layers_axial.png", "gradient_strip_axial.png", "attention_axial.html",
                 "plotly.min.js", "mask_scores.png"]:
        assert (out_dir / name).stat().st_size > 0, name
    nb = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert any("image/png" in o.get("data", {}) for o in outputs)
