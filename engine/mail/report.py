"""The JSON report of an archive job: counts per class and outcome, failures with their place, hashes."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.mail.item import MailItem

_LISTED = ("copied", "not-ours")  # outcomes of messages carried over unchanged: listed in ``failures``


@dataclass(frozen=True)
class Result:
    """What ``process_one`` made of one message: the bytes to write and how they came about.

    ``outcome`` is ``encrypted``/``decrypted`` (transformed), ``passed`` (already in the wanted state) or
    ``copied`` (could not be processed: written unchanged, ``reason`` says why). ``sha256`` is the hash
    of the message's plaintext: the input for encrypt, the restored message for decrypt.
    """

    index: int
    mail_class: str
    outcome: str
    raw: bytes
    sha256: str
    reason: str | None = None


@dataclass
class Report:
    """Running totals of a job; ``to_dict`` is the JSON shape written by ``write``."""

    mode: str
    source: str
    destination: str
    source_format: str
    destination_format: str
    messages: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    classes: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    sha256: list[str] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    committed: bool = False
    seconds: float = 0.0
    run: dict[str, Any] = field(default_factory=dict)  # this run's rates (a resumed run: its part only)
    broker: dict[str, Any] | None = None  # card broker counters of this run (card and token keys)
    _outcome_of: list[str] = field(default_factory=list, repr=False)

    def add(self, item: MailItem, result: Result) -> None:
        """Count one processed message."""
        self.count(
            item.index, result.mail_class, result.outcome, result.sha256, len(item.raw), len(result.raw),
            item.source, item.offset, result.reason,
        )  # fmt: skip

    def count(
        self,
        index: int,
        mail_class: str,
        outcome: str,
        sha256: str,
        bytes_in: int,
        bytes_out: int,
        file: str = "",
        offset: int = 0,
        reason: str | None = None,
    ) -> None:
        """Count one message from its parts (a journaled run rebuilds its report from records)."""
        self.messages += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.classes[mail_class] += 1
        self.outcomes[outcome] += 1
        self.sha256.append(sha256)
        self._outcome_of.append(outcome)
        if outcome in _LISTED:  # carried over unchanged: listed with the reason
            self._list(index, file, offset, mail_class, outcome, reason)

    def _list(
        self, index: int, file: str, offset: int, mail_class: str, outcome: str, reason: str | None
    ) -> None:
        """A message carried over unchanged, in ``failures`` with its reason."""
        self.failures.append(
            {"index": index, "file": file, "offset": offset, "class": mail_class, "outcome": outcome,
             "reason": reason}
        )  # fmt: skip

    def count_many(
        self,
        first: int,
        classes: Sequence[str],
        outcomes: Sequence[str],
        sha256: list[str],
        bytes_in: Iterable[int],
        bytes_out: Iterable[int],
        file: str,
        offsets: Sequence[int],
        reasons: Sequence[str | None],
    ) -> None:
        """:meth:`count` of the consecutive messages ``first``, ``first + 1``, ... (one column per argument
        of :meth:`count`, all from one ``file``), in a few C-level passes instead of one call a message."""
        self.messages += len(outcomes)
        self.bytes_in += sum(bytes_in)
        self.bytes_out += sum(bytes_out)
        self.classes.update(classes)
        self.outcomes.update(outcomes)
        self.sha256 += sha256
        self._outcome_of += outcomes
        if not set(_LISTED).isdisjoint(outcomes):
            for i, outcome in enumerate(outcomes):
                if outcome in _LISTED:
                    self._list(first + i, file, offsets[i], classes[i], outcome, reasons[i])

    def count_record(self, r: Mapping[str, Any]) -> None:
        """Count one message from its per-message record (a line of ``DST.journal-records``)."""
        self.count(r["i"], r["class"], r["outcome"], r["sha256"], r["in"], r["out"], r["file"], r["offset"],
                   r["reason"])  # fmt: skip

    def outcome_of(self, index: int) -> str:
        """The outcome of message ``index`` (used by verification)."""
        return self._outcome_of[index]

    @property
    def ok(self) -> bool:
        """Committed, and verified when verification ran."""
        return self.committed and (self.verify is None or bool(self.verify.get("ok")))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready report."""
        return {
            "mode": self.mode,
            "source": self.source,
            "destination": self.destination,
            "source_format": self.source_format,
            "destination_format": self.destination_format,
            "messages": self.messages,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "seconds": round(self.seconds, 3),
            "classes": dict(sorted(self.classes.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "failures": self.failures,
            "verify": self.verify,
            "committed": self.committed,
            "run": self.run,
            **({"broker": self.broker} if self.broker is not None else {}),
            "sha256": self.sha256,
        }

    def write(self, path: str | Path) -> None:
        """Write the report as JSON (mode 0600), atomically."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")
        os.replace(tmp, p)
