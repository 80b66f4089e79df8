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


def setup(preset: str = "cpu", seed: int = 0, output_dir: str = "", runs_dir: str = "",
          progress: bool = True) -> tuple[StudyPreset, Runs, Output]:
    """The study preset (seeds shifted by ``seed``), the run cache and the output folder.

    Defaults: ``figures/<preset>/`` for results and ``runs/<preset>/`` for the runs, at the
    repository root, whatever the notebook's working directory.
    """
    study = study_preset(preset).with_seed(seed)
    out = Output.create(output_dir or ROOT / "figures" / preset, preset)
    runs = Runs(runs_dir or ROOT / "runs" / preset, workers=study.workers, progress=progress)
    return study, runs, out
