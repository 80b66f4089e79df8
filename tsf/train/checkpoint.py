"""Training checkpoints: atomic folders that are also loadable model folders.

A checkpoint is ``RUN/checkpoints/step-00000123/`` holding

* ``model.safetensors`` + ``config.json``: the weights, in the same format as
  ``tsf.save_pretrained``, plus ``classes.json`` when the data names its classes (so ``tsf.load_pretrained``, ``python -m tsf eval`` and
  ``predict`` read a checkpoint directly);
* ``trainer_state.pt``: optimiser, scheduler, scaler, RNG states, data position and the
  running epoch sums, written with ``torch.save`` from tensors and plain Python values only,
  and read with ``torch.load(weights_only=True)``.

It is written into a hidden temporary folder, flushed to disk, then renamed into place: a
process killed while writing leaves only the temporary folder, which is ignored, and the
previous checkpoints untouched. The newest complete folder is the one to resume from.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..weights import CheckpointError, load_pretrained, save_pretrained

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
CLASSES_FILE = "classes.json"  # class names, index order, when the data has them
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are not listed)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any],
                    *, classes: list[str] | None = None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically and prune all but the newest ``keep``."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    if final.exists():  # the same step is the same state (resume is exact): nothing to write
        return final
    tmp = root / f".step-{step:08d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_pretrained(model, tmp)
    if classes is not None:
        (tmp / CLASSES_FILE).write_text(json.dumps(list(classes)))
    torch.save(state, tmp / STATE_FILE)
    _fsync_tree(tmp)
    os.rename(tmp, final)  # atomic on POSIX: the folder appears complete or not at all
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*.tmp-*"):  # left by a process killed while writing
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model and trainer state of a checkpoint folder; a clear error if it is damaged."""
    path = Path(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"{path}: not a training checkpoint (no {STATE_FILE})")
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or not weights-only
        raise CheckpointError(f"{state_file}: cannot read the trainer state ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != "tsf-trainer":
        raise CheckpointError(f"{state_file}: not a tsf trainer state")
    model = load_pretrained(path)
    return model, state


def read_classes(folder: str | Path) -> list[str] | None:
    """The class names saved beside a checkpoint's weights, if any."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: expected a JSON list of class names")
    return names


def describe_mismatch(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<missing>"), current.get(key, "<missing>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += describe_mismatch(a, b, name + ".")
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and list(a) == list(b)):
            out.append(f"{name}: checkpoint {a!r} vs now {b!r}")
    return out


def write_json_atomic(path: str | Path, data: Any) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
