"""WKD build, the parent's index (:class:`engine.wkd.tree.TreeWriter`): the manifest entries come out
sorted by domain, then hash, one per file, merged files included, whichever read of the index runs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.wkd import tree
from engine.wkd.build import Packed


def _row(domain: str, hashed: str, fpr: str, created: int, data: bytes, written: bool) -> tuple:
    sha = hashlib.sha256(data).hexdigest()
    address = f"{hashed}@{domain}"
    text = tree.entry_text("advanced", domain, hashed, hashed, address, fpr, created, "valid", sha)
    return (domain, hashed, text, None if written else data, None)


@pytest.mark.parametrize("seeing", [False, True], ids=["plain", "see"])
def test_entries_sorted_by_domain_then_hash_one_per_file(tmp_path: Path, seeing: bool) -> None:
    """Two domains whose hashes interleave, a merged file in each: the entries are sorted by domain
    first, each file once, a merged one with its keys newest first; ``see`` hears them in that order."""
    stage = tmp_path / "stage"
    stage.mkdir()
    writer = tree.TreeWriter(stage, "advanced", b"", ["b.example", "a.example"])
    for domain, hashed, data in (
        ("a.example", "mm", b"old"),
        ("b.example", "aa", b"one"),
        ("a.example", "zz", b"z"),
    ):
        (stage / domain / "hu" / hashed).write_bytes(data)
    (stage / "b.example" / "hu" / "mm").write_bytes(b"m")
    seen: list[tuple[str, str]] = []
    see: Callable[[str, str], None] | None = (lambda a, s: seen.append((a, s))) if seeing else None
    try:
        rows = [
            _row("a.example", "zz", "F1", 100, b"z", True),
            _row("b.example", "aa", "F1", 100, b"one", True),
            _row("a.example", "mm", "F1", 100, b"old", True),
            _row("b.example", "mm", "F1", 100, b"m", True),
            _row("a.example", "mm", "F2", 200, b"new", False),
            _row("b.example", "aa", "F3", 300, b"two", False),
        ]
        writer.add_packed(Packed(rows=rows, unwritten=[4, 5], domains={"a.example", "b.example"}))
        entries = [json.loads(text) for texts in writer.finish_entries(see=see) for text in texts]
    finally:
        writer.close()
    assert [(e["domain"], e["hash"], e["fingerprints"]) for e in entries] == [
        ("a.example", "mm", ["F2", "F1"]),
        ("a.example", "zz", ["F1"]),
        ("b.example", "aa", ["F3", "F1"]),
        ("b.example", "mm", ["F1"]),
    ]
    assert writer.addresses == 4
    hu_a, hu_b = stage / "a.example" / "hu", stage / "b.example" / "hu"
    assert (hu_a / "mm").read_bytes() == b"newold" and (hu_b / "aa").read_bytes() == b"twoone"
    for e in entries:
        assert e["sha256"] == hashlib.sha256((stage / e["paths"]["advanced"]).read_bytes()).hexdigest()
    if seeing:
        assert seen == [(e["address"], e["sha256"]) for e in entries]
