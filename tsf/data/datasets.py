"""Video datasets: Kinetics-style lists, Something-Something-V2 JSON, a folder per class.

Every dataset is a :class:`VideoDataset` over ``(path, label)`` pairs; the annotation formats
(Kinetics-style lists, SSv2 JSON, a folder per class) are the rows of :data:`DATASET_FORMATS`,
which ``tsf.train``, ``check-data`` and the command line read. It decodes with
:mod:`tsf.data.video` and transforms with :mod:`tsf.data.transforms`:

* ``mode="train"``: a random clip, scale jitter, random crop, flip (if ``flip``)
  -> ``(clip (C, T, S, S), label)``;
* ``mode="val"``: one view, the middle clip (or the start, see ``test_position``) and the
  centre crop -> ``(clip (C, T, S, S), label)``;
* ``mode="test"``: every view, ``num_clips`` windows x ``num_crops`` crops, clip-major
  -> ``(views (V, C, T, S, S), label, index)``.

Randomness is drawn from a generator seeded by ``(seed, epoch, index)``: a sample is the
same whatever the number of DataLoader workers; call :meth:`VideoDataset.set_epoch` to get
new clips each epoch.

Labels
------
Labels are checked when a list is read, and every bad one is reported with its file and
line (:class:`AnnotationError`): a list's labels are all integers (class indices) or all
class names, never a mix; integers must be dense from 0 unless a class count or a class
list says how many classes there are; a held-out split is read with the training split's
classes (``read_dataset(..., classes=...)``), so its indices are the training indices and a
class the training split lacks is an error naming it.

Bad input
---------
A missing, unreadable, empty, truncated or corrupt file is handled by ``on_error``:

* ``"raise"``: a :class:`~tsf.data.video.VideoError` naming the file and the reason;
* ``"skip"``: a :class:`BadVideoWarning`, the ``skipped`` counter goes up, the index is
  remembered in ``bad_indices``, and the sample of the next usable index (``i + 1``,
  ``i + 2``, ... wrapping around) is returned instead, so the substitute is deterministic.

A video shorter than the clip is padded by repeating its last frame and counted in
``padded`` (``on_short="pad"``, the authors' behaviour), or treated as bad input
(``on_short="error"``). The counters live in shared memory, so they also count what
DataLoader worker processes saw, and an index found bad by one process is skipped by all.

Some corrupt files crash or hang decord itself. A dataset decodes in a child process
(:class:`~tsf.data.video.IsolatedDecoder`, ``isolate=True``, the default), so such a file
is bad input like any other: "decoder crashed (signal 11)", or "decoder hung" after
``timeout`` seconds, under either policy. ``python -m tsf check-data`` still finds them all
before a long run.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import multiprocessing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .transforms import EvalTransform, TrainTransform
from .video import ClipSampling, IsolatedDecoder, LoadedClips, PathLike, VideoError, load_clips

DATASET_MODES: tuple[str, ...] = ("train", "val", "test")
ON_ERROR: tuple[str, ...] = ("raise", "skip")
ON_SHORT: tuple[str, ...] = ("pad", "error")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")


class BadVideoWarning(UserWarning):
    """A video was skipped (``on_error="skip"``)."""


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the line or entry."""


def mix_seed(*parts: int) -> int:
    """A well-spread 63-bit seed from integers (splitmix64 over the parts), for per-sample generators."""
    x = 0x9E3779B97F4A7C15
    for part in parts:
        x = (x ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 31
    return x & ((1 << 63) - 1)


class BadInputLog:
    """Counters and flags of bad input, in shared memory so DataLoader workers add to them."""

    def __init__(self, num_samples: int) -> None:
        self._skipped = multiprocessing.Value(ctypes.c_int64, 0)
        self._padded = multiprocessing.Value(ctypes.c_int64, 0)
        self._bad = multiprocessing.Array(ctypes.c_bool, max(num_samples, 1), lock=False)
        self._short = multiprocessing.Array(ctypes.c_bool, max(num_samples, 1), lock=False)

    def add_skip(self, index: int) -> None:
        with self._skipped.get_lock():
            self._skipped.value += 1
        self._bad[index] = True

    def add_padding(self, index: int) -> None:
        with self._padded.get_lock():
            self._padded.value += 1
        self._short[index] = True

    @property
    def skipped(self) -> int:
        return int(self._skipped.value)

    @property
    def padded(self) -> int:
        return int(self._padded.value)

    def is_bad(self, index: int) -> bool:
        return bool(self._bad[index])

    def bad_indices(self) -> list[int]:
        return [i for i, flag in enumerate(self._bad) if flag]

    def short_indices(self) -> list[int]:
        return [i for i, flag in enumerate(self._short) if flag]


class VideoDataset(Dataset):
    """Clips from ``(path, label)`` pairs; see the module docstring for modes and bad input."""

    def __init__(self, samples: Sequence[tuple[PathLike, int]], classes: Sequence[str], *,
                 mode: str = "train", sampling: ClipSampling | None = None, crop_size: int = 224,
                 scale: tuple[int, int] = (256, 320), flip: bool = True, num_crops: int = 3,
                 decode_size: int | None = None, on_error: str = "raise", on_short: str = "pad",
                 seed: int = 0, num_threads: int = 1, isolate: bool = True, timeout: float = 60.0,
                 decoder: Callable[..., LoadedClips] = load_clips) -> None:
        for name, value, choices in (("mode", mode, DATASET_MODES), ("on_error", on_error, ON_ERROR),
                                     ("on_short", on_short, ON_SHORT)):
            if value not in choices:
                raise ValueError(f"{name} must be one of {choices}, got {value!r}")
        self.samples: list[tuple[str, int]] = [(str(p), int(label)) for p, label in samples]
        self.classes: list[str] = list(classes)
        self.mode = mode
        self.sampling = sampling or ClipSampling()
        self.train_transform = TrainTransform(crop_size, scale[0], scale[1], flip)
        self.eval_transform = EvalTransform(crop_size, num_crops if mode == "test" else 1)
        self.decode_size = decode_size  # short side to decode at (resizing inside decord), None = the file's
        self.on_error = on_error
        self.on_short = on_short
        self.seed = seed
        self.epoch = 0
        self.num_threads = num_threads
        # decoding: in a child process that a decoder crash or hang cannot take down, unless isolate=False
        self.decode: Callable[..., LoadedClips] = IsolatedDecoder(decoder, timeout) if isolate else decoder
        self.log = BadInputLog(len(self.samples))
        self._reasons: dict[int, str] = {}  # why an index was bad, in this process

    # -- bookkeeping -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def skipped(self) -> int:
        """How many times a bad video was replaced by a substitute (all processes)."""
        return self.log.skipped

    @property
    def padded(self) -> int:
        """How many clips were padded because their video was too short (all processes)."""
        return self.log.padded

    @property
    def bad_indices(self) -> list[int]:
        """Indices found unusable so far (all processes)."""
        return self.log.bad_indices()

    @property
    def bad_reasons(self) -> dict[str, str]:
        """path -> reason for the bad videos this process met."""
        return {self.samples[i][0]: reason for i, reason in self._reasons.items()}

    def set_epoch(self, epoch: int) -> None:
        """Draw new random clips (train mode) for another epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} videos, {self.num_classes} classes, mode={self.mode!r}, "
                f"{self.sampling}, on_error={self.on_error!r})")

    # -- loading -----------------------------------------------------------------------
    def generator(self, index: int) -> torch.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, index))

    def load(self, index: int, generator: torch.Generator | None = None) -> LoadedClips:
        """The raw uint8 clips of sample ``index``; a :class:`VideoError` if it is unusable."""
        path = self.samples[index][0]
        if self.mode == "train":
            sampling, mode = self.sampling, "train"
        elif self.mode == "val":  # one view: the middle (or start) window
            sampling, mode = dataclasses.replace(self.sampling, num_clips=1), "test"
        else:
            sampling, mode = self.sampling, "test"
        clips = self.decode(path, sampling, mode=mode, size=self.decode_size, generator=generator,
                            num_threads=self.num_threads)
        if clips.padded:
            if self.on_short == "error":
                raise VideoError(path, f"shorter than the clip ({clips.num_video_frames} frames, the clip needs "
                                       f"{sampling.frames_needed(clips.fps)})")
            self.log.add_padding(index)
        return clips

    def _get(self, index: int) -> tuple:
        generator = self.generator(index)
        clips = self.load(index, generator).frames  # (K, T, H, W, C)
        label = self.samples[index][1]
        if self.mode == "train":
            return self.train_transform(clips[0], generator), label
        if self.mode == "val":
            return self.eval_transform(clips[0])[0], label
        views = torch.cat([self.eval_transform(clip) for clip in clips])  # (K * crops, C, T, S, S), clip-major
        return views, label, index

    def __getitem__(self, index: int) -> tuple:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} videos")
        index %= len(self)
        if self.on_error == "raise":
            return self._get(index)
        for step in range(len(self)):
            j = (index + step) % len(self)
            if j in self._reasons or self.log.is_bad(j):  # known bad, in this process or another
                self.log.add_skip(j)
                continue
            try:
                sample = self._get(j)
            except VideoError as err:
                self._reasons[j] = err.reason
                self.log.add_skip(j)
                warnings.warn(f"skipping {err.path}: {err.reason}", BadVideoWarning, stacklevel=2)
                continue
            if j != index and self.mode == "test":
                sample = (*sample[:2], j)
            return sample
        raise VideoError(self.samples[index][0], f"no usable video in the dataset ({len(self)} tried)")


# ---------------------------------------------------------------------------------------
# annotation formats

_HEADER_PATHS = {"path", "video", "video_path", "file", "filename", "youtube_id"}
_HEADER_LABELS = {"label", "class", "class_name", "label_id", "classname"}


def _split_line(line: str) -> list[str]:
    """``path label`` or ``path,label``: split at the last comma, else the last whitespace."""
    if "," in line:
        head, _, tail = line.rpartition(",")
        return [head.strip(), tail.strip()]
    return line.rsplit(None, 1)


MAX_PROBLEMS = 10  # problems listed in one AnnotationError


def _raise_problems(problems: list[str], hint: str = "") -> None:
    """One :class:`AnnotationError` listing the problems (the first ``MAX_PROBLEMS``), if any."""
    if not problems:
        return
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    raise AnnotationError("\n".join(shown + ([hint] if hint else [])))


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def read_kinetics_annotations(path: PathLike, root: PathLike | None = None,
                              classes: Sequence[str] | None = None, *, num_classes: int | None = None,
                              classes_from: str = "") -> tuple[list[tuple[str, int]], list[str]]:
    """Parse a ``path label`` list (space or comma separated, ``#`` comments, an optional header).

    Paths are relative to ``root`` (default: the file's folder). Labels are all integers or
    all class names; a mix is an error. Integers are class indices: in ``[0, K)`` where
    ``classes`` or ``num_classes`` give K, else every index from 0 to the largest must have a
    sample (so one typo cannot size the model; ``classes`` default to ``"0" ... "K-1"``).
    Names are looked up in ``classes`` (default: the sorted names found). ``classes_from``
    says where ``classes`` came from, for messages (the training list, a labels file). Every
    problem is reported with the file and the line. Returns ``(samples, classes)``.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot read annotation file ({err})") from err
    entries: list[tuple[int, str, str]] = []
    problems: list[str] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.count(",") > 1:
            problems.append(
                f"{path} line {number}: expected 'path,label' (2 fields), got {line.count(',') + 1} comma-separated "
                "fields; the official Kinetics CSV (label,youtube_id,time_start,time_end,split) lists YouTube ids, "
                "write one 'path label' line per downloaded clip instead")
            continue
        fields = _split_line(line)
        if len(fields) != 2 or not fields[0] or not fields[1]:
            problems.append(f"{path} line {number}: expected 'path label' (space or comma separated), got {raw!r}")
            continue
        if not entries and fields[0].lower() in _HEADER_PATHS and fields[1].lower() in _HEADER_LABELS:
            continue  # a header line
        entries.append((number, fields[0], fields[1]))
    _raise_problems(problems)
    if not entries:
        raise AnnotationError(f"{path}: no samples")
    labels, classes = _kinetics_labels(path, entries, classes, num_classes, classes_from)
    return [(str(root / rel), k) for (_, rel, _), k in zip(entries, labels)], classes


def _kinetics_labels(path: Path, entries: list[tuple[int, str, str]], classes: Sequence[str] | None,
                     num_classes: int | None, classes_from: str) -> tuple[list[int], list[str]]:
    """The class index of every entry and the class names, or an :class:`AnnotationError` listing every bad label."""
    where = f" (the classes of {classes_from})" if classes_from else ""
    ints = [(number, _as_int(label), label) for number, _, label in entries]
    numbered = [(n, k) for n, k, _ in ints if k is not None]
    named = [(n, label) for n, k, label in ints if k is None]
    if numbered and named:  # report the lines of the rarer kind
        (n0, k0), (m0, name0) = numbered[0], named[0]
        odd = [f"{path} line {n}: class name {label!r} among integer labels (line {n0}: {k0})" for n, label in named] \
            if len(named) <= len(numbered) else \
            [f"{path} line {n}: integer label {k} among class names (line {m0}: {name0!r})" for n, k in numbered]
        _raise_problems(odd, "a list's labels are all class indices or all class names, not a mix")
    if named:
        names = list(classes) if classes is not None else sorted({label for _, label in named})
        index = {name: k for k, name in enumerate(names)}
        _raise_problems([f"{path} line {n}: unknown class {label!r}{where}" for n, label in named
                         if label not in index])
        return [index[label] for _, label in named], names
    bound = len(classes) if classes is not None else num_classes
    if bound is not None:
        _raise_problems([f"{path} line {n}: label {k} outside [0, {bound}){where}" for n, k in numbered
                         if not 0 <= k < bound])
        return [k for _, k in numbered], list(classes) if classes is not None else [str(k) for k in range(bound)]
    present = {k for _, k in numbered}
    count = len(present)  # dense: exactly 0 ... count - 1
    bad = [(n, k) for n, k in numbered if not 0 <= k < count]
    if bad:
        missing = sorted(set(range(count)) - present)[:5]
        _raise_problems(
            [f"{path} line {n}: label {k} is not among 0 ... {count - 1}" for n, k in bad],
            f"integer labels must be dense from 0: {count} distinct labels are 0 ... {count - 1}, but no sample has "
            f"{', '.join(map(str, missing))}; give the class names (a labels file) or the class count if some "
            "classes really have no samples")
    return [k for _, k in numbered], [str(k) for k in range(count)]


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise AnnotationError(f"{path}: cannot read ({err})") from err
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path} line {err.lineno}: invalid JSON ({err.msg})") from err


def _names_by_index(data: dict, path: Path) -> list[str]:
    """``{class name: index}`` (indices as ints or strings, exactly 0 ... K-1) -> class names by index."""
    by_index: dict[int, str] = {}
    for name, value in data.items():
        try:
            k = int(value)
        except (TypeError, ValueError):
            raise AnnotationError(f"{path}: class {name!r} has a non-integer index {value!r}") from None
        if k in by_index:
            raise AnnotationError(f"{path}: index {k} is used by {by_index[k]!r} and {name!r}")
        by_index[k] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise AnnotationError(f"{path}: class indices must be 0 ... {len(by_index) - 1}")
    return [by_index[k] for k in range(len(by_index))]


def read_ssv2_labels(path: PathLike) -> list[str]:
    """Something-Something-V2 ``labels.json`` (``{template: index}``, indices as ints or strings) -> class names by index."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not data:
        raise AnnotationError(f"{path}: expected a JSON object {{class name: index}}")
    return _names_by_index(data, path)


def read_class_names(path: PathLike) -> list[str]:
    """Class names from a file: a JSON list, a JSON object ``{name: index}`` (as SSv2's labels), or one name per line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: cannot read class names ({err})") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict):
        return _names_by_index(data, path)
    raise AnnotationError(f"{path}: expected a list of class names, a {{name: index}} object, or one name per line")


def ssv2_class_name(template: str) -> str:
    """The class of an SSv2 entry: its template without the brackets ("Pushing [something] left" -> "Pushing something left")."""
    return template.replace("[", "").replace("]", "")


def read_ssv2_annotations(path: PathLike, labels: PathLike | Sequence[str] | None, root: PathLike | None = None,
                          extension: str = ".webm") -> tuple[list[tuple[str, int]], list[str]]:
    """Parse SSv2 JSON annotations (a list of ``{"id", "label", "template", "placeholders"}``).

    Videos are ``root/{id}{extension}``. ``labels`` is the labels JSON file (or the class
    list); with ``labels=None`` (a test split without labels) every label is -1.
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    classes = read_ssv2_labels(labels) if isinstance(labels, (str, Path)) else list(labels or [])
    index = {name: k for k, name in enumerate(classes)}
    data = _load_json(path)
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{'id', 'label', 'template', 'placeholders'}}")
    if not data:
        raise AnnotationError(f"{path}: no samples")
    samples = []
    for number, entry in enumerate(data):
        if not isinstance(entry, dict) or "id" not in entry:
            raise AnnotationError(f"{path} entry {number}: expected an object with an 'id', got {entry!r:.80}")
        if labels is None:
            k = -1
        elif "template" not in entry:
            raise AnnotationError(f"{path} entry {number} (id {entry['id']}): missing 'template'")
        else:
            name = ssv2_class_name(str(entry["template"]))
            if name not in index:
                raise AnnotationError(f"{path} entry {number} (id {entry['id']}): unknown class {name!r}")
            k = index[name]
        samples.append((str(root / f"{entry['id']}{extension}"), k))
    return samples, classes


def scan_class_folders(root: PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS,
                       classes: Sequence[str] | None = None, *, classes_from: str = ""
                       ) -> tuple[list[tuple[str, int]], list[str]]:
    """``root/CLASS/VIDEO``: one folder per class (sorted names), video files by extension.

    With ``classes`` (the training split's), the folders are mapped through them: a folder
    that is not one of them is an error naming it (``classes_from`` says where they came from).
    """
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"{root}: not a folder")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise AnnotationError(f"{root}: no class folders")
    classes = found if classes is None else list(classes)
    index = {name: k for k, name in enumerate(classes)}
    where = f" (the classes of {classes_from})" if classes_from else ""
    _raise_problems([f"{root / name}: unknown class {name!r}{where}" for name in found
                     if name not in index])
    wanted = {e.lower() for e in extensions}
    samples = [(str(f), index[name]) for name in found
               for f in sorted((root / name).iterdir()) if f.is_file() and f.suffix.lower() in wanted]
    if not samples:
        raise AnnotationError(f"{root}: no video files ({', '.join(sorted(wanted))}) in the class folders")
    return samples, classes


class KineticsDataset(VideoDataset):
    """A Kinetics-style list (``path label`` per line) of videos under ``root``; dense sampling by default."""

    def __init__(self, annotations: PathLike, root: PathLike | None = None, *,
                 classes: Sequence[str] | None = None, num_classes: int | None = None, **kwargs) -> None:
        samples, classes = read_kinetics_annotations(annotations, root, classes, num_classes=num_classes)
        super().__init__(samples, classes, **kwargs)


class SSv2Dataset(VideoDataset):
    """Something-Something-V2 JSON annotations; segment sampling and no flip by default (left/right is the label)."""

    def __init__(self, annotations: PathLike, labels: PathLike | Sequence[str] | None, root: PathLike | None = None,
                 *, extension: str = ".webm", **kwargs) -> None:
        samples, classes = read_ssv2_annotations(annotations, labels, root, extension)
        kwargs.setdefault("sampling", ClipSampling(num_frames=8, sampling="segment"))
        kwargs.setdefault("flip", False)
        super().__init__(samples, classes, **kwargs)


class FolderDataset(VideoDataset):
    """One folder per class under ``root``."""

    def __init__(self, root: PathLike, *, extensions: Sequence[str] = VIDEO_EXTENSIONS, **kwargs) -> None:
        samples, classes = scan_class_folders(root, extensions)
        super().__init__(samples, classes, **kwargs)


# ---------------------------------------------------------------------------------------
# the formats: one row each, read by tsf.train, check-data and the command line

Samples = tuple[list[tuple[str, int]], list[str]]  # ((path, label) pairs, class names)


@dataclass(frozen=True)
class DatasetFormat:
    """One annotation format: how a file of it is recognised and read into ``(samples, classes)``."""

    name: str
    recognises: Callable[[Path], bool]  # for format "auto"
    # (annotations, root, labels, extension, classes, classes_from): classes, if given, are the
    # training split's, which every other split is mapped through
    read: Callable[[Path, Path | None, str | None, str, list[str] | None, str], Samples]


def _read_kinetics(annotations: Path, root: Path | None, labels: str | None, extension: str,
                   classes: list[str] | None, classes_from: str) -> Samples:
    if classes is None and labels:
        classes, classes_from = read_class_names(labels), labels
    return read_kinetics_annotations(annotations, root, classes, classes_from=classes_from)


def _read_ssv2(annotations: Path, root: Path | None, labels: str | None, extension: str,
               classes: list[str] | None, classes_from: str) -> Samples:
    # the training classes come from the same labels file; an unlabelled split (labels=None) stays unlabelled
    return read_ssv2_annotations(annotations, classes if classes is not None and labels else labels, root, extension)


def _read_folder(annotations: Path, root: Path | None, labels: str | None, extension: str,
                 classes: list[str] | None, classes_from: str) -> Samples:
    return scan_class_folders(root / annotations if root else annotations, classes=classes, classes_from=classes_from)


DATASET_FORMATS: dict[str, DatasetFormat] = {f.name: f for f in (
    # 'path label' lines (space or comma separated); labels: an optional class-name file
    DatasetFormat("kinetics", lambda p: not p.is_dir() and p.suffix.lower() != ".json", _read_kinetics),
    # a JSON list of {"id", "template", ...}; labels: the labels JSON; videos root/{id}{extension}
    DatasetFormat("ssv2", lambda p: not p.is_dir() and p.suffix.lower() == ".json", _read_ssv2),
    # root/CLASS/VIDEO, one folder per class (relative to root, if given)
    DatasetFormat("folder", lambda p: p.is_dir(), _read_folder),
)}


def read_dataset(annotations: PathLike, format: str = "auto", root: PathLike | None = None,
                 labels: PathLike | None = None, extension: str = ".webm", *, classes: Sequence[str] | None = None,
                 classes_from: str = "") -> Samples:
    """``(samples, classes)`` of any format of :data:`DATASET_FORMATS` (``auto``: recognised by the path).

    ``classes``: the training split's classes (``classes_from`` says where they came from, for
    messages); the labels of this split are mapped through them, and a class they lack is an
    error naming it. Without them, a split's labels define its classes.
    """
    annotations = Path(annotations)
    if format == "auto":
        format = next(f.name for f in DATASET_FORMATS.values() if f.recognises(annotations))
    if format not in DATASET_FORMATS:
        raise ValueError(f"format must be 'auto' or one of {tuple(DATASET_FORMATS)}, got {format!r}")
    return DATASET_FORMATS[format].read(annotations, Path(root) if root else None, str(labels) if labels else None,
                                        extension, list(classes) if classes is not None else None, classes_from)
