"""The human-readable table of a bench document.

One row per job and implementation: throughput, and the ratio ``reference / this`` (the reference is
our native code, or the pure twin when nothing native is built). Against a "bound" row the ratio is
printed as the fraction of that machine limit reached. Missing peers stay in the table as
"missing (reason)"; nothing is left out silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def format_throughput(value: float | None, unit: str) -> str:
    """``3.21 GB/s``, ``850 MB/s``, ``5.21 M/s``, ``215 k/s``."""
    if value is None:
        return "-"
    if unit == "MB/s":
        return f"{value / 1000:.2f} GB/s" if value >= 1000 else f"{value:.3g} MB/s"
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    return f"{value / 1e3:.3g} k/s" if value >= 1e3 else f"{value:.3g} /s"


def format_size(size: int, unit: str) -> str:
    """``1 MiB``, ``64 MiB``, ``1 GiB``, ``200,000 items``."""
    if unit != "MB/s":
        return f"{size:,} items"
    for name, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {name}"
    return f"{size:,} B"


def format_ratio(value: float, role: str) -> str:
    """``31.9x`` for a peer; ``0.91 of bound`` for a machine limit."""
    if role == "bound":
        return f"{value:.2f} of bound"
    return f"{value:.3g}x" if value < 1000 else f"{value:,.0f}x"


def _features(features: Mapping[str, Any]) -> str:
    parts = []
    for key, value in features.items():
        if key in ("native", "impl") or value is False or value is None:
            continue
        parts.append(key if value is True else f"{key}={value}")
    return ", ".join(parts) or "none"


def _peer(name: str, version: str | None) -> str:
    if version is None:
        return f"{name} missing"
    return version if version.lower().startswith(name.lower()) else f"{name} {version}"


def header(doc: Mapping[str, Any]) -> list[str]:
    """Run, CPU, kernel choice and peer lines above the table."""
    m = doc["machine"]
    flags = ", ".join(
        f"{k.upper().replace('_', '-')} {'yes' if v else 'no'}" for k, v in m["cpu_flags"].items()
    )
    kernels = ", ".join(f"{k}={v}" for k, v in m["kernels"].items()) or "unknown"
    forced = " (ENGINE_NO_EXTENSIONS=1)" if m.get("forced_pure") else ""
    lines = [
        f"pgpbulk bench {'--quick ' if doc['quick'] else ''}{doc['date']}  pgpbulk {doc['pgpbulk']}, "
        f"Python {m['python']}, seed {doc['seed']}, {doc.get('seconds', 0):.1f} s",
        f"CPU: {m.get('cpu_model', '?')}, {m['cores']} cores; {flags}",
        f"kernels in use: {kernels}{forced}; native built: {'yes' if m.get('native_built') else 'no'}",
    ]
    for name, feats in m.get("kernel_features", {}).items():
        if name.endswith("/native"):
            lines.append(f"  {name} uses: {_features(feats)}")
    peer_list = ", ".join(_peer(name, version) for name, version in doc["peers"].items())
    lines.append(f"peers: {peer_list or 'none'}")
    for module, error in doc.get("load_errors", {}).items():
        lines.append(f"job module {module} failed to load: {error}")
    return lines


def table_rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """Rows (job, implementation, throughput, wall ratio, CPU ratio, notes), without the header row."""
    rows = []
    for job in doc["jobs"]:
        ratio_to = {r["to"]: r for r in job["ratios"]}
        label = f"{job['name']} {format_size(job['size'], job['unit'])}"
        for result in job["results"]:
            name = result["impl"]
            notes = "; ".join(n for n in (result.get("note"), "gated" if result["gated"] else "") if n)
            if result["status"] != "ok":
                reason = f"{result['status']} ({result.get('reason') or 'no reason'})"
                rows.append([label, name, reason, "", "", ""])
            elif name == job["reference"]:
                rows.append(
                    [
                        label,
                        name,
                        format_throughput(result["throughput"], job["unit"]),
                        "reference",
                        "",
                        notes,
                    ]
                )
            else:
                ratio = ratio_to.get(name)
                wall = format_ratio(ratio["value"], result["role"]) if ratio else "-"
                cpu = format_ratio(ratio["cpu"], result["role"]) if ratio and ratio.get("cpu") else "-"
                rows.append(
                    [label, name, format_throughput(result["throughput"], job["unit"]), wall, cpu, notes]
                )
            label = ""
    return rows


def render(doc: Mapping[str, Any]) -> str:
    """The full text report: header lines, then an aligned table."""
    head = ["job", "implementation", "throughput", "ref/this", "by CPU", "notes"]
    rows = table_rows(doc)
    # A "missing (reason)" cell runs across the later columns instead of widening them for every row.
    measured = [r for r in rows if r[3] != ""]
    widths = [max(len(r[i]) for r in [head, *measured, *(rows if i < 2 else [])]) for i in range(len(head))]
    lines = [*header(doc), ""]
    for row in [head, *rows]:
        cells = row[:3] if row[3] == "" else row
        lines.append("  ".join(f"{cell:<{w}}" for cell, w in zip(cells, widths, strict=False)).rstrip())
    lines.append("ref/this: reference throughput / this one, wall clock; by CPU: the same in CPU seconds.")
    lines.extend(budget_lines(doc))
    return "\n".join(lines) + "\n"


def budget_lines(doc: Mapping[str, Any]) -> list[str]:
    """Quick runs: seconds per job against its budget, and every job that went over."""
    timed = [job for job in doc["jobs"] if "budget_s" in job]
    if not timed:
        return []
    per_job = ", ".join(f"{job['name']} {job['seconds']:.1f}/{job['budget_s']:g}" for job in timed)
    lines = [f"quick budgets (s): {per_job}; run {doc.get('seconds', 0):.1f}/{doc.get('budget_s', 0):g}"]
    asked, run = doc.get("budget_asked_s", 0), doc.get("budget_s", 0)
    if run and asked > run:
        lines.append(
            f"OVER BUDGET: the jobs ask for {asked:g} s together, the run has {run:g} s: "
            "the largest budgets were capped"
        )
    if run and doc.get("seconds", 0) > run * 1.2:
        lines.append(f"OVER BUDGET: the run took {doc['seconds']:.1f} s of {run:g} s")
    for job in timed:
        if job.get("over_budget"):
            cut = [r["impl"] for r in job["results"] if r["status"] == "cut"]
            extra = f"; not run: {', '.join(cut)}" if cut else ""
            lines.append(
                f"OVER BUDGET: {job['name']} took {job['seconds']:.1f} s of {job['budget_s']:g} s{extra}"
            )
    return lines
