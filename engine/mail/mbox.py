"""mbox reading (mboxo, mboxrd, mboxcl2) and writing (mboxrd), streaming and byte-exact per message.

Separator rule, used by both directions so round trips are exact: a message ends one line ending before
the next ``From `` line (or before end of file); that line ending belongs to the separator, not to the
message. The writer therefore appends exactly one line ending after every message: a message ending in
``\\n`` gets the usual blank line, and a message without a final newline gets just the newline it lacks.
The reader strips ``\\r\\n`` when the message bytes end with it, else ``\\n``; the writer appends
``\\r\\n`` for CRLF messages and for any message ending in a bare ``\\r``. A last message whose file
does not end in a line ending (or whose Content-Length runs past the end) is flagged ``truncated``.
"""

from __future__ import annotations

import mmap
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, overload

from engine import _native
from engine.errors import InvalidArgument, StructuralError
from engine.mail.headers import eol_of, field_value, iter_fields
from engine.mail.item import MailItem

VARIANTS = ("mboxrd", "mboxo", "mboxcl2")
DEFAULT_SEPARATOR = b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
_CHUNK = 1 << 20


def unquote(raw: bytes) -> bytes:
    """mboxrd: remove one ``>`` from every ``>From `` line (any depth); ``raw`` itself when none."""
    return _native.kernel("mailpass").unquote(raw if type(raw) is bytes else bytes(raw))  # type: ignore[no-any-return]


def quote(raw: bytes) -> bytes:
    """mboxrd: add one ``>`` to every ``From `` and ``>From `` line."""
    if b"From " not in raw:
        return raw
    raw = raw if type(raw) is bytes else bytes(raw)
    return _native.kernel("mailpass").quote_join(b"", raw, len(raw), b"")  # type: ignore[no-any-return]


def _searcher() -> Callable[[Any, bytes, int], int]:
    """``find(data, needle, start) -> offset or -1`` of the ``mboxscan`` kernel in use (native: ``memchr``
    for the needle's first byte, a newline, then ``memcmp``; about five times the regex engine's speed)."""
    return _native.kernel("mboxscan").find  # type: ignore[no-any-return]


class _Buffer:
    """A growing window on a binary file; ``base`` is the file offset of ``data[0]``."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.data = bytearray()
        self.base = 0
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk; False at end of file."""
        if self.eof:
            return False
        chunk = self.f.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def need(self, n: int) -> bool:
        """Make at least ``n`` bytes available; False when the file is shorter."""
        while len(self.data) < n:
            if not self.fill():
                return False
        return True

    def find(self, needle: bytes, start: int) -> int:
        """Offset of ``needle`` at or after ``start``, reading further as needed; -1 at end of file."""
        find = _searcher()
        while True:
            at = find(self.data, needle, start)
            if at >= 0:
                return at
            start = max(start, len(self.data) - len(needle) + 1)
            if not self.fill():
                return -1

    def consume(self, n: int) -> None:
        del self.data[:n]
        self.base += n


def _content_length(header: bytes) -> int | None:
    try:
        for f in iter_fields(header, len(header)):
            if f.name == "content-length":
                value = field_value(header, f)
                return int(value) if value.isdigit() else None
    except StructuralError:
        return None
    return None


def _cl2_end(buf: _Buffer, start: int) -> tuple[int, int, bool] | None:
    """For mboxcl2: ``(message_end, next_start, truncated)`` from Content-Length, or None to fall back."""
    hdr_end = buf.find(b"\n\n", start)
    crlf_end = buf.find(b"\n\r\n", start)
    if crlf_end >= 0 and (hdr_end < 0 or crlf_end < hdr_end):
        hdr_end, body_start = crlf_end, crlf_end + 3
    elif hdr_end >= 0:
        body_start = hdr_end + 2
    else:
        return None
    length = _content_length(bytes(buf.data[start : hdr_end + 1]))
    if length is None:
        return None
    end = body_start + length
    if not buf.need(end):  # past the end: truncated, unless a later message shows the length is wrong
        if buf.data.find(b"\nFrom ", body_start) >= 0:
            return None
        return len(buf.data), len(buf.data), True
    buf.need(end + 7)
    tail = bytes(buf.data[end : end + 7])
    for eol in (b"\r\n", b"\n"):
        if tail.startswith(eol) and (tail[len(eol) :].startswith(b"From ") or len(tail) == len(eol)):
            return end, end + len(eol), False
    if not tail:
        return end, end, False
    return None


class MboxRef(NamedTuple):
    """Where one message lies in an mbox file, so a worker can read it itself (:meth:`load`).

    ``offset`` is that of the separator line ``sep``; the message's stored bytes (still quoted) are the
    ``length`` bytes after it. A scheduler sends these few bytes to a worker instead of the message.
    """

    path: str
    variant: str
    index: int
    offset: int
    sep: bytes
    length: int
    truncated: bool

    def load(self, fd: int | None = None) -> MailItem:
        """The message, read from the file (one ``pread``; ``fd``: the file open already) and unquoted as
        ``read_mbox`` does (mboxrd: in the buffer it was read into)."""
        return _load(self, _fd(self.path) if fd is None else fd, _native.kernel("mailpass").pread_unquoted)


def _load(ref: MboxRef, fd: int, pread_unquoted: Callable[[int, int, int], bytes | None]) -> MailItem:
    """:meth:`MboxRef.load` with the file open and the kernel's ``pread_unquoted`` given."""
    return _read(*ref, fd, pread_unquoted)


def _read(
    path: str, variant: str, index: int, offset: int, sep: bytes, length: int, truncated: bool, fd: int,
    pread_unquoted: Callable[[int, int, int], bytes | None],
) -> MailItem:  # fmt: skip
    """The message of an :class:`MboxRef` with these fields, read from ``fd`` (``path`` open)."""
    raw: bytes | None
    if variant == "mboxrd":
        raw = pread_unquoted(fd, offset + len(sep), length)
    else:
        raw = os.pread(fd, length, offset + len(sep)) if length else b""
        raw = raw if len(raw) == length else None
    if raw is None:
        raise StructuralError("mbox file changed while it was read", offset, path)
    return MailItem.stored(index, raw, sep, offset, path, truncated)


class MboxRefs(Sequence[MboxRef]):
    """The :class:`MboxRef` of consecutive messages of one mbox file, packed in a few columns: what a
    scheduler sends a worker for a batch (:meth:`MboxScan.cut`), one small object to pickle instead of a
    tuple a message. Indexing and iteration give refs equal to those :func:`scan_mbox` yields."""

    __slots__ = ("first", "numbers", "path", "seps", "truncated", "variant")

    def __init__(
        self,
        path: str,
        variant: str,
        first: int,
        numbers: array,
        seps: bytes,
        truncated: tuple[int, ...] = (),
    ) -> None:
        self.path, self.variant, self.first = path, variant, first
        self.numbers = numbers  # per message: offset, separator length, length
        self.seps = seps  # the separator lines, joined
        self.truncated = truncated  # positions (in this batch) of the messages flagged truncated

    def __reduce__(self) -> tuple[type[MboxRefs], tuple[Any, ...]]:
        return MboxRefs, (self.path, self.variant, self.first, self.numbers, self.seps, self.truncated)

    def __len__(self) -> int:
        return len(self.numbers) // 3

    @overload
    def __getitem__(self, i: int) -> MboxRef: ...
    @overload
    def __getitem__(self, i: slice) -> list[MboxRef]: ...
    def __getitem__(self, i: int | slice) -> MboxRef | list[MboxRef]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError past the end (iteration stops there)
        return MboxRef(self.path, self.variant, self.first + i, *self._fields(i))

    def _fields(self, i: int) -> tuple[int, bytes, int, bool]:
        """``offset, sep, length, truncated`` of message ``i`` of the batch."""
        numbers = self.numbers
        offset, seplen, length = numbers[3 * i : 3 * i + 3]
        start = sum(numbers[1 : 3 * i : 3])
        return offset, self.seps[start : start + seplen], length, i in self.truncated

    def _each(self) -> Iterator[tuple[int, int, bytes, int, bool]]:
        """``index, offset, sep, length, truncated`` of each message in order (the separators walked
        once, not summed again for each message as :meth:`_fields` must)."""
        numbers, seps, truncated, at = self.numbers, self.seps, self.truncated, 0
        for i in range(len(numbers) // 3):
            offset, seplen, length = numbers[3 * i : 3 * i + 3]
            yield self.first + i, offset, seps[at : at + seplen], length, i in truncated
            at += seplen

    def __iter__(self) -> Iterator[MboxRef]:
        path, variant = self.path, self.variant
        return (MboxRef(path, variant, *fields) for fields in self._each())

    def load(self) -> list[MailItem]:
        """The messages, read as :func:`load_refs` reads their refs (the file opened once)."""
        path, variant = self.path, self.variant
        fd, pread_unquoted = _fd(path), _native.kernel("mailpass").pread_unquoted
        return [_read(path, variant, *fields, fd, pread_unquoted) for fields in self._each()]


def load_refs(refs: Sequence[MailItem | MboxRef]) -> list[MailItem]:
    """The messages of a batch: :class:`MboxRef` ones read (the file checked once per batch, not per
    message), :class:`MailItem` ones as they are; an :class:`MboxRefs` batch read in one go."""
    if type(refs) is MboxRefs:
        return refs.load()
    fds: dict[str, int] = {}
    pread_unquoted = _native.kernel("mailpass").pread_unquoted
    out = []
    for r in refs:
        if isinstance(r, MboxRef):
            fd = fds.get(r.path)
            if fd is None:
                fd = fds[r.path] = _fd(r.path)
            r = _load(r, fd, pread_unquoted)
        out.append(r)
    return out


_fds: dict[str, tuple[int, int, int]] = {}


def _fd(path: str) -> int:
    """A read-only descriptor per source file, kept for the life of the (worker) process and opened
    afresh when the path names another file than before (a test or a user replaced it)."""
    st = os.stat(path)
    cached = _fds.get(path)
    if cached is not None and cached[1:] == (st.st_dev, st.st_ino):
        return cached[0]
    if cached is not None:
        os.close(cached[0])
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    _fds[path] = (fd, st.st_dev, st.st_ino)
    return fd


def _message_end(data: bytearray, start: int, nxt: int) -> tuple[int, bool]:
    """End of the message before ``nxt`` without the separator's line ending; whether one was there."""
    if nxt - start >= 2 and data[nxt - 2 : nxt] == b"\r\n":
        return nxt - 2, True
    if nxt - start >= 1 and data[nxt - 1] == 0x0A:
        return nxt - 1, True
    return nxt, False


def _frames(path: str | Path, variant: str) -> Iterator[tuple[int, bytes, int, bytearray, int, int, bool]]:
    """``(index, separator, offset, data, start, end, truncated)`` per message: its stored bytes are
    ``data[start:end]`` (valid until the next step) and its separator line starts at file ``offset``."""
    if variant not in VARIANTS:
        raise InvalidArgument(f"unknown mbox variant {variant!r}; expected one of {VARIANTS}")
    source = str(path)
    with open(path, "rb") as f:
        buf = _Buffer(f)
        if not buf.need(5):
            if buf.data.strip():
                raise StructuralError("not an mbox file (no 'From ' line at the start)", 0, source)
            return
        if not buf.data.startswith(b"From "):
            raise StructuralError("not an mbox file (no 'From ' line at the start)", 0, source)
        index = 0
        while buf.data:
            nl = buf.find(b"\n", 0)
            if nl < 0:  # a separator line cut short at end of file
                yield index, bytes(buf.data), buf.base, buf.data, 0, 0, True
                return
            sep = bytes(buf.data[: nl + 1])
            start = nl + 1
            cl2 = _cl2_end(buf, start) if variant == "mboxcl2" else None
            if cl2 is not None:
                end, nxt, truncated = cl2
            else:
                nxt_from = buf.find(b"\nFrom ", nl)
                nxt = len(buf.data) if nxt_from < 0 else nxt_from + 1
                end, had_eol = _message_end(buf.data, start, nxt)
                truncated = nxt_from < 0 and not had_eol and end > start
            yield index, sep, buf.base, buf.data, start, end, truncated
            buf.consume(nxt)
            index += 1
            if not buf.data:
                buf.fill()


_RELEASE_EVERY = 32 << 20  # bytes of scanned map released at a time (they stay in the page cache)


def _mapped_frames(path: str | Path) -> Iterator[tuple[int, bytes, int, bytes | mmap.mmap, int, int, bool]]:
    """:func:`_frames` for ``From ``-separated variants on a memory map: no buffer copies; offsets are
    file offsets (``start``/``end`` index the map). Same separator rule, same results."""
    source = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 5:
            if f.read().strip():
                raise StructuralError("not an mbox file (no 'From ' line at the start)", 0, source)
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:5] != b"From ":
                raise StructuralError("not an mbox file (no 'From ' line at the start)", 0, source)
            find = _searcher()
            pos, index, released = 0, 0, 0
            while pos < size:
                if pos - released >= _RELEASE_EVERY:  # keep RSS flat: scanned pages leave the map
                    upto = pos - pos % mmap.PAGESIZE
                    data.madvise(mmap.MADV_DONTNEED, released, upto - released)
                    released = upto
                nl = find(data, b"\n", pos)
                if nl < 0:  # a separator line cut short at end of file
                    yield index, data[pos:], pos, data, 0, 0, True
                    return
                start = nl + 1
                at = find(data, b"\nFrom ", nl)
                nxt = size if at < 0 else at + 1
                end, had_eol = _message_end(data, start, nxt)  # type: ignore[arg-type]
                yield index, data[pos:start], pos, data, start, end, at < 0 and not had_eol and end > start
                pos = nxt
                index += 1


def _frames_of(path: str | Path, variant: str) -> Iterator[tuple[int, bytes, int, Any, int, int, bool]]:
    """:func:`_frames` (mboxcl2) or :func:`_mapped_frames`: ``data[start:end]`` are the stored bytes."""
    if variant not in VARIANTS:
        raise InvalidArgument(f"unknown mbox variant {variant!r}; expected one of {VARIANTS}")
    yield from _frames(path, variant) if variant == "mboxcl2" else _mapped_frames(path)


def read_mbox(path: str | Path, variant: str = "mboxrd") -> Iterator[MailItem]:
    """Yield the messages of an mbox file one by one, in constant memory beyond the largest message.

    ``mboxrd`` removes one ``>`` from ``>From `` lines (any depth); ``mboxo`` leaves them; ``mboxcl2``
    trusts a Content-Length that lands on a message boundary and quotes nothing (falling back to
    ``From `` scanning where it does not).
    """
    source = str(path)
    for index, sep, offset, data, start, end, truncated in _frames_of(path, variant):
        raw = bytes(data[start:end])
        if variant == "mboxrd":
            raw = unquote(raw)
        yield MailItem(index, raw, sep, offset, source, truncated=truncated)


class MboxScan(Iterator[MboxRef]):
    """Where each message of an mbox file lies (:class:`MboxRef`), from message ``skip`` on; a scheduler
    may also take them in batches (:meth:`cut`), the refs of each packed as one :class:`MboxRefs`.
    Both read the same scan: refs taken one way are not taken again the other."""

    def __init__(self, path: str | Path, variant: str = "mboxrd", skip: int = 0) -> None:
        self.path, self.variant = str(path), variant
        self._frames = _frames_of(path, variant)
        self._skip = skip

    def _rest(self) -> Iterator[tuple[int, bytes, int, Any, int, int, bool]]:
        """The frames not taken yet (the first ``skip`` dropped on first use)."""
        if self._skip:
            skip, self._skip = self._skip, 0
            for _ in zip(range(skip), self._frames, strict=False):
                pass
        return self._frames

    def __iter__(self) -> MboxScan:
        return self

    def __next__(self) -> MboxRef:
        index, sep, offset, _, start, end, truncated = next(self._rest() if self._skip else self._frames)
        return MboxRef(self.path, self.variant, index, offset, sep, end - start, truncated)

    def cut(self, batch_size: int, batch_bytes: int | None) -> Iterator[tuple[MboxRefs, int]]:
        """``(refs, bytes)`` batches of the refs not taken yet, cut where ``run_batches`` cuts a stream of
        refs: after ``batch_size`` messages, or after the one whose ``length`` reaches ``batch_bytes``."""
        limit = batch_bytes if batch_bytes is not None else -1
        path, variant, frames = self.path, self.variant, self._rest()
        while True:
            numbers, seps, truncated = array("q"), [], []
            first, nbytes, count = -1, 0, 0
            for index, sep, offset, _, start, end, trunc in frames:
                if first < 0:
                    first = index
                numbers.extend((offset, len(sep), end - start))
                seps.append(sep)
                if trunc:
                    truncated.append(count)
                count += 1
                nbytes += end - start
                if count >= batch_size or nbytes >= limit >= 0:
                    break
            if not count:
                return
            yield MboxRefs(path, variant, first, numbers, b"".join(seps), tuple(truncated)), nbytes


def scan_mbox(path: str | Path, variant: str = "mboxrd", skip: int = 0) -> MboxScan:
    """Like :func:`read_mbox`, but yield where each message lies (:class:`MboxRef`), not its bytes; from
    message ``skip`` on (those before are scanned, not yielded)."""
    return MboxScan(path, variant, skip)


def separator_eol(raw: bytes) -> bytes:
    """The line ending written after ``raw`` (see the module docstring for why it is exact)."""
    return b"\r\n" if raw.endswith(b"\r") or eol_of(raw) == b"\r\n" else b"\n"


def _separator(separator_line: bytes | None, eol: bytes) -> bytes:
    """The ``From `` line an entry starts with (a neutral one when there is none), with its line ending."""
    sep = separator_line or DEFAULT_SEPARATOR
    if not sep.startswith(b"From ") or b"\n" in sep[:-1]:
        raise InvalidArgument("an mbox separator must be one line starting with 'From '")
    return sep if sep.endswith(b"\n") else sep + eol


def entry(raw: bytes, separator_line: bytes | None = None, unquoted_from: int = -1) -> bytes:
    """One message as mboxrd stores it: its ``From `` line (a neutral one when it has none), the quoted
    bytes and the separator's line ending; what :class:`MboxWriter` appends (a worker can build it).

    ``unquoted_from`` (a line start) says that no line from there on needs quoting, so only the bytes
    before it are looked at (a message this program generated: a PGP/MIME wrapper after its header)."""
    eol = separator_eol(raw)
    sep = _separator(separator_line, eol)
    raw = raw if type(raw) is bytes else bytes(raw)
    generated = unquoted_from > 0 and raw[unquoted_from - 1 : unquoted_from] == b"\n"
    # one copy: the separator, the quoted lines, the rest as it is, the line ending
    return _native.kernel("mailpass").quote_join(  # type: ignore[no-any-return]
        bytes(sep), raw, unquoted_from if generated else len(raw), eol
    )


def entry_pieces(
    outer: bytes, generated: Sequence[bytes | memoryview], separator_line: bytes | None = None
) -> list[bytes | memoryview]:
    """``entry(outer + b"".join(generated), separator_line)`` in pieces, not joined (the big ones not
    copied), for a message whose lines after ``outer`` need no quoting (none starts with ``>`` or
    ``From ``: the MIME structure and armor of a PGP/MIME wrapper we generated). ``outer`` is empty or
    ends with a line ending; ``generated`` has at least two pieces, the first a whole line or more, the
    last one not empty."""
    first, last = generated[0], bytes(generated[-1])
    crlf = last.endswith(b"\r") or eol_of(outer or bytes(first)) == b"\r\n"  # as separator_eol
    eol = b"\r\n" if crlf else b"\n"
    sep = _separator(separator_line, eol)
    head = _native.kernel("mailpass").quote_join(bytes(sep), outer, len(outer), bytes(first))
    return [head, *generated[1:-1], last + eol]


class MboxWriter:
    """Append messages to a binary file as mboxrd: ``From `` and ``>From `` lines get one more ``>``."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.count = 0

    def write(self, raw: bytes, separator_line: bytes | None = None) -> None:
        """Write one message after its ``From `` line (a neutral one when it has none)."""
        self.f.write(entry(raw, separator_line))
        self.count += 1


def write_mbox(path: str | Path, items: Iterator[MailItem] | list[MailItem]) -> int:
    """Write items to a new mboxrd file (no atomicity; see ``source.open_sink`` for that)."""
    with open(path, "wb") as f:
        w = MboxWriter(f)
        for item in items:
            w.write(item.raw, item.separator_line)
        return w.count


__all__ = [
    "DEFAULT_SEPARATOR",
    "VARIANTS",
    "MboxRef",
    "MboxRefs",
    "MboxScan",
    "MboxWriter",
    "entry",
    "entry_pieces",
    "load_refs",
    "quote",
    "read_mbox",
    "scan_mbox",
    "unquote",
    "write_mbox",
]
