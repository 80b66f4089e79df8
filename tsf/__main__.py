"""The command line: python -m tsf COMMAND ...

Each command only parses its arguments and calls the function that does the work; the
tables it prints come from tsf.bench.table.format_table. The six benchmarks are the
subcommands of one ``bench`` command; their names before that grouping (bench-data, ...),
which the committed result files record, still run (LEGACY_NAMES).
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
from .data.datasets import DATASET_FORMATS, read_dataset
from .data.synthetic import SPLITS, TASKS, make_synthetic
from .data.video import QUALITIES, SAMPLINGS, ClipSampling, VideoError
from .explain import METHODS
from .reproduce import main as reproduce_main
from .train import NonFiniteError, evaluate, fit, load_config, pick_device
from .train.checkpoint import read_classes
from .train.config import TRAIN_PRESETS, DataConfig
from .train.data import held_out_dataset, run_config_for
from .train.features import extract_features
from .train.predict import centre_view, class_names, predict_timeline, predict_videos
from .weights import load_pretrained, save_pretrained, to_hf
from .weights.io import NoSpaceError
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
    try:
        result = fit(config, resume=resume, overwrite=args.overwrite)
    except (NonFiniteError, NoSpaceError) as err:  # the run stopped; the message says what is on disk
        print(f"error: {err}", file=sys.stderr)
        return 1
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


def _read_sampling(args: argparse.Namespace) -> tuple[str, int]:
    """``--sampling`` / ``--sampling-rate``, else what the checkpoint's training run read, else dense
    at rate 32. A synthetic run's clips are whole short videos (as make-synthetic writes them):
    segment sampling, or dense at the rate that spreads the clip over ``source_frames``."""
    run = run_config_for(args.checkpoint) if args.sampling is None or args.sampling_rate is None else None
    if run is None:
        known = ("dense", 32)
    elif run.data.kind == "synthetic":
        T = run.model.num_frames
        known = ("segment", max(1, (run.data.source_frames or T) // T))
    else:
        known = (run.data.sampling, run.data.sampling_rate)
    return args.sampling or known[0], args.sampling_rate or known[1]


def _cmd_predict(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    model = load_pretrained(args.checkpoint).to(device)
    names = class_names(args.checkpoint, args.labels, model.config.num_classes)
    sampling, rate = _read_sampling(args)
    if args.timeline:
        return _predict_timeline(args, model, names, rate)
    results = predict_videos(model, args.videos, classes=names, topk=args.topk, num_clips=args.clips,
                             num_crops=args.crops, sampling=sampling, sampling_rate=rate, on_error="report",
                             device=device)
    for r in results:
        if r.error:
            print(f"error: {r.path}: {r.error}", file=sys.stderr)
            continue
        print(f"{r.path}  ({r.views} views)")
        for rank, (name, p) in enumerate(r.top, 1):
            print(f"  {rank}. {name:<40s} {p:6.1%}")
    bad = sum(1 for r in results if r.error)
    if bad:
        print(f"{bad} of {len(results)} videos could not be used", file=sys.stderr)
    return 0 if not bad else 2 if bad == len(results) else 1  # 1: some predicted, 2: none (bad input)


def _predict_timeline(args: argparse.Namespace, model, names: list[str], rate: int) -> int:
    if len(args.videos) != 1:
        raise ValueError(f"--timeline takes one video, got {len(args.videos)}")
    if args.sampling == "segment":
        raise ValueError("--timeline slides dense clips over the video; leave out --sampling segment")
    from .viz.overlay import plot_timeline  # matplotlib is optional (the notebooks extra)

    video = args.videos[0]
    line = predict_timeline(model, video, classes=names, stride=args.stride, sampling_rate=rate,
                            num_crops=args.crops)
    k = min(3, args.topk)
    print(f"{video}: {len(line.starts)} windows of {model.config.num_frames} frames over "
          f"{line.ends[0] - line.starts[0]:.2f} s (sampling rate {rate})")
    if line.padded:
        print(f"note: the video is shorter than one window: its last frame is repeated {line.padded} times")
    print(format_table(line.rows(k), [("window", "window", "d"), ("start", "start s", ".2f"), ("end", "end s", ".2f")]
                       + [(f"top{r}", f"top-{r}", "s") for r in range(1, k + 1)]))
    plot = Path(args.plot or f"{Path(video).stem}_timeline.png")
    plot_timeline(line.starts, line.ends, line.probs, names, plot, title=f"class probability over time: {Path(video).name}",
                  caption=f"{args.checkpoint}; windows of {model.config.num_frames} frames at rate {rate}, "
                          f"{args.crops} crop{'' if args.crops == 1 else 's'} each")
    print(f"plot: {plot}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .viz.explorer import AttentionExplorer  # plotly and ipywidgets: the notebooks extra

    model = load_pretrained(args.checkpoint)
    names = class_names(args.checkpoint, args.labels, model.config.num_classes)
    sampling, rate = _read_sampling(args)
    clip, padded = centre_view(args.video, model.config, sampling=sampling, sampling_rate=rate)
    if padded:
        print(f"note: {args.video} is shorter than the clip's window; its last frame is repeated "
              f"(try --sampling segment or a lower --sampling-rate)", file=sys.stderr)
    head = int(args.head) if args.head.isdigit() else args.head
    explorer = AttentionExplorer(model, clip, classes=names, head=head)
    if args.target is not None:
        explorer.set_target(args.target)
    out = Path(args.out or f"{Path(args.video).stem}.html")
    page = explorer.to_html(out, views=args.method or tuple(METHODS), title=f"{Path(args.video).name}: {args.checkpoint}")
    pred = int(explorer.probs.argmax())
    print(f"{args.video}: predicted {names[pred]} (p={explorer.probs[pred]:.2f}); "
          f"{sampling} sampling{f' at rate {rate}' if sampling == 'dense' else ''}, "
          f"{model.config.num_frames} frames, centre crop {model.config.img_size}")
    print(f"page: {page} (open it in a browser; plotly.min.js is beside it)")
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    if bool(args.videos) == bool(args.annotations):
        raise ValueError("give video files or --annotations LIST, not both and not neither")
    model = load_pretrained(args.checkpoint)
    sampling, rate = _read_sampling(args)
    if args.annotations:
        samples, classes = read_dataset(args.annotations, args.kind, args.root, args.dataset_labels)
        if not samples:
            raise ValueError(f"{args.annotations}: no videos listed")
    else:
        samples, classes = [(v, 0) for v in args.videos], None
    feats = extract_features(model, samples, classes=classes, labelled=bool(args.annotations), num_clips=args.clips,
                             num_crops=args.crops, sampling=sampling, sampling_rate=rate, keep_views=args.per_view)
    out = feats.save(args.out)
    shape = "x".join(map(str, feats.features.shape))
    print(f"{out}: features {shape} (mean over {feats.protocol})"
          + (f", views {'x'.join(map(str, feats.views.shape))}" if feats.views is not None else "")
          + (", labels" if feats.labels is not None else "") + "; the file names are in its metadata ('paths')")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    return reproduce_main(args.preset, args.only, args.seed, args.run_dir, args.figures_dir, dry=args.dry_run)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    # the study needs pandas (the notebooks extra): imported when it runs
    from .study import ROOT, setup
    from .study.calibration import DEFAULT_STEPS, calibrate
    from .study.report import write_summary

    # like reproduce, and unlike a notebook run by hand, calibrate writes the committed folder
    figures = args.figures_dir or str(ROOT / "figures" / args.preset)
    study, runs, out = setup(args.preset, args.seed, figures, args.runs_dir or "")
    only = None if args.steps == ["all"] else tuple(args.steps or DEFAULT_STEPS)
    frame = calibrate(study, runs, out, only=only)
    write_summary(out.folder)
    print(frame.to_string(index=False))
    return 0


def _cmd_check_data(args: argparse.Namespace) -> int:
    paths = dataset_paths(args.annotations, args.root, format=args.format, labels=args.labels,
                          extension=args.extension, train=args.train, num_classes=args.num_classes)
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


def _cmd_bench_study_run(args: argparse.Namespace) -> int:
    # the study needs pandas (the notebooks extra): imported when it runs
    from .study.runtime import format_study_run, run_study_run

    result = run_study_run(args.preset, task=args.task, attention=args.attention, seed=args.seed, threads=args.threads,
                           init=args.init, repeats=args.repeats, command=_command(args))
    return _report(args, result, format_study_run)


def _cmd_bench_profile(args: argparse.Namespace) -> int:
    result = profile_steps(args.case, args.attention, args.mode, rounds=args.rounds, command=_command(args))
    return _report(args, result, format_profile)


# The user's commands come first in --help; the benchmarks are one group at the end.
DESCRIPTION = """TimeSformer: explain, predict, extract features, train, evaluate, convert weights;
the study (reproduce, calibrate) and the benchmarks (bench SUBCOMMAND)."""


def _add_sampling(parser: argparse.ArgumentParser, clips: bool = True) -> None:
    """How a video is read: the test protocol's options, shared by eval, predict, features and explain."""
    parser.add_argument("--sampling", default=None, choices=SAMPLINGS,
                        help="dense (Kinetics) or segment (SSv2); default: the training run's, else dense")
    parser.add_argument("--sampling-rate", type=int, default=None,
                        help="dense: frames between samples at 30 fps; default: the training run's, else 32")
    if clips:
        parser.add_argument("--clips", type=int, default=1, help="temporal clips (dense sampling)")
        parser.add_argument("--crops", type=int, default=3, help="spatial crops (1: the centre)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tsf", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ex = sub.add_parser("explain", help="an attention explorer page (HTML) for any video and checkpoint",
                        description="Write the standalone attention explorer for one video: the middle clip, "
                                    "centre crop, decoded at the model's frames and crop.")
    ex.add_argument("checkpoint", help="anything tsf.load_pretrained reads (a run's model folder, .pyth, HF folder, ...)")
    ex.add_argument("video")
    ex.add_argument("--out", default=None, help="the page (default: VIDEO's name with .html, in this folder)")
    ex.add_argument("--method", nargs="+", default=None, choices=tuple(METHODS), metavar="METHOD",
                    help=f"the views, the first shown first: {', '.join(METHODS)} (default: all)")
    ex.add_argument("--target", default=None, help="the class the gradient view explains: name or index "
                                                   "(default: the predicted class)")
    ex.add_argument("--head", default="mean", help="mean, max, min or a head's index")
    ex.add_argument("--labels", help="class names: a JSON list/object or one name per line (default: the checkpoint's)")
    _add_sampling(ex, clips=False)
    ex.set_defaults(func=_cmd_explain)

    pr = sub.add_parser("predict", help="top-5 classes of video files, or a timeline of a long one",
                        description="Top-k classes of each video. A file that cannot be used is named on stderr and "
                                    "the others are still predicted; exit code 1 if some could not be used, 2 if none.")
    pr.add_argument("checkpoint")
    pr.add_argument("videos", nargs="+")
    pr.add_argument("--labels", help="class names: a JSON list/object or one name per line (default: the checkpoint's)")
    pr.add_argument("--topk", type=int, default=5)
    _add_sampling(pr)
    pr.add_argument("--timeline", action="store_true",
                    help="slide a clip over the video: the top classes per window and a PNG of probability over time")
    pr.add_argument("--stride", type=float, default=None, help="timeline: seconds between windows (default: half a window)")
    pr.add_argument("--plot", default=None, help="timeline: the PNG (default: VIDEO's name with _timeline.png, here)")
    pr.add_argument("--device", default="auto", help="auto (the GPU if there is one) | cpu | cuda | cuda:N")
    pr.set_defaults(func=_cmd_predict)

    ft = sub.add_parser("features", help="the final cls feature of every video (safetensors, with the file names)")
    ft.add_argument("checkpoint")
    ft.add_argument("videos", nargs="*", help="video files (or give --annotations)")
    ft.add_argument("--annotations", help="a dataset list instead (Kinetics-style, SSv2 JSON, or a folder per class)")
    ft.add_argument("--root", help="folder the annotation paths are relative to")
    ft.add_argument("--kind", default="auto", choices=("auto", *DATASET_FORMATS))
    ft.add_argument("--dataset-labels", help="with --annotations: its class names (SSv2 labels JSON, a Kinetics "
                                             "list's labels.json or one name per line)")
    ft.add_argument("--out", default="features.safetensors", help="the file to write (*.safetensors)")
    ft.add_argument("--per-view", action="store_true", help="also keep every view's feature (N, views, D)")
    _add_sampling(ft)
    ft.set_defaults(func=_cmd_features)

    train = sub.add_parser("train", help="train (also under torchrun --nproc_per_node=N)")
    train.add_argument("--preset", default="scratch", choices=sorted(TRAIN_PRESETS),
                       help="scratch: small model, AdamW + cosine; authors: the paper's Kinetics recipe; smoke: seconds")
    train.add_argument("--config", help="a YAML file with model/data/optim sections and top-level keys")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override a dotted key, e.g. --set model.attention=joint --set optim.lr=3e-4")
    train.add_argument("--output", help="run folder (same as --set output_dir=...)")
    train.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                       help="continue from the newest checkpoint of the run folder that verifies, or from CHECKPOINT")
    train.add_argument("--overwrite", action="store_true",
                       help="start afresh in a run folder that holds another run, deleting that run's files")
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

    check = sub.add_parser("check-data", help="scan a dataset for bad videos and report every one and why")
    check.add_argument("annotations", help="Kinetics-style list, SSv2 JSON, or a folder with one folder per class")
    check.add_argument("--root", default=None, help="folder the annotation paths are relative to (default: its folder)")
    check.add_argument("--format", default="auto", choices=("auto", *DATASET_FORMATS))
    check.add_argument("--labels", default=None,
                       help="SSv2 labels JSON, or a Kinetics list's class names (optional for checking)")
    check.add_argument("--extension", default=".webm", help="SSv2 video extension (default .webm)")
    check.add_argument("--train", default=None,
                       help="the training list: this list's labels must be among its classes (for a held-out split)")
    check.add_argument("--num-classes", type=int, default=None,
                       help="integer labels lie in [0, N) (else they must be dense from 0)")
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
    cal.add_argument("--steps", nargs="+", metavar="STEP",
                     help="calibration steps to run, or 'all' for the whole ladder (default: epochs zeros half compact compact_long)")
    cal.set_defaults(func=_cmd_calibrate)

    bench = sub.add_parser("bench", help="the benchmarks: models, data, synthetic, explain, attention-scores, profile, study-run",
                           description="The benchmarks behind the numbers in docs/ (python -m tsf bench SUBCOMMAND -h).")
    _add_bench_commands(bench.add_subparsers(dest="benchmark", required=True, metavar="SUBCOMMAND"))
    return parser


def _add_bench_commands(sub) -> None:
    bn = sub.add_parser("models", help="our model beside Hugging Face's TimeSformer: clips/s, memory, FLOPs utilisation")
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

    data = sub.add_parser("data", help="DataLoader throughput: decoded training clips per second per worker count")
    data.add_argument("--folder", default=None, help="mp4 files to read (default: generate Kinetics-like ones)")
    data.add_argument("--videos", type=int, default=8, help="how many files to generate")
    data.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    data.add_argument("--clips", type=int, default=96, help="clips timed per worker count")
    data.add_argument("--batch-size", type=int, default=8)
    data.add_argument("--frames", type=int, default=8)
    data.add_argument("--sampling-rate", type=int, default=32)
    data.add_argument("--crop", type=int, default=224)
    data.add_argument("--out", default=None, help="write the result JSON here")
    data.add_argument("--json", action="store_true")
    data.set_defaults(func=_cmd_bench_data)

    bsyn = sub.add_parser("synthetic", help="synthetic clip generation vs small-model training throughput")
    bsyn.add_argument("--clips", type=int, default=500, help="clips generated per task")
    bsyn.add_argument("--attention", nargs="+", default=list(ATTENTION_SCHEMES))
    bsyn.add_argument("--batch-size", type=int, default=32)
    bsyn.add_argument("--steps", type=int, default=5, help="timed training steps per scheme")
    bsyn.add_argument("--out", default=None, help="write the result JSON here")
    bsyn.add_argument("--json", action="store_true")
    bsyn.set_defaults(func=_cmd_bench_synthetic)

    rollout = sub.add_parser("explain", help="time attention rollout on random maps of a preset's size")
    rollout.add_argument("--preset", default="base", choices=sorted(PRESETS))
    rollout.add_argument("--frames", type=int, nargs="+", default=[8, 96], help="frame counts to time")
    rollout.add_argument("--attention", nargs="+", default=None, help="schemes (default: all five)")
    rollout.add_argument("--max-gb", type=float, default=6.0, help="skip sizes whose maps need more memory")
    rollout.add_argument("--repeats", type=int, default=3, help="timed runs per size (the best is kept)")
    rollout.add_argument("--out", default=None, help="write the rows as JSON here")
    rollout.set_defaults(func=_cmd_explain_bench)

    scores = sub.add_parser("attention-scores",
                            help="share of untrained models' attention maps on a toy clip's object vs chance")
    scores.add_argument("--preset", default="small", choices=sorted(PRESETS))
    scores.add_argument("--samples", type=int, default=8, help="toy clips")
    scores.add_argument("--seed", type=int, default=0)
    scores.add_argument("--method", default="rollout", choices=tuple(METHODS))
    scores.add_argument("--out", default=None, help="write the summary and rows as JSON here")
    scores.add_argument("--figure", default=None, help="write the figure here")
    scores.set_defaults(func=_cmd_attention_scores)

    bp = sub.add_parser("profile", help="torch.profiler over training steps: where the time goes, ours and HF's")
    bp.add_argument("--case", default="small-train", help="a bench case (python -m tsf bench models --list)")
    bp.add_argument("--attention", default="divided")
    bp.add_argument("--mode", default="train", choices=MODES)
    bp.add_argument("--rounds", type=int, default=5)
    bp.add_argument("--out", default=None, help="write the result JSON here")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=_cmd_bench_profile)

    sr = sub.add_parser("study-run", help="one study run end to end, by part, against its bare training step")
    sr.add_argument("--preset", default="cpu", help="a study preset (smoke, cpu, gpu, gpu-full)")
    sr.add_argument("--task", default="motion", choices=TASKS)
    sr.add_argument("--attention", default="divided", choices=ATTENTION_SCHEMES)
    sr.add_argument("--seed", type=int, default=0)
    sr.add_argument("--threads", type=int, default=None, help="default: the study's per run (cores / runs side by side)")
    sr.add_argument("--init", default="", help="weights to start from, as the study's image model (default: random)")
    sr.add_argument("--repeats", type=int, default=20, help="timed bare steps")
    sr.add_argument("--out", default=None, help="write the result JSON here")
    sr.add_argument("--json", action="store_true")
    sr.set_defaults(func=_cmd_bench_study_run)


# The benchmarks' names before they became subcommands of `bench`: the committed result files
# record their commands so, and those commands still run.
LEGACY_NAMES: dict[str, list[str]] = {
    "bench-data": ["bench", "data"], "bench-synthetic": ["bench", "synthetic"],
    "explain-bench": ["bench", "explain"], "attention-scores": ["bench", "attention-scores"],
    "bench-profile": ["bench", "profile"],
}
BENCH_COMMANDS = ("models", "data", "synthetic", "explain", "attention-scores", "profile", "study-run")


def canonical_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with a benchmark's old name replaced by its subcommand: ``bench-data ...`` is
    ``bench data ...``, and ``bench --cases ...`` (the old model benchmark) is ``bench models ...``."""
    argv = list(argv)
    if argv and argv[0] in LEGACY_NAMES:
        return LEGACY_NAMES[argv[0]] + argv[1:]
    if argv[:1] == ["bench"] and len(argv) > 1 and argv[1] not in BENCH_COMMANDS and argv[1] not in ("-h", "--help"):
        return ["bench", "models"] + argv[1:]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    given = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(canonical_argv(given))
    args.argv = given  # what the result files record
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, VideoError) as err:  # bad input: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
