"""The command line: ``python -m tsf COMMAND ...``.

Each command imports what it needs when it runs, so ``python -m tsf info`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .config import ATTENTION_SCHEMES, PRESETS


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """A plain-text table; ``columns`` are (key, header, format spec)."""
    cells = [[format(row[key], spec) for key, _, spec in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    text = [spec == "s" for _, _, spec in columns]  # text left, numbers right

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if left else v.rjust(w) for v, w, left in zip(values, widths, text)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])


def _cmd_info(args: argparse.Namespace) -> int:
    from .config import preset
    from .cost import cost_row

    overrides = {}
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    if args.frames is not None:
        overrides["num_frames"] = args.frames
    if args.crop is not None:
        overrides["img_size"] = args.crop
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


def _cmd_explain_bench(args: argparse.Namespace) -> int:
    from .explain_bench import run_rollout_benchmark, speed_table

    rows = run_rollout_benchmark(args.preset, args.frames, schemes=args.attention or ATTENTION_SCHEMES,
                                 max_gb=args.max_gb, repeats=args.repeats, out=args.out)
    print(speed_table(rows))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_attention_scores(args: argparse.Namespace) -> int:
    from .explain_bench import scores_table, untrained_scores

    summary = untrained_scores(args.preset, samples=args.samples, seed=args.seed, method=args.method,
                               out=args.out, figure=args.figure)
    print(scores_table(summary))
    return 0


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
    scores.add_argument("--method", default="rollout", choices=["rollout", "raw", "gradient"])
    scores.add_argument("--out", default=None, help="write the summary and rows as JSON here")
    scores.add_argument("--figure", default=None, help="write the figure here")
    scores.set_defaults(func=_cmd_attention_scores)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ValueError as err:  # bad input: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
