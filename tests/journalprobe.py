"""Reading a run's journal from the outside, as the kill -9 tests do while the run goes on."""

from __future__ import annotations

import json
from pathlib import Path


def commit_lines(journal: Path) -> list[str]:
    """The journal's commit records so far (none before the journal exists)."""
    try:
        return [line for line in journal.read_text().splitlines() if '"k":"commit"' in line]
    except FileNotFoundError:
        return []


def commits(journal: Path) -> int:
    """How many commits the journal holds."""
    return len(commit_lines(journal))


def committed_offset(journal: Path) -> int:
    """The output offset of the last commit (0 before the first)."""
    lines = commit_lines(journal)
    return int(json.loads(lines[-1].split("\t")[0])["offset"]) if lines else 0
