"""Real test videos whose pixels say which frame they are.

Frame ``i`` is drawn as ``BITS`` vertical bands, band ``b`` white if bit ``b`` of ``i`` is
set and black otherwise (grey levels only, so chroma subsampling cannot blur it). The code
survives lossy H.264 and resizing, so a test can read back exactly which frames a reader
returned.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tsf.data import write_video

BITS = 10  # frame numbers up to 1023


def coded_frames(num: int, height: int, width: int) -> np.ndarray:
    """(num, H, W, 3) uint8 frames carrying their own index."""
    band = (np.arange(width) * BITS) // width  # which bit each column shows
    bits = (np.arange(num)[:, None] >> band[None, :]) & 1  # (num, W)
    frames = np.repeat((bits * 255).astype(np.uint8)[:, None, :], height, axis=1)
    return np.repeat(frames[..., None], 3, axis=-1)


def read_codes(frames: torch.Tensor | np.ndarray) -> list[int]:
    """The frame numbers drawn in uint8 frames (T, H, W, C), whatever their size."""
    frames = torch.as_tensor(np.asarray(frames))
    _, height, width, _ = frames.shape
    codes = []
    for frame in frames:
        value = 0
        for b in range(BITS):
            lo, hi = (b * width + BITS - 1) // BITS, ((b + 1) * width) // BITS  # columns of band b
            centre = frame[height // 4 : 3 * height // 4, lo + (hi - lo) // 4 : hi - (hi - lo) // 4].float().mean()
            value |= int(centre > 127) << b
        codes.append(value)
    return codes


def coded_video(path: Path, num: int, fps: float, height: int, width: int, quality: str = "standard") -> Path:
    """An mp4 of ``num`` coded frames at ``fps``."""
    return write_video(path, coded_frames(num, height, width), fps, quality=quality)


def corrupt_files(folder: Path, good: Path) -> dict[str, Path]:
    """Truly bad files next to a good one: empty, random bytes, text, truncated (index lost), cut mid-stream."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    files = {
        "empty": b"",
        "random": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "text": b"this is not a video\n" * 20,
        "truncated": data[: len(data) // 2],  # the moov atom (the index) sits at the end: lost
    }
    out = {name: folder / f"{name}.mp4" for name in files}
    for name, content in files.items():
        out[name].write_bytes(content)
    return out


def faststart_copy(src: Path, dst: Path) -> Path:
    """The same stream remuxed with the index (moov atom) at the front, as streaming sites store mp4."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


def damaged_files(folder: Path, good: Path) -> dict[str, Path]:
    """Files with an intact index but damaged frames: cut mid-stream, and bytes garbled mid-stream."""
    data = faststart_copy(good, folder / "faststart.mp4").read_bytes()
    garbled = bytearray(data)
    rng = np.random.default_rng(1)
    for k in range(len(data) // 3, 2 * len(data) // 3, 37):
        garbled[k] = int(rng.integers(256))
    out = {"cut": folder / "cut.mp4", "garbled": folder / "garbled.mp4"}
    out["cut"].write_bytes(data[: 2 * len(data) // 3])
    out["garbled"].write_bytes(bytes(garbled))
    return out
