"""Charts of a bench document (matplotlib, the optional ``plot`` extra).

Top: one panel per job, two columns, horizontal bars of throughput per implementation on a log scale,
coloured by role (ours, our pure twin, peers, machine bounds); each bar is labelled with its throughput
and its ratio to our reference, gated implementations carry a ``*``, and missing, skipped, failed or
cut implementations are named in place of a bar. Bottom: one panel per scaling series (message size,
workers), throughput against the parameter, log-log. PNG or SVG by extension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMATS = (".png", ".svg")
COLORS = {"us": "#1f77b4", "twin": "#9ecae1", "peer": "#ff7f0e", "bound": "#7f7f7f"}
ROLE_NAMES = {
    "us": "pgpbulk (reference)",
    "twin": "our pure-Python twin",
    "peer": "peer",
    "bound": "machine bound",
}
COLUMNS = 2


class PlotError(ValueError):
    """The chart cannot be made (matplotlib missing, unknown file extension)."""


def check_target(path: str | Path) -> None:
    """Raise ``PlotError`` early (before a long run) when ``path`` or matplotlib will not do."""
    if Path(path).suffix.lower() not in FORMATS:
        raise PlotError(f"{path}: plot file must end in {' or '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotError("matplotlib is not installed (pip install 'pgpbulk[plot]')") from None


def _tick(value: float, unit: str) -> str:
    """Compact axis label: ``10 MB/s``, ``2 GB/s``, ``500 k/s``, ``5 M/s``."""
    if unit == "MB/s":
        return f"{value / 1000:g} GB/s" if value >= 1000 else f"{value:g} MB/s"
    for name, div in (("M/s", 1e6), ("k/s", 1e3)):
        if value >= div:
            return f"{value / div:g} {name}"
    return f"{value:g} /s"


def _unit_axis(axis: Any, unit: str, subs: tuple[float, ...] = (1.0,)) -> None:
    """Log axis with ticks at ``subs`` times each decade, labelled in the job's unit."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _tick(v, unit)))
    axis.set_minor_locator(NullLocator())  # minor log ticks cost seconds to lay out, and say little


def _size_label(value: float, _pos: Any = None) -> str:
    for name, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift:
            return f"{value / (1 << shift):g} {name}"
    return f"{value:g} B"


def _bar_label(result: Mapping[str, Any], job: Mapping[str, Any]) -> str:
    from engine.bench.report import format_ratio, format_throughput

    if result["status"] != "ok":
        return f"{result['status']}: {result.get('reason') or ''}"[:60]
    text = format_throughput(result["throughput"], job["unit"])
    if result["impl"] == job["reference"]:
        return f"{text}  (reference)"
    ratio = next((r for r in job["ratios"] if r["to"] == result["impl"]), None)
    return f"{text}  {format_ratio(ratio['value'], result['role'])}" if ratio else text


def _job_panel(ax: Any, job: Mapping[str, Any]) -> None:
    results = list(reversed(job["results"]))
    ok = [r for r in results if r["status"] == "ok" and r["throughput"]]
    low = min((r["throughput"] for r in ok), default=1.0)
    high = max((r["throughput"] for r in ok), default=10.0)
    # At least two decades wide, room on the right for the labels.
    left = 10 ** math.floor(math.log10(low / 2))
    right = max(high * 30, left * 100)
    values = [r["throughput"] if r in ok else 0 for r in results]
    shown = [i for i, r in enumerate(results) if r in ok]  # no zero-length bars on a log axis
    ax.barh(shown, [values[i] for i in shown], color=[COLORS.get(results[i]["role"], "#333") for i in shown])
    names = [f"{r['impl']} *" if r["gated"] else r["impl"] for r in results]
    ax.set_yticks(range(len(results)), names, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(left, right)
    ax.set_ylim(-0.6, len(results) - 0.4)
    _unit_axis(ax.xaxis, job["unit"])
    for i, r in enumerate(results):
        label = _bar_label(r, job)
        x = values[i] * 1.15 if r in ok else left * 1.15
        ax.text(x, i, label, va="center", fontsize=7, color="black" if r in ok else "#b00000")
    title = f"{job['name']}: {job.get('description') or ''}"
    ax.set_title(title if len(title) <= 75 else title[:72] + "...", fontsize=8.5, loc="left")
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", alpha=0.25)


def _scaling_panel(ax: Any, series: Mapping[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter, NullLocator

    by_impl: dict[str, list[tuple[float, float]]] = {}
    for point in series["points"]:
        by_impl.setdefault(point["impl"], []).append((point["x"], point["throughput"]))
    for impl, points in by_impl.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=impl)
    is_size = series["param"] == "size"
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _unit_axis(ax.yaxis, series["unit"], subs=(1.0, 2.0, 5.0))
    ax.set_xticks(sorted({p["x"] for p in series["points"]}))  # the measured values, nothing between
    ax.xaxis.set_major_formatter(FuncFormatter(_size_label if is_size else (lambda v, _pos: f"{v:g}")))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(series["label"], fontsize=8)
    cut = f" ({series['cut']} points cut by the quick budget)" if series.get("cut") else ""
    ax.set_title(f"{series['job']}: throughput by {series['label']}{cut}", fontsize=8.5, loc="left")
    ax.legend(fontsize=7)
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=7)


def plot(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write the chart of ``doc`` to ``path`` (.png or .svg) and return the path."""
    check_target(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    jobs = list(doc["jobs"])
    series = [s for s in doc.get("scaling", []) if s["points"]]
    if not jobs and not series:
        raise PlotError("nothing to plot: the document has no jobs")
    job_rows = [jobs[i : i + COLUMNS] for i in range(0, len(jobs), COLUMNS)]
    series_rows = [series[i : i + COLUMNS] for i in range(0, len(series), COLUMNS)]
    heights = [0.9 + 0.3 * max(len(j["results"]) for j in row) for row in job_rows]
    heights += [3.0] * len(series_rows)
    total = sum(heights) + 1.2
    fig = plt.figure(figsize=(15, total))
    # A fixed layout: tight_layout measures every tick label several times (seconds on a busy machine).
    grid = fig.add_gridspec(
        len(heights),
        COLUMNS,
        height_ratios=heights,
        left=0.14,
        right=0.98,
        wspace=0.42,
        hspace=0.75 * len(heights) / sum(heights),
        top=1 - 1.0 / total,
        bottom=0.45 / total,
    )
    for r, row in enumerate(job_rows):
        for c, job in enumerate(row):
            _job_panel(fig.add_subplot(grid[r, c]), job)
    for r, row in enumerate(series_rows, start=len(job_rows)):
        for c, s in enumerate(row):
            _scaling_panel(fig.add_subplot(grid[r, c]), s)
    m = doc["machine"]
    kernels = ", ".join(f"{k}={v}" for k, v in m.get("kernels", {}).items())
    fig.suptitle(
        f"pgpbulk bench{' --quick' if doc['quick'] else ''}  {doc['date']}  {m.get('cpu_model', '')}, "
        f"{m['cores']} cores; kernels: {kernels or '?'}.  Labels: throughput and reference/this "
        "(wall clock); * = gated ratio",
        fontsize=9,
        y=1 - 0.12 / total,
    )
    handles = [Patch(color=COLORS[role], label=name) for role, name in ROLE_NAMES.items()]
    fig.legend(
        handles=handles,
        loc="upper center",
        ncol=len(handles),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1 - 0.42 / total),
    )
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
