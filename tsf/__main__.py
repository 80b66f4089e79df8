"""The command line: ``python -m tsf COMMAND ...``.

Each command only parses its arguments and calls the function that does the work; the
tables it prints come from :func:`tsf.bench.table.format_table`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .bench import models as bench_models
from .bench.data import format_bench_data, run_bench_data
from .bench.plots import write_figures
from .bench.profile import format_profile, profile_steps
from .provenance import write_result
from .bench.rollout import run_rollout_benchmark, scores_table, speed_table, untrained_scores
from .bench.steps import MODES
from .bench.synthetic import format_bench_synthetic, run_bench_synthetic
from .bench.table import format_table
from .config import ATTENTION_SCHEMES, PRESETS, preset
from .cost import cost_row
from .data.check import check_files, dataset_paths
from .data.datasets import DATASET_FORMATS
from .data.synthetic import SPLITS, TASKS, make_synthetic
from .data.video import QUALITIES, SAMPLINGS, ClipSampling, VideoError
from .explain import METHODS
from .reproduce import main as reproduce_main
from .train import evaluate, fit, load_config, pick_device
from .train.checkpoint import read_classes
from .train.config import TRAIN_PRESETS, DataConfig
from .train.data import held_out_dataset
from .train.predict import class_names, predict_videos
from .weights import load_pretrained, save_pretrained, to_hf
from .weights.convert import summary


def _command(args: argparse.Namespace) -> list[str]:
    """The command line as the result files record it."""
    return ["python", "-m", "tsf", *args.argv]


def _report(args: argparse.Namespace, result: dict, formatter: Callable[[dict], str]) -> int:
    """Write a benchmark result to ``--out`` if asked, print it as a table or ``--json``."""
    if args.out:
        write_result(args.out, result)
    print(json.dumps(result, indent=2) if args.json else formatter(result))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("num_classes", args.num_classes), ("num_frames", args.frames),
                                   ("img_size", args.crop)) if v is not None}
    schemes = ATTENTION_SCHEMES if args.all else (args.attention,)
    rows = [cost_row(preset(args.preset, attention=s, **overrides), views=args.views) for s in schemes]
    if args.json:
        print(json.dumps(rows if args.all else rows[0], indent=2))
        return 0
    print(f"preset {args.preset}: {rows[0]['frames']} frames x {rows[0]['crop']}^2, "
          f"{rows[0]['classes']} classes; 1 MAC = 1 FLOP, as in the paper")
    print(format_table(rows, [
        ("attention", "attention", "s"),
        ("params", "params", ",d"),
        ("gmacs_per_view", "GFLOPs/view", ".1f"),
        ("tflops_all_views", f"TFLOPs/{args.views} views", ".3f"),
    ]))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    overrides = {field: value for field, value in [
        ("attention", args.attention), ("num_frames", args.frames), ("img_size", args.crop),
        ("num_classes", args.num_classes), ("num_heads", args.num_heads)] if value is not None}
    model = load_pretrained(args.source, **overrides)
    if args.hf:
        to_hf(model).save_pretrained(args.out)
    else:
        save_pretrained(model, args.out)
    print(f"{args.source} -> {args.out} ({'Hugging Face' if args.hf else 'tsf'} format): {summary(model.config)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    overrides = list(args.set or [])
    if args.output:
        overrides.append(f"output_dir={args.output}")
    config = load_config(args.preset, args.config, overrides)
    resume: bool | str = {None: False, "latest": True}.get(args.resume, args.resume)
    result = fit(config, resume=resume)
    if result.interrupted:
        print(f"stopped at step {result.steps}; checkpoint {result.checkpoint}; "
              f"continue with: python -m tsf train ... --resume", file=sys.stderr)
        return 130
    final = result.final
    print(json.dumps({"run_dir": str(result.run_dir), "steps": result.steps,
                      **{k: v for k, v in final.items() if k.startswith(("train_", "val_"))}}, indent=2))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model = load_pretrained(args.checkpoint).to(device)
    data = None
    if args.annotations:
        data = DataConfig(kind=args.kind, val_annotations=args.annotations, root=args.root or "", labels=args.labels or "",
                          sampling=args.sampling, sampling_rate=args.sampling_rate, test_clips=args.clips,
                          on_error="skip" if args.skip_bad else "raise")
    dataset = held_out_dataset(args.checkpoint, model.config, data, test_clips=args.clips)
    output = args.output or str(Path(args.checkpoint) / "eval.json")
    scores = evaluate(model, dataset, batch_size=args.batch_size, num_workers=args.workers, device=device,
                      classes=read_classes(args.checkpoint), output=output)
    print(json.dumps({k: scores[k] for k in ("videos", "views_per_video", "top1", "top5", "clip_top1", "loss")},
                     indent=2))
    print(f"full report (per-class accuracy, confusion matrix): {output}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model = load_pretrained(args.checkpoint).to(device)
    names = class_names(args.checkpoint, args.labels, model.config.num_classes)
    results = predict_videos(model, args.videos, classes=names, topk=args.topk, num_clips=args.clips,
                             num_crops=args.crops, sampling=args.sampling, sampling_rate=args.sampling_rate,
                             device=device)
    for r in results:
        print(f"{r.path}  ({r.views} views)")
        for rank, (name, p) in enumerate(r.top, 1):
            print(f"  {rank}. {name:<40s} {p:6.1%}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    return reproduce_main(args.preset, args.only, args.seed, args.run_dir, args.figures_dir, dry=args.dry_run)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    # the study needs pandas (the notebooks extra): imported when it runs
    from .study import ROOT, setup
    from .study.calibration import calibrate
    from .study.report import write_summary

    # like reproduce, and unlike a notebook run by hand, calibrate writes the committed folder
    figures = args.figures_dir or str(ROOT / "figures" / args.preset)
    study, runs, out = setup(args.preset, args.seed, figures, args.runs_dir or "")
    frame = calibrate(study, runs, out)
    write_summary(out.folder)
    print(frame.to_string(index=False))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    paths = dataset_paths(args.annotations, args.root, format=args.format, labels=args.labels,
                          extension=args.extension)
    sampling = None
    if args.frames is not None:
        sampling = ClipSampling(num_frames=args.frames, sampling=args.sampling, sampling_rate=args.sampling_rate,
                                target_fps=args.target_fps)
    report = check_files(paths, sampling=sampling, full=args.full, isolate=not args.no_isolate,
                         timeout=args.timeout)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
    return 1 if report.bad or (args.strict and report.short) else 0


def _cmd_bench_data(args: argparse.Namespace) -> int:
    result = run_bench_data(args.folder, workers=args.workers, clips=args.clips, num_videos=args.videos,
                            batch_size=args.batch_size, num_frames=args.frames, sampling_rate=args.sampling_rate,
                            crop_size=args.crop, command=_command(args))
    return _report(args, result, format_bench_data)


def _cmd_bench_synthetic(args: argparse.Namespace) -> int:
    result = run_bench_synthetic(clips=args.clips, attentions=args.attention, batch_size=args.batch_size,
                                 steps=args.steps, command=_command(args))
    return _report(args, result, format_bench_synthetic)


def _cmd_make_synthetic(args: argparse.Namespace) -> int:
    annotations = make_synthetic(args.task, args.out_dir, num=args.num, num_frames=args.frames, size=args.size,
                                 seed=args.seed, split=args.split, fps=args.fps, source_frames=args.source_frames,
                                 quality=args.quality)
    print(f"wrote {args.num} videos; annotations: {annotations}")
    return 0


def _cmd_explain_bench(args: argparse.Namespace) -> int:
    rows = run_rollout_benchmark(args.preset, args.frames, schemes=args.attention or ATTENTION_SCHEMES,
                                 max_gb=args.max_gb, repeats=args.repeats, out=args.out)
    print(speed_table(rows))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_attention_scores(args: argparse.Namespace) -> int:
    summary_rows = untrained_scores(args.preset, samples=args.samples, seed=args.seed, method=args.method,
                                    out=args.out, figure=args.figure)
    print(scores_table(summary_rows))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = bench_models.bench_device(args.device, memory_curves=args.memory_curves)
    changes = {k: v for k, v in (("repeats", args.repeats), ("warmup", args.warmup), ("batch_size", args.batch_size),
                                 ("threads", args.threads)) if v is not None}
    if args.no_hf:
        changes["hf"] = False
    cases = bench_models.select_cases(args.cases, device, schemes=args.attention, **changes)
    if args.list:
        for case in cases:
            print(bench_models.describe_case(case))
        return 0
    result = bench_models.run_bench(cases, device=device, memory=not args.no_memory,
                                    with_memory_curves=args.memory_curves, progress=not args.json,
                                    command=_command(args), note=args.note, budget=args.budget,
                                    on_case=(lambda so_far: bench_models.write_merged(args.out, so_far)) if args.out
                                    else None)
    if args.out:
        result = bench_models.write_merged(args.out, result)
    if args.figure:
        write_figures(result, args.figure)
    print(json.dumps(result, indent=2) if args.json else bench_models.format_results(result))
    return 0


def _cmd_bench_profile(args: argparse.Namespace) -> int:
    result = profile_steps(args.case, args.attention, args.mode, rounds=args.rounds, command=_command(args))
    return _report(args, result, format_profile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tsf", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameters and inference cost of a configuration")
    info.add_argument("--preset", default="base", choices=sorted(PRESETS))
    info.add_argument("--attention", default="divided", help=f"one of {', '.join(ATTENTION_SCHEMES)}")
    info.add_argument("--all", action="store_true", help="all five schemes side by side")
    info.add_argument("--num-classes", type=int, default=None)
    info.add_argument("--frames", type=int, default=None, help="frames per clip (default: the preset's)")
    info.add_argument("--crop", type=int, default=None, help="crop side in pixels (default: the preset's)")
    info.add_argument("--views", type=int, default=3, help="views per video for the total (paper: 3)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_cmd_info)

    convert = sub.add_parser("convert", help="read any supported checkpoint and write it as safetensors (tsf or HF)")
    convert.add_argument("source", help="a .pyth/.pth/.pt/.bin/.safetensors file or a folder with config.json")
    convert.add_argument("out", help="the folder to write (model.safetensors + config.json)")
    convert.add_argument("--attention", default=None, help="scheme to inflate an image ViT to (default divided)")
    convert.add_argument("--frames", type=int, default=None, help="resize the time embedding to this many frames")
    convert.add_argument("--crop", type=int, default=None, help="resize the position embedding to this crop (px)")
    convert.add_argument("--num-classes", type=int, default=None, help="replace the head by a new one of this size")
    convert.add_argument("--num-heads", type=int, default=None, help="heads, when neither shapes nor config say")
    convert.add_argument("--hf", action="store_true", help="write a Hugging Face TimesformerForVideoClassification")
    convert.set_defaults(func=_cmd_convert)

    train = sub.add_parser("train", help="train (also under torchrun --nproc_per_node=N)")
    train.add_argument("--preset", default="scratch", choices=sorted(TRAIN_PRESETS),
                       help="scratch: small model, AdamW + cosine; authors: the paper's Kinetics recipe; smoke: seconds")
    train.add_argument("--config", help="a YAML file with model/data/optim sections and top-level keys")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a dotted key, e.g. --set model.attention=joint --set optim.lr=3e-4")
    train.add_argument("--output", help="run folder (same as --set output_dir=...)")
    train.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                       help="continue from the newest checkpoint of the run folder, or from CHECKPOINT")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="accuracy of a checkpoint: clip and video level (3 crops x k clips)")
    ev.add_argument("checkpoint", help="a model folder (RUN/model, RUN/checkpoints/step-N or any load_pretrained source)")
    ev.add_argument("--annotations", help="videos to evaluate on (default: the run's held-out split)")
    ev.add_argument("--kind", default="kinetics", choices=tuple(DATASET_FORMATS))
    ev.add_argument("--root", help="folder the annotation paths are relative to")
    ev.add_argument("--labels", help="SSv2 labels JSON")
    ev.add_argument("--sampling", default="dense", choices=SAMPLINGS)
    ev.add_argument("--sampling-rate", type=int, default=32)
    ev.add_argument("--clips", type=int, default=1, help="temporal clips per video (x 3 spatial crops)")
    ev.add_argument("--batch-size", type=int, default=4)
    ev.add_argument("--workers", type=int, default=0)
    ev.add_argument("--device", default="auto", help="auto (the GPU if there is one) | cpu | cuda | cuda:N")
    ev.add_argument("--skip-bad", action="store_true", help="skip unreadable videos (counted) instead of stopping")
    ev.add_argument("--output", help="JSON report (default: CHECKPOINT/eval.json)")
    ev.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("predict", help="top-5 classes of video files")
    pr.add_argument("checkpoint")
    pr.add_argument("videos", nargs="+")
    pr.add_argument("--labels", help="class names: a JSON list/object or one name per line (default: the checkpoint's)")
    pr.add_argument("--topk", type=int, default=5)
    pr.add_argument("--clips", type=int, default=1, help="temporal clips (dense sampling)")
    pr.add_argument("--crops", type=int, default=3, help="spatial crops")
    pr.add_argument("--sampling", default="dense", choices=SAMPLINGS)
    pr.add_argument("--sampling-rate", type=int, default=32)
    pr.add_argument("--device", default="auto", help="auto (the GPU if there is one) | cpu | cuda | cuda:N")
    pr.set_defaults(func=_cmd_predict)

    rp = sub.add_parser("reproduce", help="run the study notebooks through papermill (what make reproduce does)")
    rp.add_argument("--preset", default="cpu", help="smoke (minutes) | cpu (the committed study, <= 1 h on 2 cores) | "
                                                    "gpu (one H200, <= 8 min) | gpu-full (hours on a GPU)")
    rp.add_argument("--only", nargs="+", metavar="NAME", help="some notebooks (a name or part of one, e.g. cost)")
    rp.add_argument("--seed", type=int, default=0, help="first training seed")
    rp.add_argument("--run-dir", help="executed notebooks and the run cache (default: runs/reproduce-PRESET)")
    rp.add_argument("--figures-dir", help="tables, figures and SUMMARY.md (default: figures/PRESET)")
    rp.add_argument("--dry-run", action="store_true",
                    help="run nothing: print each notebook's runs, FLOPs and estimated time (tsf/study/plan.py)")
    rp.set_defaults(func=_cmd_reproduce)

    cal = sub.add_parser("calibrate", help="the runs behind the study's set-up: what the budget can learn")
    cal.add_argument("--preset", default="cpu")
    cal.add_argument("--seed", type=int, default=0)
    cal.add_argument("--runs-dir", help="run cache (default: runs/PRESET)")
    cal.add_argument("--figures-dir", help="where calibration.csv goes (default: figures/PRESET)")
    cal.set_defaults(func=_cmd_calibrate)

    check = sub.add_parser("check-data", help="scan a dataset for bad videos and report every one and why")
    check.add_argument("annotations", help="Kinetics-style list, SSv2 JSON, or a folder with one folder per class")
    check.add_argument("--root", default=None, help="folder the annotation paths are relative to (default: its folder)")
    check.add_argument("--format", default="auto", choices=("auto", *DATASET_FORMATS))
    check.add_argument("--labels", default=None,
                       help="SSv2 labels JSON, or a Kinetics list's class names (optional for checking)")
    check.add_argument("--extension", default=".webm", help="SSv2 video extension (default .webm)")
    check.add_argument("--frames", type=int, default=None, help="clip length: also report videos too short for it")
    check.add_argument("--sampling", default="dense", choices=SAMPLINGS)
    check.add_argument("--sampling-rate", type=int, default=32)
    check.add_argument("--target-fps", type=float, default=30.0)
    check.add_argument("--full", action="store_true", help="decode every frame (slower, finds more corruption)")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds before a file counts as hanging the decoder")
    check.add_argument("--no-isolate", action="store_true", help="probe in this process (faster start; a crash ends the scan)")
    check.add_argument("--strict", action="store_true", help="exit non-zero for short videos too")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_cmd_check_data)

    bench = sub.add_parser("bench-data", help="DataLoader throughput: decoded training clips per second per worker count")
    bench.add_argument("--folder", default=None, help="mp4 files to read (default: generate Kinetics-like ones)")
    bench.add_argument("--videos", type=int, default=8, help="how many files to generate")
    bench.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    bench.add_argument("--clips", type=int, default=96, help="clips timed per worker count")
    bench.add_argument("--batch-size", type=int, default=8)
    bench.add_argument("--frames", type=int, default=8)
    bench.add_argument("--sampling-rate", type=int, default=32)
    bench.add_argument("--crop", type=int, default=224)
    bench.add_argument("--out", default=None, help="write the result JSON here")
    bench.add_argument("--json", action="store_true")
    bench.set_defaults(func=_cmd_bench_data)

    bsyn = sub.add_parser("bench-synthetic", help="synthetic clip generation vs small-model training throughput")
    bsyn.add_argument("--clips", type=int, default=500, help="clips generated per task")
    bsyn.add_argument("--attention", nargs="+", default=list(ATTENTION_SCHEMES))
    bsyn.add_argument("--batch-size", type=int, default=32)
    bsyn.add_argument("--steps", type=int, default=5, help="timed training steps per scheme")
    bsyn.add_argument("--out", default=None, help="write the result JSON here")
    bsyn.add_argument("--json", action="store_true")
    bsyn.set_defaults(func=_cmd_bench_synthetic)

    make = sub.add_parser("make-synthetic", help="write a synthetic split as mp4 files + a Kinetics-style annotation file")
    make.add_argument("task", choices=TASKS)
    make.add_argument("out_dir")
    make.add_argument("--num", type=int, default=100, help="number of videos")
    make.add_argument("--frames", type=int, default=8, help="frames the model sees (sets the default video length)")
    make.add_argument("--source-frames", type=int, default=None, help="frames per video (default: --frames; long_range 64)")
    make.add_argument("--size", type=int, default=32)
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--split", default="train", choices=tuple(SPLITS))
    make.add_argument("--fps", type=float, default=30.0)
    make.add_argument("--quality", default="lossless", choices=tuple(QUALITIES),
                      help="lossless: H.264 RGB crf 0 (bit-exact); high: yuv444p crf 10; standard: yuv420p crf 18")
    make.set_defaults(func=_cmd_make_synthetic)

    bench = sub.add_parser("explain-bench", help="time attention rollout on random maps of a preset's size")
    bench.add_argument("--preset", default="base", choices=sorted(PRESETS))
    bench.add_argument("--frames", type=int, nargs="+", default=[8, 96], help="frame counts to time")
    bench.add_argument("--attention", nargs="+", default=None, help="schemes (default: all five)")
    bench.add_argument("--max-gb", type=float, default=6.0, help="skip sizes whose maps need more memory")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per size (the best is kept)")
    bench.add_argument("--out", default=None, help="write the rows as JSON here")
    bench.set_defaults(func=_cmd_explain_bench)

    scores = sub.add_parser("attention-scores",
                            help="share of untrained models' attention maps on a toy clip's object vs chance")
    scores.add_argument("--preset", default="small", choices=sorted(PRESETS))
    scores.add_argument("--samples", type=int, default=8, help="toy clips")
    scores.add_argument("--seed", type=int, default=0)
    scores.add_argument("--method", default="rollout", choices=tuple(METHODS))
    scores.add_argument("--out", default=None, help="write the summary and rows as JSON here")
    scores.add_argument("--figure", default=None, help="write the figure here")
    scores.set_defaults(func=_cmd_attention_scores)

    bn = sub.add_parser("bench", help="our model beside Hugging Face's TimeSformer: clips/s, memory, FLOPs utilisation")
    bn.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bn.add_argument("--cases", nargs="+", metavar="NAME",
                    help="cases to run (default: the device's suite; --list shows them)")
    bn.add_argument("--attention", nargs="+", default=None, help="only these schemes")
    bn.add_argument("--repeats", type=int, default=None, help="timed rounds (default: the case's)")
    bn.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default: the case's)")
    bn.add_argument("--batch-size", type=int, default=None, help="default: the case's (GPU: fill the card)")
    bn.add_argument("--threads", type=int, default=None, help="CPU threads (default: the case's)")
    bn.add_argument("--no-hf", action="store_true", help="time our model only")
    bn.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    bn.add_argument("--memory-curves", action="store_true", help="GPU: peak memory against frames and crop")
    bn.add_argument("--out", default=None, help="JSON file to write (cases of the same name in it are replaced)")
    bn.add_argument("--figure", default=None, help="PNG of clips/s per case (and NAME_memory.png for the curves)")
    bn.add_argument("--note", default=None, help="a line kept in the result file (e.g. what code was measured)")
    bn.add_argument("--budget", type=float, default=None, metavar="SECONDS",
                    help="skip the cases that no longer fit in this many seconds (--out is written after each case)")
    bn.add_argument("--list", action="store_true", help="list the cases and exit")
    bn.add_argument("--json", action="store_true")
    bn.set_defaults(func=_cmd_bench)

    bp = sub.add_parser("bench-profile", help="torch.profiler over training steps: where the time goes, ours and HF's")
    bp.add_argument("--case", default="small-train", help="a bench case (python -m tsf bench --list)")
    bp.add_argument("--attention", default="divided")
    bp.add_argument("--mode", default="train", choices=MODES)
    bp.add_argument("--rounds", type=int, default=5)
    bp.add_argument("--out", default=None, help="write the result JSON here")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=_cmd_bench_profile)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # what the result files record
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, VideoError) as err:  # bad input: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
