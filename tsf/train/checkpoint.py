"""Training checkpoints: atomic, verified folders that are also loadable model folders.

A checkpoint is ``RUN/checkpoints/step-00000123/`` holding

* ``model.safetensors`` + ``config.json``: the weights, in the same format as
  ``tsf.save_pretrained``, plus ``classes.json`` when the data names its classes (so ``tsf.load_pretrained``, ``python -m tsf eval`` and
  ``predict`` read a checkpoint directly);
* ``trainer_state.pt``: optimiser, scheduler, scaler, RNG states, data position and the
  running epoch sums, written with ``torch.save`` from tensors and plain Python values only,
  and read with ``torch.load(weights_only=True)``;
* ``digests.json``: the SHA-256 of each of the other files, checked whenever the folder is
  read (here and by ``tsf.load_pretrained``), so a file damaged on disk is an error naming it.

It is written into a hidden temporary folder, flushed to disk, then renamed into place: a
process killed while writing leaves only the temporary folder, which is ignored, and the
previous checkpoints untouched. The new folder is then loaded back as a resume would load it
(digests, the weights-only trainer state, the model) before any older checkpoint is pruned,
so a good checkpoint is only ever deleted once a newer one is known good. A full disk is a :class:`~tsf.weights.io.NoSpaceError` that names the
file and leaves the previous checkpoints as they were.
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
from ..weights.io import DIGEST_FILE, NoSpaceError, verify_digests, write_digests, writing

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.pt"
CLASSES_FILE = "classes.json"  # class names, index order, when the data has them
STATE_VERSION = 2  # 2: the folder carries digests.json (version 1 folders load unverified, with a warning)
_NAME = re.compile(r"^step-(\d{8})$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_step(path: str | Path) -> int:
    """The optimiser step of a checkpoint folder, from its name."""
    match = _NAME.match(Path(path).name)
    if not match:
        raise ValueError(f"{path}: not a checkpoint folder name (step-NNNNNNNN)")
    return int(match.group(1))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders are not listed)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=checkpoint_step)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder (not checked: see :func:`newest_good_checkpoint`)."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def fsync_path(path: Path) -> None:
    """Flush a file or a folder (its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        fsync_path(path)
    fsync_path(folder)


def write_model_folder(folder: Path, model: torch.nn.Module, *, classes: list[str] | None = None,
                       state: dict[str, Any] | None = None) -> Path:
    """Write a model folder (and a trainer ``state``) atomically, with digests; replaces ``folder`` if it exists.

    The files go to a hidden sibling, are flushed, then renamed into place; the result is
    read back against its digests before this returns. A full disk is a :class:`NoSpaceError`
    naming the file, and the temporary folder is removed (freeing what it took).
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_pretrained(model, tmp)
        if classes is not None:
            with writing(tmp / CLASSES_FILE):
                (tmp / CLASSES_FILE).write_text(json.dumps(list(classes)))
        if state is not None:
            # through a Python file, so a full disk is ENOSPC (torch's own writer says "unexpected pos")
            with writing(tmp / STATE_FILE), open(tmp / STATE_FILE, "wb") as handle:
                torch.save(state, handle)
        write_digests(tmp)
        with writing(tmp):  # a file system that allocates late reports a full disk here
            _fsync_tree(tmp)
    except NoSpaceError as err:  # named by where the file was going, not the temporary folder
        shutil.rmtree(tmp, ignore_errors=True)
        written = Path(err.filename)
        raise NoSpaceError(folder / written.relative_to(tmp) if written.is_relative_to(tmp) else written) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():  # a damaged folder of the same step, or the model of a finished run: set aside
        os.rename(folder, old)
    os.rename(tmp, folder)  # atomic on POSIX: the folder appears complete or not at all
    fsync_path(folder.parent)
    verify_digests(folder)  # what is on disk now is what was written
    shutil.rmtree(old, ignore_errors=True)
    return folder


def save_checkpoint(run_dir: str | Path, step: int, model: torch.nn.Module, state: dict[str, Any],
                    *, classes: list[str] | None = None, keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically, verify it, then prune all but the newest ``keep``
    of the checkpoints up to it (``keep=0``: none)."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    if final.exists():  # the same step is the same state (resume is exact): nothing to write, if it is intact
        try:
            load_checkpoint(final)
            return final
        except CheckpointError as err:
            log.warning("%s; writing it again", err)
    try:
        write_model_folder(final, model, classes=classes, state=state)
    except NoSpaceError as err:
        previous = [p for p in list_checkpoints(run_dir) if p != final]
        note = f"; the previous checkpoint {previous[-1]} is intact" if previous else ""
        raise NoSpaceError(err.filename, note) from None
    try:
        load_checkpoint(final)  # read back as a resume will read it, before anything older goes
    except CheckpointError as err:
        shutil.rmtree(final, ignore_errors=True)
        raise CheckpointError(f"{final} was written but does not load back, so it is removed and the older "
                              f"checkpoints are kept: {err}") from None
    upto = [p for p in list_checkpoints(run_dir) if checkpoint_step(p) <= step]
    # later ones (left when a run resumed from an earlier checkpoint) stay until the run reaches them
    for old in upto[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):  # left by a process killed while writing (the run folder is locked)
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model and trainer state of a checkpoint folder, checked against its digests; a clear
    error naming the folder and the file if it is damaged."""
    path = Path(path)
    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise CheckpointError(f"{path}: not a training checkpoint (no {STATE_FILE})")
    verified = verify_digests(path)
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or not weights-only
        raise CheckpointError(f"{state_file}: cannot read the trainer state ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != "tsf-trainer":
        raise CheckpointError(f"{state_file}: not a tsf trainer state")
    if not verified:
        if state.get("version", 1) >= 2:
            raise CheckpointError(f"{path}: {DIGEST_FILE} is missing, so its files cannot be checked")
        log.warning("%s: written before checkpoints recorded digests; its files are not checked", path)
    model = load_pretrained(path)
    return model, state


def newest_good_checkpoint(run_dir: str | Path) -> tuple[Path, torch.nn.Module, dict[str, Any]] | None:
    """The newest checkpoint of a run that verifies and loads, loaded; ``None`` if the run has none.

    Damaged ones are skipped with a warning naming each and why; if every one is damaged, a
    :class:`CheckpointError` lists them all.
    """
    found = list_checkpoints(run_dir)
    damaged: list[str] = []
    for path in reversed(found):
        try:
            model, state = load_checkpoint(path)
        except CheckpointError as err:
            log.warning("skipping a damaged checkpoint: %s", err)
            damaged.append(str(err))
            continue
        if damaged:
            log.warning("resuming from %s, the newest checkpoint that verifies (%d newer one%s damaged)", path,
                        len(damaged), "" if len(damaged) == 1 else "s")
        return path, model, state
    if damaged:
        raise CheckpointError(f"no checkpoint of {run_dir} verifies: " + "; ".join(damaged))
    return None


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
    with writing(path):
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)
