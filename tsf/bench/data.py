"""``python -m tsf bench data``: decoded training clips per second through a DataLoader, per worker count.

On the mp4 files of a folder, or on generated Kinetics-like ones; plus resizing while decoding
against decoding at full size, on one HD file. Results carry
:func:`tsf.provenance.provenance`; the committed one is ``benchmarks/results/bench_data.json``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.datasets import VideoDataset
from ..data.transforms import short_side_resize
from ..data.video import ClipSampling, decode_frames, write_video
from ..provenance import provenance
from .table import format_table
from .timing import time_interleaved


def _panning_texture(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture seen through a window panning across it, with pixel noise: (T, H, W, 3) uint8."""
    pad = 96
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, (height + pad) // 8, (width + pad) // 8)).astype(np.float32))
    texture = F.interpolate(coarse, size=(height + pad, width + pad), mode="bicubic", align_corners=False)[0]
    texture = texture.clamp(0, 255).permute(1, 2, 0).numpy()
    frames = np.empty((count, height, width, 3), np.uint8)
    phase = rng.uniform(0, 2 * np.pi, 2)
    for t in range(count):
        y = int(pad / 2 * (1 + np.sin(2 * np.pi * t / count + phase[0])))
        x = int(pad / 2 * (1 + np.sin(4 * np.pi * t / count + phase[1])))
        noisy = texture[y : y + height, x : x + width] + rng.normal(0, 3, (height, width, 3))
        frames[t] = np.clip(noisy, 0, 255).astype(np.uint8)
    return frames


def make_bench_videos(folder: str | os.PathLike, num_videos: int = 8, *, seconds: float = 10.0, fps: int = 30,
                      height: int = 256, width: int = 340, keyframe_interval: int = 90, seed: int = 0) -> list[Path]:
    """Kinetics-like mp4 files: ``seconds`` at ``fps``, 256-px short side, H.264 yuv420p crf 18.

    The content is a smooth random texture panning under the frame with mild pixel noise
    (so the stream is not trivially compressible); a keyframe every 3 s.
    """
    rng = np.random.default_rng(seed)
    count = int(round(seconds * fps))
    return [write_video(Path(folder) / f"bench_{i:03d}.mp4", _panning_texture(rng, count, height, width), fps,
                        quality="standard", keyframe_interval=keyframe_interval)
            for i in tqdm(range(num_videos), desc="writing benchmark videos", unit="video")]


def bench_loader(paths: Sequence[str | os.PathLike], *, workers: Sequence[int] = (0, 1, 2), clips: int = 96,
                 batch_size: int = 8, num_frames: int = 8, sampling_rate: int = 32, crop_size: int = 224) -> list[dict]:
    """Training clips (dense sampling, scale jitter, crop, flip) per second, for each worker count.

    The first batch (worker start-up) is not timed; ``clips`` more are.
    """
    dataset = VideoDataset([(p, 0) for p in paths], ["video"], mode="train", crop_size=crop_size,
                           sampling=ClipSampling(num_frames=num_frames, sampling_rate=sampling_rate))
    rows = []
    for w in workers:
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=clips + batch_size,
                                                 generator=torch.Generator().manual_seed(0))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=w)
        seconds, shapes = _time_batches(loader)
        seen = sum(shape[0] for shape in shapes)
        rows.append({"workers": w, "clips": seen, "seconds": round(seconds, 3),
                     "clips_per_s": round(seen / seconds, 2), "batch_shape": list(shapes[-1])})
        del loader
    return rows


def _time_batches(loader: DataLoader) -> tuple[float, list[torch.Size]]:
    """Seconds for every batch but the first (the workers' start-up), and those batches' clip shapes."""
    batches, shapes = iter(loader), []

    def batch() -> None:
        shapes.append(next(batches)[0].shape)

    seconds = time_interleaved({"batch": batch}, warmup=1, repeats=len(loader) - 1, progress=False)["batch"]
    return sum(seconds), shapes[1:]


def bench_decode_resize(folder: str | os.PathLike, *, height: int = 720, width: int = 1280, short_side: int = 256,
                        repeats: int = 3) -> dict:
    """Resize while decoding (decord's scaler) vs decode at full size + torch's uint8 bilinear, on one HD file."""
    path = write_video(Path(folder) / "hd.mp4", _panning_texture(np.random.default_rng(1), 120, height, width), 30,
                       keyframe_interval=90)
    indices = list(range(4, 120, 15))  # 8 frames over 4 s
    timings = time_interleaved({
        "decode_then_torch_resize_s": lambda: short_side_resize(decode_frames(path, indices), short_side),
        "resize_while_decoding_s": lambda: decode_frames(path, indices, size=short_side)},
        warmup=0, repeats=repeats, progress=False)
    return {"source": f"{width}x{height} H.264 yuv420p crf 18, 8 frames over 4 s, to a {short_side}-px short side",
            **{k: round(min(v), 4) for k, v in timings.items()}}


def run_bench_data(folder: str | os.PathLike | None, *, workers: Sequence[int], clips: int, num_videos: int,
                   batch_size: int, num_frames: int, sampling_rate: int, crop_size: int,
                   command: Sequence[str] | None = None) -> dict:
    """bench-data: on the video files of ``folder``, or on generated Kinetics-like files."""
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None:
            paths = make_bench_videos(tmp, num_videos)
            source = (f"{num_videos} generated mp4 files: 10 s at 30 fps, 340x256, H.264 yuv420p crf 18, "
                      "keyframe every 3 s, a panning random texture")
        else:
            paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".mp4", ".webm", ".avi", ".mkv"))
            if not paths:
                raise ValueError(f"{folder}: no video files")
            source = f"{len(paths)} files from {folder}"
        rows = bench_loader(paths, workers=workers, clips=clips, batch_size=batch_size, num_frames=num_frames,
                            sampling_rate=sampling_rate, crop_size=crop_size)
        resize = bench_decode_resize(tmp)
    return {**provenance(command), "benchmark": "bench-data", "videos": source,
            "pipeline": (f"decord, dense sampling {num_frames} frames at rate {sampling_rate} (30 fps), "
                         f"short side jittered in [256, 320], random {crop_size} crop, flip, normalise; "
                         f"DataLoader batch {batch_size}, decord single-threaded per worker"),
            "results": rows, "decode_resize": resize}



def format_bench_data(result: dict) -> str:
    """The docs' table of a bench-data result."""
    lines = [format_table(result["results"], [("workers", "workers", "d"), ("clips_per_s", "clips/s", ".1f")])]
    resize = result.get("decode_resize")
    if resize:
        lines += ["", f"{resize['source']}:",
                  f"  decode, then torch resize: {resize['decode_then_torch_resize_s']:.3f} s",
                  f"  resize while decoding:     {resize['resize_while_decoding_s']:.3f} s"]
    return "\n".join(lines)
