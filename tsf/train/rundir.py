"""The run folder: one process at a time, no fresh run over another, and ``metrics.jsonl``.

* :class:`RunLock`: an exclusive ``flock`` on ``RUN/run.lock``, held for the life of a run.
  The kernel releases it when the process ends, however it ends (``kill -9`` included); a
  second process that asks for it is refused at once with the folder and the holder (pid,
  host) in the message. Forked children (DataLoader workers, decoder processes) close their
  copy, so a lingering child never keeps a dead run's folder locked.
* :func:`prepare_run_dir`: a fresh run refuses a folder that holds another run's files,
  unless asked to resume it or to overwrite it.
* :func:`append_metrics` / :func:`truncate_metrics`: the log is appended line by line; on
  resume it is cut back to the checkpoint's step by writing a new file and renaming it over
  the old one, so no moment exists in which the history is gone. A torn last line (what a
  power loss or a full disk leaves) is dropped with a warning that names the file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from ..provenance import utc_now
from ..weights.io import writing
from .checkpoint import fsync_path

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"
METRICS_FILE = "metrics.jsonl"
# What a run writes into its folder; a fresh run refuses a folder that holds any of them.
RUN_FILES = ("config.json", "env.json", METRICS_FILE, "result.json", "model", "checkpoints")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked; the message names it and says what to do."""


# -- the lock ----------------------------------------------------------------------------

_HELD: set[int] = set()  # descriptors of the locks this process holds


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)


class RunLock:
    """An exclusive lock on a run folder for as long as a run uses it (``with RunLock(folder):``)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            raise RunFolderError(f"{self.run_dir} is in use by another run ({_describe(holder)}); wait for it "
                                 "to end, or give this run another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}).encode(), 0)
        self._fd = fd
        _HELD.add(fd)

    def release(self) -> None:
        if self._fd is not None:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "holder not recorded yet"


# -- what a fresh run may start in ---------------------------------------------------------

def prepare_run_dir(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Let a run start in ``run_dir``: a resumed run always may; a fresh one only if the folder
    holds no other run's files, or with ``overwrite``, which deletes them (only them)."""
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunFolderError(f"{run_dir}: resume or overwrite, not both")
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if resume or not found:
        return
    if not overwrite:
        raise RunFolderError(f"{run_dir} holds another run ({', '.join(found)}); continue it with --resume, "
                             "or start afresh over it with --overwrite (which deletes those)")
    for name in found:
        path = run_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    log.warning("overwrite: deleted the previous run's %s in %s", ", ".join(found), run_dir)


# -- metrics.jsonl ---------------------------------------------------------------------------

def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    """One line of ``metrics.jsonl``."""
    with writing(path), open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a line that is not a whole record is dropped with a
    warning naming the file and the line (a torn last line is what an interrupted write leaves)."""
    return [record for _, record in _parse_metrics(Path(path))]


def _parse_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    lines = path.read_text(errors="replace").splitlines()
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("step"), int):
                raise ValueError("not a record with a step")
        except ValueError as err:
            where = "its torn last line" if number == len(lines) else f"line {number}"
            log.warning("%s: dropping %s (%s): %.80r", path, where, err, line)
            continue
        out.append((line, record))
    return out


def truncate_metrics(path: str | Path, step: int) -> None:
    """On resume, drop the lines logged after ``step`` (they will be logged again), atomically."""
    path = Path(path)
    if not path.exists():
        return
    keep = [line for line, record in _parse_metrics(path) if record["step"] <= step]
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with writing(path):
        with open(tmp, "w") as handle:
            handle.write("".join(line + "\n" for line in keep))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)  # the old file until this instant, the new one after it
    fsync_path(path.parent)


def sync_metrics(path: str | Path) -> None:
    """Flush ``metrics.jsonl`` to disk (before a checkpoint, so the log is as durable as it)."""
    if Path(path).exists():
        fsync_path(Path(path))
