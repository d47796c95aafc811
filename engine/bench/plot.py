"""Charts of a bench document (matplotlib, the optional ``plot`` extra).

One panel per job: horizontal bars of throughput per implementation on a log scale (our reference
highlighted, missing and failed peers named in place of a bar). Then one panel per scaling series
(message size, later workers): throughput against the parameter, log-log. PNG or SVG by extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

FORMATS = (".png", ".svg")
COLORS = {"us": "#1f77b4", "twin": "#9ecae1", "peer": "#ff7f0e", "bound": "#7f7f7f"}


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


def _job_panel(ax: Any, job: Mapping[str, Any]) -> None:
    from engine.bench.report import format_throughput

    results = list(reversed(job["results"]))
    names = [r["impl"] for r in results]
    ok = [r for r in results if r["status"] == "ok" and r["throughput"]]
    values = [r["throughput"] if r in ok else 0 for r in results]
    colors = [COLORS.get(r["role"], "#333333") for r in results]
    ax.barh(range(len(results)), values, color=colors)
    ax.set_yticks(range(len(results)), names, fontsize=8)
    ax.set_xscale("log")
    low = min((r["throughput"] for r in ok), default=1.0)
    high = max((r["throughput"] for r in ok), default=10.0)
    ax.set_xlim(low / 3, high * 8)
    for i, r in enumerate(results):
        text = format_throughput(r["throughput"], job["unit"]) if r in ok else r["status"]
        ax.text(
            values[i] * 1.1 if r in ok else low / 2.8,
            i,
            text,
            va="center",
            fontsize=7,
            color="black" if r in ok else "#b00000",
        )
    ax.set_title(f"{job['name']}: {job.get('description') or ''}", fontsize=9, loc="left")
    ax.set_xlabel(job["unit"] + " (log)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)


def _scaling_panel(ax: Any, series: Mapping[str, Any]) -> None:
    by_impl: dict[str, list[tuple[float, float]]] = {}
    for point in series["points"]:
        by_impl.setdefault(point["impl"], []).append((point["x"], point["throughput"]))
    for impl, points in by_impl.items():
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=impl)
    ax.set_xscale("log", base=2 if series["param"] != "size" else 10)
    ax.set_yscale("log")
    ax.set_xlabel(series["label"], fontsize=8)
    ax.set_ylabel(series["unit"], fontsize=8)
    ax.set_title(f"{series['job']}: scaling with {series['label']}", fontsize=9, loc="left")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax.tick_params(labelsize=7)


def plot(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write the chart of ``doc`` to ``path`` (.png or .svg) and return the path."""
    check_target(path)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    jobs = list(doc["jobs"])
    series = [s for s in doc.get("scaling", []) if s["points"]]
    heights = [0.6 + 0.28 * len(job["results"]) for job in jobs] + [3.2] * len(series)
    if not heights:
        raise PlotError("nothing to plot: the document has no jobs")
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(9, sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, job in zip(axes[: len(jobs), 0], jobs, strict=False):
        _job_panel(ax, job)
    for ax, s in zip(axes[len(jobs) :, 0], series, strict=False):
        _scaling_panel(ax, s)
    m = doc["machine"]
    fig.suptitle(
        f"pgpbulk bench{' --quick' if doc['quick'] else ''} {doc['date']} - {m.get('cpu_model', '')}, "
        f"{m['cores']} cores",
        fontsize=9,
    )
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
