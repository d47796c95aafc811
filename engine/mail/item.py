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

    @staticmethod
    def stored(
        index: int, raw: bytes, separator_line: bytes, offset: int, source: str, truncated: bool
    ) -> MailItem:
        """``MailItem(index, raw, separator_line, offset, source, truncated=truncated)`` (a message read from
        an mbox), built without the frozen dataclass's ``__init__`` for the worker's hot path."""
        out = object.__new__(MailItem)
        out.__dict__.update({
            "index": index, "raw": raw, "separator_line": separator_line, "offset": offset, "source": source,
            "name": None, "subdir": None, "truncated": truncated,
        })  # fmt: skip
        return out

    def bare(self) -> MailItem:
        """``self.with_raw(b"")`` (what travels back with a result whose bytes go elsewhere), built without
        the frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) for the worker's hot path."""
        out = object.__new__(MailItem)
        fields = out.__dict__
        fields.update(self.__dict__)
        fields["raw"], fields["truncated"] = b"", False
        return out
