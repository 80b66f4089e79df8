"""Run the study notebooks through papermill: ``make reproduce`` / ``python -m tsf reproduce``.

Every notebook gets the same parameters (``preset``, ``seed``, ``output_dir`` for tables
and figures, ``runs_dir`` for the shared cache of training runs: ``runs/<preset>/``, the
one a notebook opened by hand uses too) and is executed into ``runs/<preset>/notebooks/``
(executed copies are kept there, not committed). A failing notebook stops the
run with the notebook, the cell and the error named; its partial output stays on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provenance import code, label
from .bench.table import format_minutes, format_table

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
# In study order: later notebooks reuse the runs the earlier ones trained.
NOTEBOOKS = (
    "01_quickstart",
    "02_attention_schemes",
    "03_cost",
    "04_positional_embeddings",
    "05_clip_length_and_data",
    "06_attention_maps",
)


def _local_kernel_manager():
    from jupyter_client.manager import KernelManager  # jupyter is optional (the notebooks extra)

    class LocalKernelManager(KernelManager):
        """Kernels talk over local IPC sockets, not TCP: nothing listens on a network port (and
        ipykernel has no unencrypted-TCP warning to print for every notebook)."""

        def __init__(self, **kwargs):
            kwargs.setdefault("transport", "ipc")
            super().__init__(**kwargs)

    return LocalKernelManager


def __getattr__(name: str):  # jupyter_client imports LocalKernelManager by name; build it on first use
    if name == "LocalKernelManager":
        return _local_kernel_manager()
    raise AttributeError(name)


def kernel_pythonpath(current: str, root: Path = ROOT) -> str:
    """``PYTHONPATH`` for the notebooks' kernels: the repository first, then ``current``'s entries made
    absolute. The kernels start in ``notebooks/``, where a relative entry would point elsewhere, and
    on a machine where tsf is not installed (a GPU machine's own torch) this is how they import it."""
    entries = [str(root)] + [str(Path(e).resolve()) for e in current.split(os.pathsep) if e]
    return os.pathsep.join(dict.fromkeys(entries))


@contextlib.contextmanager
def _kernel_environment():
    """The kernels started inside see :func:`kernel_pythonpath`; this process's environment is restored after."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = kernel_pythonpath(before or "")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before


class ReproduceError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


@dataclass(frozen=True)
class NotebookRun:
    name: str
    seconds: float
    output: Path


def select(only: Sequence[str] | None) -> list[str]:
    """Notebook names for ``--only`` (a full name, or any unambiguous part of one)."""
    if not only:
        return list(NOTEBOOKS)
    chosen = []
    for want in only:
        hits = [nb for nb in NOTEBOOKS if want == nb or want in nb]
        if len(hits) != 1:
            raise ValueError(f"--only {want!r} matches {hits or 'no notebook'}; notebooks: {', '.join(NOTEBOOKS)}")
        chosen.append(hits[0])
    return [nb for nb in NOTEBOOKS if nb in chosen]


def _failing_cell(notebook: Path, exec_count: int | None) -> tuple[int | None, str]:
    """Position and first line of the cell that raised, found in the saved copy by its execution count
    (papermill adds an injected-parameters cell and an error note, so indices move)."""
    import nbformat  # optional (the notebooks extra)

    try:
        cells = nbformat.read(notebook, as_version=4).cells
    except (OSError, ValueError):
        return None, "?"
    code = [c for c in cells if c.cell_type == "code"]
    for number, cell in enumerate(code, 1):
        if exec_count is not None and cell.get("execution_count") == exec_count:
            first = next((line.strip() for line in cell.source.splitlines() if line.strip()), "")
            return number, first[:120]
    return None, "?"


def reproduce(preset: str = "cpu", only: Sequence[str] | None = None, *, seed: int = 0,
              run_dir: str | Path | None = None, figures_dir: str | Path | None = None,
              notebooks_dir: str | Path = NOTEBOOK_DIR, echo: Callable[[str], Any] = print) -> list[NotebookRun]:
    """Execute the study notebooks at ``preset``; returns what ran, writes ``SUMMARY.md``."""
    # papermill, and the study's pandas, are optional (the notebooks extra): imported when the study runs
    from .study.presets import study_preset

    study_preset(preset).check_device()  # a GPU preset without a GPU stops here, before anything else
    import papermill as pm  # optional, as above
    from papermill.exceptions import PapermillExecutionError
    from .study import default_runs_dir
    from .study.runs import Runs
    from .study.report import write_summary

    names = select(only)
    run_dir = Path(run_dir or default_runs_dir(preset)).resolve()
    figures = Path(figures_dir or ROOT / "figures" / preset).resolve()
    executed = run_dir / "notebooks"
    executed.mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    params = {"preset": preset, "seed": seed, "output_dir": str(figures), "runs_dir": str(run_dir)}
    cached = Runs(run_dir).finished()  # finished runs this one reuses (0: from scratch)
    checkout = code()  # before the notebooks write into figures/, which git tracks
    done: list[NotebookRun] = []
    start = time.perf_counter()
    for i, name in enumerate(names, 1):
        source = Path(notebooks_dir) / f"{name}.ipynb"
        target = executed / f"{name}.ipynb"
        echo(f"[{i}/{len(names)}] {name}: running at preset {preset} ...")
        t0 = time.perf_counter()
        try:
            with _kernel_environment():
                pm.execute_notebook(str(source), str(target), parameters=params, kernel_name="python3",
                                    progress_bar=False, cwd=str(Path(notebooks_dir)),
                                    kernel_manager_class="tsf.reproduce.LocalKernelManager")
        except PapermillExecutionError as err:
            number, first = _failing_cell(target, err.exec_count)
            raise ReproduceError(
                f"{source.name} failed in code cell {number} of the executed copy (`{first}`): "
                f"{err.ename}: {err.evalue.strip()[:500]}\n  partial output kept in {target}") from None
        seconds = time.perf_counter() - t0
        done.append(NotebookRun(name, seconds, target))
        echo(f"[{i}/{len(names)}] {name}: done in {format_minutes(seconds)}")
    summary = write_summary(figures)
    timing = {"preset": preset, "notebooks": {r.name: round(r.seconds, 1) for r in done},
              "total_seconds": round(time.perf_counter() - start, 1), "python": platform.python_version(),
              "command": f"python -m tsf reproduce --preset {preset}" + (f" --only {' '.join(names)}" if only else ""),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    timing["machine"] = label()
    timing["code"], timing["runs_cached_at_start"] = checkout, cached
    if not only:
        (figures / "reproduce.json").write_text(json.dumps(timing, indent=2))
    echo(f"all {len(done)} notebooks done in {format_minutes(timing['total_seconds'])}; summary: {summary}")
    return done


def timing_table(timing: dict[str, Any]) -> str:
    """``reproduce.json`` as the README's table: minutes per notebook and in all, with where it ran."""
    rows = [{"notebook": name, "time": format_minutes(seconds)} for name, seconds in timing["notebooks"].items()]
    rows.append({"notebook": "all", "time": format_minutes(timing["total_seconds"])})
    table = format_table(rows, [("notebook", "notebook", "s"), ("time", "time", ">s")])
    cached = timing.get("runs_cached_at_start")  # absent from files written before it was recorded
    reuse = "" if cached is None else ", from an empty run cache" if cached == 0 else f", reusing {cached} cached runs"
    commit = (timing.get("code") or {}).get("commit")
    return (f"{table}\n`{timing['command']}` on {timing['machine']}, {timing['date']}{reuse}"
            + (f" (commit {commit[:10]})" if commit else ""))


def dry_run(preset: str) -> str:
    """What ``preset`` trains, notebook by notebook: runs, steps, clips, FLOPs and an estimated time."""
    # the study needs pandas (the notebooks extra): imported when asked for
    from .study.plan import format_plan
    from .study.presets import study_preset

    return format_plan(study_preset(preset))


def main(preset: str, only: Sequence[str] | None, seed: int, run_dir: str | None, figures_dir: str | None,
         dry: bool = False) -> int:
    if dry:
        print(dry_run(preset))
        return 0
    try:
        reproduce(preset, only, seed=seed, run_dir=run_dir, figures_dir=figures_dir)
    except ReproduceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
