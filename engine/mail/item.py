"""The unit every reader yields and every writer takes: one message's exact bytes plus where it came from."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class MailItem:
    """One message read from an archive.

    ``raw`` is the message exactly as stored (mbox quoting undone). ``separator_line`` is the mbox
    ``From `` line including its line ending (None for Maildir / .eml). ``offset`` is the byte offset of
    the message (its separator line) in ``source``. ``name`` and ``subdir`` keep a Maildir / .eml file
    name and its ``cur``/``new`` folder. ``truncated`` marks a last message cut short in the source.
    """

    index: int
    raw: bytes
    separator_line: bytes | None = None
    offset: int = 0
    source: str = ""
    name: str | None = None
    subdir: str | None = None
    truncated: bool = False

    def with_raw(self, raw: bytes) -> MailItem:
        """The same item (same place, name and separator) carrying other bytes."""
        return replace(self, raw=raw, truncated=False)
