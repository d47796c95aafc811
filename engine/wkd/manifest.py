"""The build manifest: every published address with its hash, keys, file SHA-256 and paths (JSON).

It lists every address, so it is written **outside** the served tree by default (beside the web root:
``WEBROOT.wkd-manifest.json``): WKD hashes local parts precisely so that a server does not hand out its
address list. ``--incremental`` reads the previous manifest to reuse files and report the differences.
A build streams its manifest (:class:`ManifestWriter`, one entry a line) so the parent's memory does not
grow with the number of addresses.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument

__all__ = [
    "FORMAT",
    "Diff",
    "DiffBuilder",
    "Manifest",
    "ManifestWriter",
    "default_path",
    "diff",
    "load",
    "save",
]

_ENCODE = json.JSONEncoder(ensure_ascii=False).encode  # one encoder for every entry
FORMAT = "pgpbulk-wkd-manifest/1"


@dataclass
class Manifest:
    """``entries``: one dict per address (address, domain, local, hash, fingerprints, created, status,
    sha256, paths, methods); ``version``: the directory name the tree was published as."""

    version: str
    method: str
    domains: list[str] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    policy_sha256: str = ""
    created: str = ""

    def by_address(self) -> dict[str, dict[str, Any]]:
        return {e["address"]: e for e in self.entries}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created": self.created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": self.version,
            "method": self.method,
            "domains": self.domains,
            "policy_sha256": self.policy_sha256,
            "entries": self.entries,
        }


def default_path(webroot: str | os.PathLike[str]) -> Path:
    """``WEBROOT.wkd-manifest.json`` beside the web root (never inside the served tree)."""
    root = Path(os.path.abspath(webroot))
    return root.with_name(root.name + ".wkd-manifest.json")


def save(manifest: Manifest, path: str | os.PathLike[str]) -> None:
    """Write atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest.to_json(), f, ensure_ascii=False, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ManifestWriter:
    """Stream a manifest into a temporary file beside ``path``: :meth:`add` each entry (sorted by the
    caller), :meth:`close` with the domain list (fsync), then :meth:`commit` renames it into place;
    :meth:`abort` removes it."""

    def __init__(self, path: str | os.PathLike[str], version: str, method: str, policy_sha256: str) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._f = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115
        head = {
            "format": FORMAT,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "version": version,
            "method": method,
            "policy_sha256": policy_sha256,
        }
        self._f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "entries": [\n')
        self.count = 0

    def add(self, entry: dict[str, Any]) -> None:
        self._f.write((",\n" if self.count else "") + _ENCODE(entry))
        self.count += 1

    def add_json(self, texts: list[str]) -> None:
        """Append entries already encoded (as :meth:`add` would encode them)."""
        if texts:
            self._f.write((",\n" if self.count else "") + ",\n".join(texts))
            self.count += len(texts)

    def close(self, domains: list[str]) -> None:
        self._f.write(f'\n], "domains": {json.dumps(domains, ensure_ascii=False)}}}\n')
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self.tmp.unlink(missing_ok=True)


def load(path: str | os.PathLike[str]) -> Manifest:
    """Read a manifest; InvalidArgument when it is not one of ours."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{path}: not a JSON manifest ({exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise InvalidArgument(f"{path}: not a pgpbulk WKD manifest (format {FORMAT!r} expected)")
    return Manifest(
        raw["version"],
        raw["method"],
        raw.get("domains", []),
        raw.get("entries", []),
        raw.get("policy_sha256", ""),
        raw.get("created", ""),
    )


@dataclass(frozen=True)
class Diff:
    """Addresses added, removed and whose published file changed, against the previous manifest."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int

    def line(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged"
        )


class DiffBuilder:
    """:func:`diff` fed one new entry at a time (the new manifest is never held in memory)."""

    def __init__(self, old: Manifest | None) -> None:
        self._before = {e["address"]: e["sha256"] for e in old.entries} if old else {}
        self.added: list[str] = []
        self.changed: list[str] = []
        self.unchanged = 0

    def see(self, entry: dict[str, Any]) -> None:
        self.see_file(entry["address"], entry["sha256"])

    def see_file(self, address: str, sha256: str) -> None:
        sha = self._before.pop(address, None)
        if sha is None:
            self.added.append(address)
        elif sha != sha256:
            self.changed.append(address)
        else:
            self.unchanged += 1

    def result(self) -> Diff:
        return Diff(sorted(self.added), sorted(self._before), sorted(self.changed), self.unchanged)


def diff(old: Manifest | None, new: Manifest) -> Diff:
    """Compare two manifests by address and file SHA-256."""
    before = old.by_address() if old else {}
    after = new.by_address()
    added = sorted(a for a in after if a not in before)
    removed = sorted(a for a in before if a not in after)
    changed = sorted(a for a in after if a in before and before[a]["sha256"] != after[a]["sha256"])
    unchanged = sum(1 for a in after if a in before and before[a]["sha256"] == after[a]["sha256"])
    return Diff(added, removed, changed, unchanged)
