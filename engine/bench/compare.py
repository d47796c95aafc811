"""The regression gate: compare this run's ratios with a saved bench document.

**What is gated.** Only ratios whose implementation is marked ``gated`` in this run, because only they
are stable across shared runners: our reference (native) against our pure-Python twin, against gpg
(``gpg --enarmor``, ``gpg --dearmor``, ``gpg-wks-client``), and large-message encryption against
``openssl enc`` + ``sha1`` (the same AES and SHA-1 code, by CPU time). Absolute throughput is never
gated; nor are ratios against libraries whose speed depends on the machine's SIMD support (pybase64),
on their own release (pysequoia, PGPy: 0.8x-2.2x by CPU between quick runs at load 5), sq, or
the fresh-allocation bound.

**Clock.** The gate compares the CPU-time ratio (``cpu``) when both documents have it, else the
wall-clock ratio (``value``). On a runner shared with other jobs a short in-process sample often runs
undisturbed while a long subprocess peer gets a fraction of a core, so wall ratios swing by 2x where
CPU ratios move by 10-40% (measured on this project's 2-core VM at load 5-7). All gated implementations
are single-threaded, so CPU time is their real cost; a parallel job (``Job.parallel``, or a sample
that used more than 1.25 cores) has no ``cpu`` ratio, so the gate compares its wall clock.

**Rule.** A gated ratio identified by (job, of, to) fails when ``new < old * (1 - fail_below)``; e.g.
with ``--fail-below 0.3`` a native/gpg ratio of 30x fails below 21x. A job whose reference (our own
implementation) in the previous run is not measured now (native kernels not built or disabled with
``ENGINE_NO_EXTENSIONS=1``, our code failing) fails: its ratios would otherwise silently vanish. A
ratio that exists in only one of the two documents for any other reason (peer missing or cut by the
quick budget, new job) is listed as not compared, with the reason, and never fails the gate.
Comparing against a document of another schema version is a usage error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench import schema

DEFAULT_FAIL_BELOW = 0.3


class CompareError(ValueError):
    """The previous document cannot be used (unreadable, not a bench document, other version)."""


@dataclass(frozen=True)
class Check:
    """One gated ratio: its old and new values and the verdict."""

    job: str
    of: str
    to: str
    old: float | None
    new: float | None
    limit: float | None
    status: str  # "ok", "FAIL", "not compared"
    clock: str = "wall"
    note: str = ""

    def line(self) -> str:
        """One line of the gate report."""
        name = f"{self.job}: {self.of} / {self.to}"
        if self.note:
            return f"  {self.status:<12}  {name} ({self.note})"
        if self.status == "not compared":
            side = "previous run" if self.old is None else "this run"
            return f"  not compared  {name} (absent from {side})"
        change = (self.new / self.old - 1) * 100 if self.old and self.new else 0.0
        return (
            f"  {self.status:<12}  {name} ({self.clock}): {self.old:.3g}x -> {self.new:.3g}x "
            f"({change:+.0f}%, limit {self.limit:.3g}x)"
        )


def load(path: str | Path) -> dict[str, Any]:
    """Read a saved document; ``CompareError`` when it is not a usable version-1 bench document."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompareError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != schema.NAME:
        raise CompareError(f"{path}: not a pgpbulk bench document")
    if doc.get("version") != schema.VERSION:
        raise CompareError(
            f"{path}: schema version {doc.get('version')}, this pgpbulk writes {schema.VERSION}"
        )
    problems = schema.validate(doc)
    if problems:
        raise CompareError(f"{path}: invalid bench document: {problems[0]}")
    return doc


Key = tuple[str, str, str]


def _ratios(doc: Mapping[str, Any], only_gated: bool) -> dict[Key, Mapping[str, Any]]:
    return {
        (job["name"], r["of"], r["to"]): r
        for job in doc["jobs"]
        for r in job["ratios"]
        if r["gated"] or not only_gated
    }


def _pair(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, float, float]:
    """The clock both sides have (``cpu`` preferred) and the two values on it."""
    if old.get("cpu") and new.get("cpu"):
        return "cpu", old["cpu"], new["cpu"]
    return "wall", old["value"], new["value"]


def _status(job: Mapping[str, Any] | None, impl: str) -> str:
    """``"missing (sq not installed)"``: what became of ``impl`` in ``job`` this run."""
    for row in (job or {}).get("results", []):
        if row["impl"] == impl:
            return f"{row['status']} ({row.get('reason') or 'no reason'})" if row["status"] != "ok" else "ok"
    return "absent from this run"


def _lost_references(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[Check]:
    """A FAIL for every job whose previous reference had gated ratios and is not measured now."""
    now = {job["name"]: job for job in current["jobs"]}
    checks = []
    for job in previous["jobs"]:
        ref = job.get("reference")
        cur = now.get(job["name"])
        if not ref or cur is None or not any(r["gated"] and r["of"] == ref for r in job["ratios"]):
            continue
        if cur.get("reference") == ref and _status(cur, ref) == "ok":
            continue
        state = _status(cur, ref)
        since = f"; ratios now against {cur['reference']}" if cur.get("reference") not in (None, ref) else ""
        note = f"reference {ref} not measured: {state}{since}"
        checks.append(Check(job["name"], ref, "*", None, None, None, "FAIL", note=note))
    return checks


def compare(previous: Mapping[str, Any], current: Mapping[str, Any], fail_below: float) -> list[Check]:
    """Checks of every gated ratio of ``current`` (and of gated ratios that vanished since ``previous``)."""
    if not 0 < fail_below < 1:
        raise ValueError("fail_below must be a fraction between 0 and 1")
    new = _ratios(current, only_gated=True)
    old_all = _ratios(previous, only_gated=False)
    jobs_now = {job["name"]: job for job in current["jobs"]}
    checks = _lost_references(previous, current)
    lost = {c.job for c in checks}
    for key, ratio in new.items():
        old = old_all.get(key)
        if old is None:
            checks.append(Check(*key, None, ratio["value"], None, "not compared"))
            continue
        clock, old_value, new_value = _pair(old, ratio)
        limit = old_value * (1 - fail_below)
        status = "FAIL" if new_value < limit else "ok"
        checks.append(Check(*key, old_value, new_value, limit, status, clock))
    for key, ratio in _ratios(previous, only_gated=True).items():
        # Jobs left out with --only are not reported; a lost reference has its FAIL line above.
        if key not in new and key[0] in jobs_now and key[0] not in lost:
            note = f"{key[2]} {_status(jobs_now[key[0]], key[2])}"
            checks.append(Check(*key, ratio["value"], None, None, "not compared", note=note))
    return checks


def failed(checks: list[Check]) -> bool:
    """True when any check failed."""
    return any(c.status == "FAIL" for c in checks)


def context(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Differences between the two runs that move ratios without a regression (CPU flags, --quick)."""
    notes = []
    old_m, new_m = previous.get("machine", {}), current.get("machine", {})
    for flag, had in old_m.get("cpu_flags", {}).items():
        has = new_m.get("cpu_flags", {}).get(flag)
        if has is not None and has != had:
            notes.append(f"CPU flag {flag}: {'yes' if had else 'no'} before, {'yes' if has else 'no'} now")
    if previous.get("quick") != current.get("quick"):
        notes.append(f"previous run quick={previous.get('quick')}, this run quick={current.get('quick')}")
    return notes


def render(checks: list[Check], previous: str, fail_below: float, notes: Sequence[str] = ()) -> str:
    """The gate report printed after the table."""
    verdict = "FAILED" if failed(checks) else "passed"
    lines = [f"gate vs {previous} (fail when a gated ratio drops by more than {fail_below:.0%}): {verdict}"]
    lines += [f"  note: {note}" for note in notes]
    lines += [c.line() for c in checks] or ["  no gated ratios in common"]
    return "\n".join(lines) + "\n"
