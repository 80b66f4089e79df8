"""The one table renderer: plain text (what the commands print, what the docs show) or markdown."""

from __future__ import annotations

from collections.abc import Sequence

Column = tuple[str, str, str]  # (key, header, format spec); a spec starting with ">" right-aligns text


def format_minutes(seconds: float) -> str:
    """A duration as the tables show it: ``"7m05s"``."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def format_table(rows: Sequence[dict], columns: Sequence[Column], *, markdown: bool = False) -> str:
    """``rows`` as a table of ``columns``.

    Plain text: columns padded to their widest cell and two spaces apart, text left and
    numbers right (a text spec such as ``">s"`` right-aligns text too), a dashed rule under the
    headers. ``markdown=True``: a pipe table, cells unpadded.
    """
    cells = [[format(row[key], spec) for key, _, spec in columns] for row in rows]
    headers = [header for _, header, _ in columns]
    if markdown:
        def line(values: Sequence[str]) -> str:
            return "| " + " | ".join(values) + " |"

        return "\n".join([line(headers), "|" + "---|" * len(columns)] + [line(c) for c in cells])

    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    left = [spec.endswith("s") and not spec.startswith(">") for _, _, spec in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if lf else v.rjust(w) for v, w, lf in zip(values, widths, left)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(c) for c in cells])
