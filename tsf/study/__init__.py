"""The study: the paper's tables and figures on synthetic stand-ins, one function each.

Notebooks call :func:`setup` once, then one function per table or figure:

* :mod:`tsf.study.quickstart`: a model's cost, a short training run, predictions;
* :mod:`tsf.study.experiments`: Table 1 (schemes), Table 4 (position embeddings), Figure 5
  (clip length), Figure 4 (training-set size);
* :mod:`tsf.study.control`: order alone, made salient (a positive control);
* :mod:`tsf.study.cost`: Figure 3 and Tables 2-3;
* :mod:`tsf.study.attention`: the explorer, attention figures and "is it meaningful?".

Runs are cached by configuration (:class:`Runs`) and shared across notebooks; results go to
``figures/<preset>/`` with a summary beside the paper's numbers (:func:`write_summary`).
"""

from __future__ import annotations

from pathlib import Path

from .presets import STUDY_PRESETS, StudyPreset, study_preset
from .report import Output, write_summary
from .runs import RunRecord, Runs

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["STUDY_PRESETS", "Output", "RunRecord", "Runs", "StudyPreset", "setup", "study_preset", "write_summary"]


def default_runs_dir(preset: str) -> Path:
    """``runs/<preset>/`` at the repository root: the run cache of a preset, shared by
    ``make reproduce`` and notebooks opened by hand."""
    return ROOT / "runs" / preset


def setup(preset: str = "cpu", seed: int = 0, output_dir: str = "", runs_dir: str = "",
          progress: bool = True) -> tuple[StudyPreset, Runs, Output]:
    """The study preset (seeds shifted by ``seed``), the run cache and the output folder.

    Defaults, at the repository root whatever the notebook's working directory:
    ``runs/<preset>/`` for the runs (the cache ``make reproduce`` fills too, so a notebook
    opened in JupyterLab reuses its runs) and the scratch folder ``runs/<preset>/figures/``
    for results. Only ``make reproduce`` writes the committed ``figures/<preset>/``, by
    passing it as ``output_dir``: a notebook run by hand never overwrites them.
    """
    study = study_preset(preset).with_seed(seed)
    runs_root = Path(runs_dir) if runs_dir else default_runs_dir(preset)
    out = Output.create(output_dir or runs_root / "figures", preset)
    study.check_device()  # a GPU preset without a GPU: an error now, not hours on the CPU
    runs = Runs(runs_root, workers=study.workers, progress=progress, curve_every=study.curve_every,
                gpu_workers=study.gpu_runs)
    return study, runs, out
