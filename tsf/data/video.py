"""Reading clips from video files with decord, sampled as the authors of TimeSformer did.

Which frames a clip takes is a pure function of the video's length and frame rate
(:func:`dense_indices`, :func:`segment_indices`, or :meth:`ClipSampling.indices`); decoding
is separate (:func:`decode_frames`): decord decodes only those frames
(``VideoReader.get_batch``), resizing them while decoding when a size is asked for.

Dense sampling (Kinetics; the authors' ``get_start_end_idx`` + ``temporal_sampling``)
    A clip of T frames at sampling rate r covers a window of ``r * T`` frames *at 30 fps*,
    whatever the file's rate: ``r * T * fps / 30`` frames of the file. The T indices are
    ``floor(linspace(start, start + window - 1, T))``. Training draws ``start`` uniformly
    in ``[0, N - window]``. At test time ``k = num_clips`` windows are spread over the video:
    with ``test_position="middle"`` (default; the paper's single middle clip for k = 1)
    window ``i`` starts at ``(N - window) * (i + 1/2) / k``; with ``"start"`` (the authors'
    code) at ``(N - window) * i / k``, so k = 1 is the start of the video.

Segment sampling (Something-Something-V2)
    The N frames are cut into T equal segments ``[floor(i N / T), floor((i+1) N / T))``;
    training takes a random frame of each, test the middle one. (The authors' SSv2 code
    rounds segment bounds over ``N - 1`` frames and lets neighbours share a frame; the
    difference is at most one frame.)

Short videos
    A video with fewer frames than the clip needs is padded by repeating its last frame:
    dense indices past the end are clamped to the last frame (as in the authors' code), and
    segment sampling of N < T frames takes all N frames then the last one T - N times.
    :class:`FrameIndices` says how many positions were padded.

Bad files raise :class:`VideoError` naming the file and the reason (missing, empty,
unreadable, not a video, truncated or corrupt). decord 0.6 mis-sizes frames whose width is
one of a few small values (16, 24, 48, 72, ...); those are decoded with PyAV instead.

Decoder crashes and hangs
    decord can crash (segfault) or hang on some corrupt files. :class:`IsolatedDecoder`
    decodes in a forked child process instead: a crash is a :class:`VideoError` "decoder
    crashed (signal N)", a file that takes longer than ``timeout`` seconds "decoder hung",
    and the next file gets a fresh child. Each process has its own child (a DataLoader
    worker starts one for itself); the clip, and the random generator's state after it,
    are exactly what decoding in the process itself gives. The cost: one fork per process,
    and the frames cross a pipe, about 0.5 ms per MB (1 ms for an 8-frame 256x340 clip, next
    to 70 ms or more of decoding). :class:`Isolated` is the same for any function
    (``check-data`` probes files with it). Forking needs Linux or macOS.
"""

from __future__ import annotations

import faulthandler
import functools
import logging
import math
import multiprocessing
import os
import pickle
import re
import signal
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import decord
import numpy as np
import torch
from torch import Tensor

from .transforms import resize, short_side_shape

log = logging.getLogger(__name__)

SAMPLINGS: tuple[str, ...] = ("dense", "segment")
MODES: tuple[str, ...] = ("train", "test")
TEST_POSITIONS: tuple[str, ...] = ("middle", "start")

PathLike = str | os.PathLike


class VideoError(RuntimeError):
    """A video file that cannot be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: PathLike, reason: str | None = None) -> None:
        if reason is None:  # rebuilt from a message alone, as torch's DataLoader re-raises a worker's error
            path, reason = _split_message(str(path))
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason

    def __reduce__(self) -> tuple:
        return type(self), (self.path, self.reason)


def _split_message(message: str) -> tuple[str, str]:
    """``(path, reason)`` from "PATH: reason", or from a worker's traceback that ends "...VideoError: PATH: reason"."""
    last = message.strip().splitlines()[-1] if message.strip() else ""
    if "VideoError: " in last:
        last = last.split("VideoError: ", 1)[1]
    path, sep, reason = last.partition(": ")
    return (path, reason) if sep else ("", last)


class FrameIndices(NamedTuple):
    """The frames a clip takes, and how many of its positions lie past the video's end."""

    indices: tuple[int, ...]
    padded: int  # positions that repeat the last frame because the video is too short


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as decord sees it."""

    path: str
    num_frames: int
    fps: float
    height: int
    width: int


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _effective_fps(video_fps: float, target_fps: float) -> float:
    """The file's frame rate, or ``target_fps`` where the file does not say (0 or NaN)."""
    return video_fps if video_fps and math.isfinite(video_fps) and video_fps > 0 else target_fps


def _uniform(generator: torch.Generator | None, n: int = 1) -> np.ndarray:
    return torch.rand(n, generator=generator, dtype=torch.float64).numpy()


def dense_indices(num_video_frames: int, num_frames: int, sampling_rate: int = 32, *,
                  video_fps: float = 30.0, target_fps: float = 30.0, mode: str = "train",
                  num_clips: int = 1, clip_index: int = 0, test_position: str = "middle",
                  generator: torch.Generator | None = None) -> FrameIndices:
    """Dense sampling: T frames spread by linspace over a window of ``sampling_rate * T`` frames at ``target_fps``.

    A file whose frame rate is unknown (0 or NaN) is taken to be at ``target_fps``.
    """
    _check_choice("mode", mode, MODES)
    _check_choice("test_position", test_position, TEST_POSITIONS)
    if num_video_frames < 1 or num_frames < 1 or sampling_rate < 1:
        raise ValueError(f"need num_video_frames, num_frames, sampling_rate >= 1, got "
                         f"{num_video_frames}, {num_frames}, {sampling_rate}")
    if not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index must be in [0, {num_clips}), got {clip_index}")
    window = sampling_rate * num_frames / target_fps * _effective_fps(video_fps, target_fps)  # in frames of the file
    delta = max(num_video_frames - window, 0.0)
    if mode == "train":
        start = float(_uniform(generator)[0]) * delta
    elif test_position == "middle":
        start = delta * (clip_index + 0.5) / num_clips
    else:
        start = delta * clip_index / num_clips
    raw = np.floor(np.linspace(start, start + window - 1, num_frames)).astype(np.int64)
    padded = int((raw > num_video_frames - 1).sum())
    return FrameIndices(tuple(int(i) for i in raw.clip(0, num_video_frames - 1)), padded)


def segment_indices(num_video_frames: int, num_frames: int, *, mode: str = "train",
                    generator: torch.Generator | None = None) -> FrameIndices:
    """Segment sampling: one frame of each of T equal segments (random in training, the middle at test)."""
    _check_choice("mode", mode, MODES)
    n, t = num_video_frames, num_frames
    if n < 1 or t < 1:
        raise ValueError(f"need num_video_frames, num_frames >= 1, got {n}, {t}")
    if n < t:  # too short: every frame once, then the last one repeated
        return FrameIndices(tuple(range(n)) + (n - 1,) * (t - n), t - n)
    bounds = (np.arange(t + 1) * n) // t  # segment i is [bounds[i], bounds[i+1])
    lengths = np.diff(bounds)
    if mode == "train":
        offsets = np.floor(_uniform(generator, t) * lengths).astype(np.int64)
    else:
        offsets = lengths // 2
    return FrameIndices(tuple(int(i) for i in bounds[:-1] + offsets), 0)


@dataclass(frozen=True)
class ClipSampling:
    """How clips are taken from a video: the sampling scheme and its parameters."""

    num_frames: int = 8  # T
    sampling: str = "dense"  # dense (Kinetics) | segment (SSv2)
    sampling_rate: int = 32  # dense only: frames between samples at target_fps (authors: 32 for 8 frames)
    target_fps: float = 30.0  # dense only: the rate the window is measured at
    num_clips: int = 1  # test windows per video (dense; segment sampling has one)
    test_position: str = "middle"  # middle (paper) | start (authors' code): where test windows sit

    def __post_init__(self) -> None:
        _check_choice("sampling", self.sampling, SAMPLINGS)
        _check_choice("test_position", self.test_position, TEST_POSITIONS)
        for name in ("num_frames", "sampling_rate", "num_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sampling == "segment" and self.num_clips != 1:
            raise ValueError("segment sampling takes one clip per video (num_clips=1)")
        if not self.target_fps > 0:
            raise ValueError(f"target_fps must be > 0, got {self.target_fps}")

    def frames_needed(self, video_fps: float = 30.0) -> int:
        """The fewest frames a video needs for a clip without padding."""
        if self.sampling == "segment":
            return self.num_frames
        fps = _effective_fps(video_fps, self.target_fps)
        return max(1, math.floor(self.sampling_rate * self.num_frames / self.target_fps * fps))

    def indices(self, num_video_frames: int, video_fps: float = 30.0, *, mode: str = "train",
                clip_index: int = 0, generator: torch.Generator | None = None) -> FrameIndices:
        """The frames of clip ``clip_index`` (test) or of a random clip (train)."""
        if self.sampling == "segment":
            return segment_indices(num_video_frames, self.num_frames, mode=mode, generator=generator)
        return dense_indices(num_video_frames, self.num_frames, self.sampling_rate, video_fps=video_fps,
                             target_fps=self.target_fps, mode=mode, num_clips=self.num_clips,
                             clip_index=clip_index, test_position=self.test_position, generator=generator)


# ---------------------------------------------------------------------------------------
# decoding


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise VideoError(path, "missing (no such file)")
    if not p.is_file():
        raise VideoError(path, "not a file")
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            f.read(16)
    except OSError as err:
        raise VideoError(path, f"unreadable ({err.strerror or err})") from err
    if size == 0:
        raise VideoError(path, "empty file (0 bytes)")
    return p


def _first_line(err: BaseException) -> str:
    """The useful part of a decoder's error message: no timestamps, source paths or errno."""
    text = getattr(err, "strerror", None) or str(err)
    lines = [re.sub(r"(\[\d\d:\d\d:\d\d\] )?\S+\.(cc|h):\d+: ", "", line).strip()
             for line in text.strip().splitlines()]
    lines = [line.replace("-1094995529", "AVERROR_INVALIDDATA").replace("1094995529", "AVERROR_INVALIDDATA")
             for line in lines if line]
    return lines[0][:200] if lines else type(err).__name__


_QUIET = False


def _quiet_decord() -> None:
    """Silence the FFmpeg log inside decord once: failures reach the caller as VideoError."""
    global _QUIET
    if not _QUIET:
        decord.logging.set_level(decord.logging.QUIET)
        _QUIET = True


def _pyav_dims(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header, read by FFmpeg through PyAV."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(path, "has no video stream")
            ctx = container.streams.video[0].codec_context
            height, width = ctx.height, ctx.width
    except av.FFmpegError as err:
        raise VideoError(path, _UNOPENABLE.format(_first_line(err))) from err
    if height < 1 or width < 1:
        raise VideoError(path, f"video stream has no frame size ({width}x{height})")
    return height, width


_UNOPENABLE = "cannot be opened as a video (not a video, or truncated or corrupt: {})"


def _decord_reader(path: Path, height: int = -1, width: int = -1, num_threads: int = 1):
    _quiet_decord()
    try:
        return decord.VideoReader(str(path), width=width, height=height, num_threads=num_threads)
    except (RuntimeError, AssertionError, decord.DECORDError) as err:
        detail = _first_line(err)
        if detail.startswith("Error reading"):  # decord's generic message: FFmpeg (via PyAV) may say why
            _pyav_dims(path)
            detail = "decord cannot read it"
        raise VideoError(path, _UNOPENABLE.format(detail)) from err


def probe_video(path: PathLike) -> VideoInfo:
    """Frame count and rate (decord's view) and frame size of a video, or a :class:`VideoError` saying why not."""
    p = _check_file(path)
    height, width = _pyav_dims(p)
    vr = _decord_reader(p)
    return VideoInfo(str(path), len(vr), float(vr.get_avg_fps()), height, width)


def _decode_pyav(path: Path, indices: Sequence[int]) -> np.ndarray:
    """Decode ``indices`` by walking the stream with PyAV (the fallback for decord's bug)."""
    wanted, last, frames = set(indices), max(indices), {}
    try:
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                if k in wanted:
                    frames[k] = frame.to_ndarray(format="rgb24")
                if k >= last:
                    break
    except av.FFmpegError as err:
        raise VideoError(path, f"frames cannot be decoded (truncated or corrupt: {_first_line(err)})") from err
    missing = sorted(wanted - frames.keys())
    if missing:
        raise VideoError(path, f"frames cannot be decoded (truncated or corrupt: frame {missing[0]} is missing)")
    return np.stack([frames[i] for i in indices])


def _get_batch(vr, path: Path, indices: Sequence[int], size: tuple[int, int] | None) -> Tensor:
    num = len(vr)
    bad = [i for i in indices if not 0 <= i < num]
    if bad:
        raise VideoError(path, f"frame index {bad[0]} is outside the video's {num} frames")
    try:
        return torch.from_numpy(vr.get_batch(list(indices)).asnumpy())
    except decord.DECORDError as err:
        if "size must exactly match" not in str(err):
            raise VideoError(path, f"frames cannot be decoded (truncated or corrupt: {_first_line(err)})") from err
    # decord 0.6 mis-sizes frames of a few small widths (16, 24, 48, 72, ...): PyAV, then torch
    log.debug("%s: decord cannot decode at this width; using PyAV", path)
    clip = torch.from_numpy(_decode_pyav(path, indices))
    return resize(clip, *size) if size is not None else clip


def _open(path: PathLike, size: int | tuple[int, int] | None, num_threads: int):
    """A checked file, decord reader (resizing to ``size`` while decoding) and the output size."""
    p = _check_file(path)
    if size is None:
        target = None
    elif isinstance(size, int):  # a short side: the aspect ratio comes from the file's header
        target = short_side_shape(*_pyav_dims(p), size)
    else:
        target = (int(size[0]), int(size[1]))
    vr = _decord_reader(p, *(target or (-1, -1)), num_threads=num_threads)
    return p, vr, target


def decode_frames(path: PathLike, indices: Sequence[int], *, size: int | tuple[int, int] | None = None,
                  num_threads: int = 1) -> Tensor:
    """Decode the frames ``indices`` of a video: uint8 ``(len(indices), H, W, 3)``.

    ``size`` resizes while decoding (decord's scaler): an int is the short side (aspect
    kept), a pair is ``(height, width)``. Any failure is a :class:`VideoError` naming the
    file and the reason.
    """
    if len(indices) == 0:
        raise ValueError("no frame indices to decode")
    p, vr, target = _open(path, size, num_threads)
    return _get_batch(vr, p, indices, target)


class LoadedClips(NamedTuple):
    """The clips of one video, with what the reader learned on the way."""

    frames: Tensor  # uint8 (K, T, H, W, C)
    num_video_frames: int
    fps: float
    padded: int  # clip positions that repeat the last frame (summed over the K clips)


def load_clips(path: PathLike, sampling: ClipSampling, *, mode: str = "train",
               clip_indices: Sequence[int] | None = None, size: int | tuple[int, int] | None = None,
               generator: torch.Generator | None = None, num_threads: int = 1) -> LoadedClips:
    """Decode clips ``clip_indices`` of a video in one pass (one reader, one ``get_batch``).

    The default is every test window (``mode="test"``) or one random clip (``"train"``).
    """
    if clip_indices is None:
        clip_indices = range(sampling.num_clips) if mode == "test" else [0]
    p, vr, target = _open(path, size, num_threads)
    num, fps = len(vr), float(vr.get_avg_fps())
    chosen = [sampling.indices(num, fps, mode=mode, clip_index=k, generator=generator) for k in clip_indices]
    flat = [i for c in chosen for i in c.indices]
    unique = sorted(set(flat))
    frames = _get_batch(vr, p, unique, target)
    position = {i: k for k, i in enumerate(unique)}
    clips = frames[torch.tensor([position[i] for i in flat])]
    clips = clips.reshape(len(chosen), sampling.num_frames, *frames.shape[1:])
    return LoadedClips(clips, num, fps, sum(c.padded for c in chosen))


def read_clip(path: PathLike, num_frames: int, *, sampling: str = "dense", sampling_rate: int = 32,
              mode: str = "train", num_clips: int = 1, clip_index: int = 0, test_position: str = "middle",
              target_fps: float = 30.0, size: int | tuple[int, int] | None = None,
              generator: torch.Generator | None = None, num_threads: int = 1) -> Tensor:
    """One clip of a video: uint8 ``(T, H, W, C)``.

    ``sampling``, ``sampling_rate``, ``target_fps``, ``num_clips``, ``test_position``: see
    :class:`ClipSampling`; ``mode="train"`` draws a random clip with ``generator``,
    ``mode="test"`` takes window ``clip_index`` of ``num_clips``. ``size`` resizes while
    decoding: an int is the short side (aspect kept), a pair is ``(height, width)``; ``None``
    keeps the file's resolution. Raises :class:`VideoError` for a file that cannot be used.
    """
    spec = ClipSampling(num_frames, sampling, sampling_rate, target_fps, num_clips, test_position)
    return load_clips(path, spec, mode=mode, clip_indices=[clip_index], size=size, generator=generator,
                      num_threads=num_threads).frames[0]


def read_clips(path: PathLike, num_frames: int, *, num_clips: int = 1, sampling: str = "dense",
               sampling_rate: int = 32, test_position: str = "middle", target_fps: float = 30.0,
               size: int | tuple[int, int] | None = None, num_threads: int = 1) -> Tensor:
    """All ``num_clips`` test windows of a video, decoded in one pass: uint8 ``(K, T, H, W, C)``."""
    spec = ClipSampling(num_frames, sampling, sampling_rate, target_fps, num_clips, test_position)
    return load_clips(path, spec, mode="test", size=size, num_threads=num_threads).frames


# ---------------------------------------------------------------------------------------
# isolation: a decoder that crashes or hangs takes a child process down, not the caller


class DecoderDied(Exception):
    """An isolated call that did not answer: ``reason`` says how ("decoder crashed (signal 11)", "decoder hung ...")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_LIVE: "weakref.WeakSet[Isolated]" = weakref.WeakSet()  # this process's isolated workers


def _disown_in_child() -> None:
    """After a fork, the parent's workers are not the child's: close its copies of their pipes
    (so a worker still sees its parent go away) and let the child start its own."""
    for worker in list(_LIVE):
        worker._disown()


os.register_at_fork(after_in_child=_disown_in_child)


def _send(conn, answer: tuple[bool, Any]) -> None:
    """Send ``answer`` with its arrays' memory out of band (pickle protocol 5): the frames go
    straight from the array into the pipe, not through a pickle."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(answer, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    conn.send_bytes(pickle.dumps((data, [v.nbytes for v in views]), protocol=5))
    for view in views:
        while view:
            view = view[os.write(conn.fileno(), view):]


def _receive(conn) -> tuple[bool, Any]:
    data, sizes = pickle.loads(conn.recv_bytes())
    buffers = [bytearray(n) for n in sizes]  # writable, so arrays rebuilt on them are too
    for buffer in buffers:
        view = memoryview(buffer)
        while view:
            read = os.readv(conn.fileno(), [view])
            if not read:
                raise EOFError("the child died while sending its answer")
            view = view[read:]
    return pickle.loads(data, buffers=buffers)


def _serve(conn, func: Callable[..., Any]) -> None:  # runs in the child
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the parent is gone
            return
        if job is None:
            return
        try:
            answer = (True, func(*job))
        except Exception as err:
            answer = (False, err)
        try:
            _send(conn, answer)
        except Exception as err:  # an answer that does not pickle
            _send(conn, (False, RuntimeError(f"{type(err).__name__}: {err}")))


class Isolated:
    """``func(*args)`` run in a forked child process that a crash or a hang of ``func`` cannot
    take down: either is a :class:`DecoderDied` here, and the next call starts a fresh child.

    The child is started on first use, by the process that uses it: after a fork (a
    DataLoader worker) the copy starts its own. ``func``'s exceptions come back as themselves.
    """

    def __init__(self, func: Callable[..., Any], timeout: float = 60.0) -> None:
        self.func, self.timeout = func, timeout
        self._conn = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:  # pickled (a spawned DataLoader worker): not started
        return {"func": self.func, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["func"], state["timeout"])

    def _start(self) -> None:
        parent, child = multiprocessing.Pipe()
        pid = os.fork()
        if pid == 0:  # the child: serve until told to stop or the parent goes; never return to the caller's code
            code = 0
            try:
                parent.close()
                torch.set_num_threads(1)  # no OpenMP pool across the fork
                faulthandler.disable()  # a crash here is the caller's verdict on the file, not a traceback on stderr
                _serve(child, self.func)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        child.close()
        self._conn, self._pid = parent, pid
        _LIVE.add(self)

    def _disown(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
        self._conn = self._pid = None

    def _reap(self, kill: bool, wait: float = 5.0) -> int:
        """Stop the child (``kill``: at once) and collect it: its exit code, or minus the signal that ended it."""
        pid = self._pid
        self._conn.close()
        self._conn = self._pid = None
        _LIVE.discard(self)
        if kill:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + wait
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            time.sleep(0.005)

    def __call__(self, *args: Any) -> Any:
        if self._conn is None:
            self._start()
        try:
            self._conn.send(args)
        except OSError:  # the child went away since its last answer: a fresh one
            self._reap(kill=True)
            self._start()
            self._conn.send(args)
        try:
            answered = self._conn.poll(self.timeout)
            if answered:
                ok, value = _receive(self._conn)
        except (EOFError, OSError):  # the child died on this job
            code = self._reap(kill=False)
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            raise DecoderDied(f"decoder crashed ({how})") from None
        if not answered:
            self._reap(kill=True)
            raise DecoderDied(f"decoder hung (no answer in {self.timeout:g} s)")
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the child (it is started again on the next call)."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._reap(kill=False)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # at interpreter exit
            pass

    def __enter__(self) -> "Isolated":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _decode_in_child(decoder: Callable[..., LoadedClips], path: str, sampling: ClipSampling, mode: str,
                     clip_indices: Sequence[int] | None, size: int | tuple[int, int] | None, state: bytes | None,
                     num_threads: int) -> tuple[np.ndarray, int, float, int, bytes | None]:
    """``decoder`` under the caller's generator state; plain arrays and the generator's new state back."""
    generator = None
    if state is not None:
        generator = torch.Generator()
        generator.set_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
    clips = decoder(path, sampling, mode=mode, clip_indices=clip_indices, size=size, generator=generator,
                    num_threads=num_threads)
    after = generator.get_state().numpy().tobytes() if generator is not None else None
    return clips.frames.numpy(), clips.num_video_frames, clips.fps, clips.padded, after


class IsolatedDecoder:
    """:func:`load_clips` (or ``decoder``, with its signature) in an :class:`Isolated` child process.

    Called like :func:`load_clips`; a crash or a hang of the decoder is a :class:`VideoError`
    naming the file ("decoder crashed (signal 11)", "decoder hung (no answer in 60 s)"). The
    clips, and ``generator``'s state afterwards, are the same as decoding in this process.
    """

    def __init__(self, decoder: Callable[..., LoadedClips] | None = None, timeout: float = 60.0) -> None:
        self.decoder = decoder or load_clips
        self.worker = Isolated(functools.partial(_decode_in_child, self.decoder), timeout)

    def __call__(self, path: PathLike, sampling: ClipSampling, *, mode: str = "train",
                 clip_indices: Sequence[int] | None = None, size: int | tuple[int, int] | None = None,
                 generator: torch.Generator | None = None, num_threads: int = 1) -> LoadedClips:
        state = generator.get_state().numpy().tobytes() if generator is not None else None
        try:
            frames, num, fps, padded, after = self.worker(str(path), sampling, mode, clip_indices, size, state,
                                                          num_threads)
        except DecoderDied as err:
            raise VideoError(path, err.reason) from None
        if generator is not None:
            generator.set_state(torch.frombuffer(bytearray(after), dtype=torch.uint8))
        return LoadedClips(torch.from_numpy(frames), num, fps, padded)

    def close(self) -> None:
        self.worker.close()


# ---------------------------------------------------------------------------------------
# writing (tests, benchmarks and make-synthetic write real mp4 files with PyAV)

# quality -> (codec, pixel format, options)
QUALITIES: dict[str, tuple[str, str, dict[str, str]]] = {
    "lossless": ("libx264rgb", "rgb24", {"crf": "0"}),  # bit-exact RGB (H.264 4:4:4 predictive)
    "high": ("libx264", "yuv444p", {"crf": "10"}),  # near-lossless, full colour resolution
    "standard": ("libx264", "yuv420p", {"crf": "18"}),  # what real datasets look like
}


def write_video(path: PathLike, frames: Tensor | np.ndarray, fps: float = 30.0, *,
                quality: str = "standard", keyframe_interval: int | None = None) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` as an H.264 mp4 file (PyAV); returns the path.

    ``quality``: ``lossless`` (decodes bit-exact), ``high`` (yuv444p, crf 10) or
    ``standard`` (yuv420p, crf 18; needs an even width and height).
    """
    _check_choice("quality", quality, tuple(QUALITIES))
    array = frames.numpy() if isinstance(frames, Tensor) else np.asarray(frames)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3), got {array.dtype} {array.shape}")
    _, height, width, _ = array.shape
    codec, pix_fmt, options = QUALITIES[quality]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ValueError(f"quality 'standard' (yuv420p) needs even frame sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = dict(options, **({"g": str(keyframe_interval)} if keyframe_interval else {}))
        for frame in array:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path
