"""Scan a dataset for bad videos before a long run (``python -m tsf check-data``).

Every file is probed: it must exist, be non-empty and readable, open as a video (header
and index), and decode its first, middle and last frames (every frame with
``full=True``). Given the clip sampling, a video with fewer frames than a clip needs is
reported as ``short`` (it would be padded by repeating its last frame).

decord can crash (segfault) or hang on some corrupt files, which would take the whole
scan with it. By default the probing runs in a child process (as datasets decode): a crash
is reported as ``decoder crashed (signal N)``, a file that takes longer than ``timeout``
seconds as ``decoder hung``, and the next file gets a fresh child. The annotations are
read with the same label checks as training (see :func:`dataset_paths`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from tqdm.auto import tqdm

from .datasets import read_dataset
from .video import ClipSampling, DecoderDied, Isolated, PathLike, VideoError, decode_frames, probe_video


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one file."""

    path: str
    status: str  # ok | short | bad
    reason: str = ""
    num_frames: int = 0
    fps: float = 0.0
    height: int = 0
    width: int = 0


def check_video(path: PathLike, sampling: ClipSampling | None = None, full: bool = False) -> FileCheck:
    """Probe one file in this process (see the module docstring for what is checked)."""
    try:
        info = probe_video(path)
        n = info.num_frames
        if full:
            for start in range(0, n, 64):
                decode_frames(path, list(range(start, min(start + 64, n))))
        else:
            decode_frames(path, sorted({0, n // 2, n - 1}))
    except VideoError as err:
        return FileCheck(str(path), "bad", err.reason)
    dims = dict(num_frames=n, fps=info.fps, height=info.height, width=info.width)
    if sampling is not None and n < sampling.frames_needed(info.fps):
        return FileCheck(str(path), "short", f"shorter than the clip ({n} frames, a clip needs "
                                             f"{sampling.frames_needed(info.fps)}); padded with its last frame", **dims)
    return FileCheck(str(path), "ok", **dims)


Probe = Callable[[str, "ClipSampling | None", bool], FileCheck]


class IsolatedProber:
    """Runs ``probe`` in a child process (:class:`~tsf.data.video.Isolated`) that survives neither
    crashes nor hangs of the decoder: either is the file's verdict, and the next file gets a fresh child."""

    def __init__(self, probe: Probe = check_video, timeout: float = 60.0) -> None:
        self.worker = Isolated(probe, timeout)

    def __call__(self, path: str, sampling: ClipSampling | None = None, full: bool = False) -> FileCheck:
        try:
            return self.worker(path, sampling, full)
        except DecoderDied as err:
            return FileCheck(path, "bad", err.reason)

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> "IsolatedProber":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class CheckReport:
    """Every file's verdict, in dataset order."""

    files: list[FileCheck] = field(default_factory=list)

    @property
    def bad(self) -> list[FileCheck]:
        return [f for f in self.files if f.status == "bad"]

    @property
    def short(self) -> list[FileCheck]:
        return [f for f in self.files if f.status == "short"]

    def to_dict(self) -> dict:
        return {"checked": len(self.files), "ok": len(self.files) - len(self.bad) - len(self.short),
                "bad": [asdict(f) for f in self.bad], "short": [asdict(f) for f in self.short]}

    def format(self) -> str:
        count = len(self.files)
        lines = [f"checked {count} video{'' if count == 1 else 's'}: {len(self.bad)} bad, {len(self.short)} short"]
        for title, group in (("bad", self.bad), ("short", self.short)):
            if group:
                lines.append(f"{title}:")
                lines += [f"  {f.path}: {f.reason}" for f in group]
        return "\n".join(lines)


def check_files(paths: Sequence[PathLike], *, sampling: ClipSampling | None = None, full: bool = False,
                isolate: bool = True, timeout: float = 60.0, probe: Probe = check_video,
                progress: bool = True) -> CheckReport:
    """Probe every file (with a progress bar), each in an isolated worker unless ``isolate=False``."""
    report = CheckReport()
    prober = IsolatedProber(probe, timeout) if isolate else probe
    try:
        for path in tqdm(paths, desc="checking videos", unit="video", disable=not progress):
            report.files.append(prober(str(path), sampling, full))
    finally:
        if isolate:
            prober.close()
    return report


def dataset_paths(annotations: PathLike, root: PathLike | None = None, *, format: str = "auto",
                  labels: PathLike | None = None, extension: str = ".webm", train: PathLike | None = None,
                  num_classes: int | None = None) -> list[str]:
    """The video paths an annotation file (or a folder per class) lists, in order (any format of
    :data:`tsf.data.datasets.DATASET_FORMATS`), once its labels are checked: against the
    classes of the training list ``train`` if given, else ``num_classes`` integer classes, else
    the labels file or the list's own labels (an :class:`~tsf.data.datasets.AnnotationError`
    lists every bad label with its line)."""
    classes, origin = None, ""
    if train is not None:
        _, classes = read_dataset(train, format, root, labels, extension)
        origin = f"the training list {train}"
    elif num_classes is not None:
        classes, origin = [str(k) for k in range(num_classes)], f"{num_classes} classes"
    samples, _ = read_dataset(annotations, format, root, labels, extension, classes=classes, classes_from=origin)
    return [path for path, _ in samples]
