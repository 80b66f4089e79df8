"""Throughput benchmarks of the data pipeline (``bench-data``, ``bench-synthetic``) and ``make-synthetic``.

Results are JSON with the machine, the library versions, the date and the command that
produced them; the committed ones live in ``benchmarks/results/``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .datasets import VideoDataset
from .synthetic import TASKS, SyntheticVideos, cue_visibility
from .video import ClipSampling, write_video


def cpu_name() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """Where a benchmark ran: CPU, cores, OS and the versions that matter."""
    cpu = cpu_name()
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("decord", "av"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews the numbers
            "os": platform.platform(), "versions": versions}


def result_header(command: Sequence[str] | None = None) -> dict:
    """The common fields of a result file."""
    argv = list(command) if command is not None else ["python", "-m", "tsf", *sys.argv[1:]]
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(argv), "machine": machine_info()}


def write_result(path: str | os.PathLike, result: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------
# bench-data: decoded clips per second through a DataLoader


def _panning_texture(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """A smooth random colour texture seen through a window panning across it, with pixel noise: (T, H, W, 3) uint8."""
    import torch.nn.functional as F

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
    from tqdm.auto import tqdm

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
    from torch.utils.data import DataLoader

    dataset = VideoDataset([(p, 0) for p in paths], ["video"], mode="train", crop_size=crop_size,
                           sampling=ClipSampling(num_frames=num_frames, sampling_rate=sampling_rate))
    rows = []
    for w in workers:
        sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=clips + batch_size,
                                                 generator=torch.Generator().manual_seed(0))
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=w)
        it = iter(loader)
        next(it)  # start-up
        start, seen = time.perf_counter(), 0
        for videos, _ in it:
            seen += videos.shape[0]
        seconds = time.perf_counter() - start
        rows.append({"workers": w, "clips": seen, "seconds": round(seconds, 3),
                     "clips_per_s": round(seen / seconds, 2), "batch_shape": list(videos.shape)})
        del it, loader
    return rows


def bench_decode_resize(folder: str | os.PathLike, *, height: int = 720, width: int = 1280, short_side: int = 256,
                        repeats: int = 3) -> dict:
    """Resize while decoding (decord's scaler) vs decode at full size + torch's uint8 bilinear, on one HD file."""
    from .transforms import short_side_resize
    from .video import decode_frames

    path = write_video(Path(folder) / "hd.mp4", _panning_texture(np.random.default_rng(1), 120, height, width), 30,
                       keyframe_interval=90)
    indices = list(range(4, 120, 15))  # 8 frames over 4 s
    timings = {"decode_then_torch_resize_s": [], "resize_while_decoding_s": []}
    for _ in range(repeats):
        start = time.perf_counter()
        short_side_resize(decode_frames(path, indices), short_side)
        middle = time.perf_counter()
        decode_frames(path, indices, size=short_side)
        timings["decode_then_torch_resize_s"].append(middle - start)
        timings["resize_while_decoding_s"].append(time.perf_counter() - middle)
    return {"source": f"{width}x{height} H.264 yuv420p crf 18, 8 frames over 4 s, to a {short_side}-px short side",
            **{k: round(min(v), 4) for k, v in timings.items()}}


def run_bench_data(folder: str | os.PathLike | None, *, workers: Sequence[int], clips: int, num_videos: int,
                   batch_size: int, num_frames: int, sampling_rate: int, crop_size: int) -> dict:
    """bench-data: on the mp4 files of ``folder``, or on generated Kinetics-like files."""
    import tempfile

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
    return {**result_header(), "benchmark": "bench-data", "videos": source,
            "pipeline": (f"decord, dense sampling {num_frames} frames at rate {sampling_rate} (30 fps), "
                         f"short side jittered in [256, 320], random {crop_size} crop, flip, normalise; "
                         f"DataLoader batch {batch_size}, decord single-threaded per worker"),
            "results": rows, "decode_resize": resize}


# ---------------------------------------------------------------------------------------
# bench-synthetic: generation vs training throughput


def bench_generation(task: str, *, num_frames: int = 8, size: int = 32, clips: int = 500) -> dict:
    """Clips per second of ``SyntheticVideos(task)[i]`` in one process (normalised float clips)."""
    dataset = SyntheticVideos(task, clips + 1, num_frames=num_frames, size=size)
    dataset[clips]  # warm-up
    start = time.perf_counter()
    for i in range(clips):
        dataset[i]
    seconds = time.perf_counter() - start
    return {"task": task, "clips": clips, "seconds": round(seconds, 3), "clips_per_s": round(clips / seconds, 1)}


def bench_training(attention: str, *, preset_name: str = "small", batch_size: int = 32, steps: int = 5,
                   warmup: int = 2) -> dict:
    """Training clips per second (forward + backward + SGD step) of a preset on random clips."""
    from ..config import preset
    from ..model import TimeSformer

    torch.manual_seed(0)
    config = preset(preset_name, attention=attention)
    model = TimeSformer(config).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    video = torch.randn(batch_size, config.in_chans, config.num_frames, config.img_size, config.img_size)
    labels = torch.randint(0, config.num_classes, (batch_size,))
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(video), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    return {"preset": preset_name, "attention": attention, "batch_size": batch_size, "steps": steps,
            "seconds": round(seconds, 3), "clips_per_s": round(steps * batch_size / seconds, 1)}


def run_bench_synthetic(*, clips: int, attentions: Sequence[str], batch_size: int, steps: int) -> dict:
    generation = [bench_generation(task, clips=clips) for task in TASKS]
    training = [bench_training(a, batch_size=batch_size, steps=steps) for a in attentions]
    slowest = min(g["clips_per_s"] for g in generation)
    fastest = max(t["clips_per_s"] for t in training)
    return {**result_header(), "benchmark": "bench-synthetic",
            "setting": "8 x 32 x 32 clips; generation in one process; training = forward + backward + SGD step "
                       f"of tsf.TimeSformer(tsf.preset('small', attention=...)) at batch {batch_size}",
            "generation": generation, "training": training,
            "generation_over_fastest_training": round(slowest / fastest, 2),
            "long_range_cues_seen": [cue_visibility(t) for t in (4, 8, 16, 32)]}


def format_bench_data(result: dict) -> str:
    """The README table of a bench-data result."""
    lines = ["workers  clips/s", "-------  -------"]
    lines += [f"{r['workers']:>7}  {r['clips_per_s']:>7.1f}" for r in result["results"]]
    resize = result.get("decode_resize")
    if resize:
        lines += ["", f"{resize['source']}:",
                  f"  decode, then torch resize: {resize['decode_then_torch_resize_s']:.3f} s",
                  f"  resize while decoding:     {resize['resize_while_decoding_s']:.3f} s"]
    return "\n".join(lines)


def format_bench_synthetic(result: dict) -> str:
    """The README table of a bench-synthetic result."""
    lines = ["what                                  clips/s", "------------------------------------  -------"]
    lines += [f"{'generate ' + g['task']:<36}  {g['clips_per_s']:>7.0f}" for g in result["generation"]]
    lines += [f"{'train small, ' + t['attention'] + ', batch ' + str(t['batch_size']):<36}  {t['clips_per_s']:>7.0f}"
              for t in result["training"]]
    return "\n".join(lines)


def format_cue_visibility(result: dict) -> str:
    """The README table of the long_range task's cue visibility (from a bench-synthetic result)."""
    lines = ["frames seen  >= 1 cue  both cues", "-----------  --------  ---------"]
    lines += [f"{r['num_frames']:>11}  {r['at_least_one_cue']:>8.2f}  {r['both_cues']:>9.2f}"
              for r in result["long_range_cues_seen"]]
    return "\n".join(lines)
