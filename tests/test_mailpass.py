"""The mail passes kernel (``engine._mailpass_c`` / ``engine._mailpass_py``): header field scan and mboxrd
quoting give the same answers on both, agree with independent references (the header generator
:func:`engine.mail.headers.iter_fields`, line-by-line quoting), and the archive output stays byte-exact."""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import re
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native
from engine.errors import StructuralError
from engine.mail import mbox
from engine.mail.headers import Field, iter_fields, parse_head, split_header
from engine.mail.item import MailItem
from engine.mail.pgpmime import wrap
from engine.mail.sinks import Processed, to_shard
from engine.scheduler.sink import segment_hash
from tests import mailgen

KERNELS = _native.implementations("mailpass")
# Pieces that make header and quoting edge cases likely: continuations, bad lines, CR, 8-bit, From lines.
PIECES = [b"From ", b">", b"\n", b"\r\n", b" ", b"\t", b":", b"A", b"b", b"X-Y", b"\xe9", b"\r", b"From", b">>From "]  # fmt: skip
_MESSAGE = st.lists(st.sampled_from(PIECES), max_size=16).map(b"".join)


def _call(fn: Callable[..., object], *args: object) -> object:
    try:
        return fn(*args)
    except ValueError as e:
        return ("ValueError", e.args)


def _reference_fields(raw: bytes, header_end: int) -> object:
    """The fields by the generator of :mod:`engine.mail.headers` (a separate regex implementation)."""
    try:
        return list(iter_fields(raw, min(header_end, len(raw))))
    except StructuralError as e:
        return ("ValueError", (e.reason, e.offset))


def _reference_quote(raw: bytes, unquote: bool = False) -> bytes:
    """mboxrd quoting line by line, as its definition reads."""
    out = []
    for line in raw.splitlines(keepends=True) if b"\r" not in raw else re.split(rb"(?<=\n)", raw):
        stripped = line.lstrip(b">")
        if stripped.startswith(b"From "):
            if not unquote:
                line = b">" + line
            elif stripped is not line and len(stripped) < len(line):
                line = line[1:]
        out.append(line)
    return b"".join(out)


def _cases() -> list[tuple[bytes, int]]:
    rnd = random.Random(11)
    cases = []
    for raw in mailgen.generate(seed=5, count=60) + mailgen.generate(seed=6, count=30, crlf_every=1):
        cases.append((raw, split_header(raw)[0]))
    for _ in range(3000):
        raw = b"".join(rnd.choice(PIECES) for _ in range(rnd.randrange(0, 14)))
        cases.append((raw, rnd.choice([len(raw), split_header(raw)[0], rnd.randrange(0, len(raw) + 3)])))
    return cases


CASES = _cases()


def test_native_twin_is_built_like_the_others() -> None:
    if "native" not in _native.implementations("armor"):
        pytest.skip("native kernels not built")
    assert set(KERNELS) == {"native", "pure"}
    assert KERNELS["native"].features() == {"native": True}
    assert KERNELS["pure"].features() == {"native": False}


def test_fields_agree_with_the_reference_and_each_other() -> None:
    for raw, header_end in CASES:
        want = _reference_fields(raw, header_end)
        for name, mod in KERNELS.items():
            got = _call(mod.fields, raw, header_end, Field)
            assert got == want, (name, raw, header_end)
            assert not isinstance(got, list) or all(type(f) is Field for f in got)


def test_split_finds_the_first_empty_line() -> None:
    for raw, _ in CASES:
        m = re.search(rb"\n(\r?\n)", raw)
        want = (len(raw), len(raw)) if m is None else (m.start() + 1, m.end())
        if raw.startswith((b"\n", b"\r\n")):
            want = (0, 1 if raw.startswith(b"\n") else 2)
        for name, mod in KERNELS.items():
            assert mod.split(raw) == want, (name, raw)


def test_fields_spans_and_names() -> None:
    raw = b"Subject: a\r\n b\r\nX-Long-NAME \t: v\r\nTo:\r\n\r\nbody"
    he = split_header(raw)[0]
    for mod in KERNELS.values():
        assert mod.fields(raw, he, Field) == [
            Field("subject", 0, 16, 7),
            Field("x-long-name", 16, 34, 29),
            Field("to", 34, 39, 36),
        ]
        assert mod.fields(raw, 0, Field) == []
        with pytest.raises(ValueError) as e:
            mod.fields(b"Subject: a\nno colon here\n", 25, Field)
        assert e.value.args == ("header line is not a field", 11)
        with pytest.raises(ValueError) as e:
            mod.fields(b" Subject: a\n", 12, Field)
        assert e.value.args == ("header continuation line before any field", 0)


def test_quoting_agrees_with_the_line_reference_and_each_other() -> None:
    for raw, upto in CASES:
        quoted = _reference_quote(raw)
        for name, mod in KERNELS.items():
            assert mod.quote_join(b"", raw, len(raw), b"") == quoted, (name, raw)
            assert mod.unquote(raw) == _reference_quote(raw, unquote=True), (name, raw)
            assert mod.unquote(quoted) == raw, (name, raw)
            # a prefix only: the lines before ``upto`` are quoted, the rest copied as it is
            cut = max(0, min(upto, len(raw)))
            want = b"H" + _reference_quote(raw[:cut]) + raw[cut:] + b"T"
            assert mod.quote_join(b"H", raw, upto, b"T") == want, (name, raw, upto)


def test_pread_unquoted_reads_and_unquotes(tmp_path: Path) -> None:
    rnd = random.Random(2)
    data = b"".join(rnd.choice(PIECES) for _ in range(5000))
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for _ in range(3000):
            offset, length = rnd.randrange(0, len(data) + 2), rnd.randrange(0, 120)
            want = _reference_quote(data[offset : offset + length], unquote=True)
            for name, mod in KERNELS.items():
                got = mod.pread_unquoted(fd, offset, length)
                assert got == (want if offset + length <= len(data) else None), (name, offset, length)
        for mod in KERNELS.values():
            whole = mod.pread_unquoted(fd, 0, len(data))
            assert whole == _reference_quote(data, unquote=True) and hash(whole) == hash(
                bytes(bytearray(whole))
            )
            with pytest.raises(OSError):
                mod.pread_unquoted(-1, 0, 10)
    finally:
        os.close(fd)


def test_mbox_refs_load_as_the_reader_reads(impl: str, tmp_path: Path) -> None:
    messages = [*mailgen.generate(seed=8, count=40), b"Subject: q\n\n>From a\n>>From b\nFrom c\n"]
    path = tmp_path / "in.mbox"
    mbox.write_mbox(path, [MailItem(i, m) for i, m in enumerate(messages)])
    refs = {v: list(mbox.scan_mbox(path, v)) for v in ("mboxrd", "mboxo")}
    assert [i.raw for i in mbox.load_refs(refs["mboxrd"])] == messages
    assert [i.raw for i in mbox.load_refs(refs["mboxo"])] == [i.raw for i in mbox.read_mbox(path, "mboxo")]
    for variant in refs:  # the whole items: separator, offset, source, flags
        assert mbox.load_refs(refs[variant]) == list(mbox.read_mbox(path, variant))
    path.write_bytes(path.read_bytes()[:-40])  # the file changed under the refs
    for variant in refs:
        with pytest.raises(StructuralError, match="changed while it was read"):
            mbox.load_refs(refs[variant])


def test_unquote_returns_the_same_object_when_nothing_changes() -> None:
    raw = b"Subject: x\n\nFrom here, no quoted line\n"
    for mod in KERNELS.values():
        assert mod.unquote(raw) is raw


@settings(max_examples=200, deadline=None)
@given(_MESSAGE, st.integers(-2, 20))
def test_twins_agree_on_any_bytes(raw: bytes, upto: int) -> None:
    results = {
        name: (
            mod.split(raw),
            _call(mod.fields, raw, mod.split(raw)[0], Field),
            _call(mod.fields, raw, upto, Field),
            mod.unquote(raw),
            mod.quote_join(b"From x\n", raw, upto, b"\n"),
        )
        for name, mod in KERNELS.items()
    }
    assert len({repr(r) for r in results.values()}) == 1


def test_parse_head_and_entry_on_either_kernel(impl: str) -> None:
    """The public functions built on the kernel: same results on both implementations."""
    raw = b"From: a\nSubject: s\n folded\n\nFrom the body\n>From quoted\n"
    head = parse_head(raw)
    assert [f.name for f in head.fields or []] == ["from", "subject"] and head[:2] == (27, 28)
    error = parse_head(b"Subject: s\nbad\n\nx").error
    assert error is not None and (error.reason, error.offset) == ("header line is not a field", 11)
    assert mbox.entry(raw, b"From x Thu Jan  1 00:00:00 1970\n") == (
        b"From x Thu Jan  1 00:00:00 1970\n" + raw[:28] + b">From the body\n>>From quoted\n\n"
    )
    assert mbox.entry(raw, None, 28) == mbox.DEFAULT_SEPARATOR + raw + b"\n"  # nothing quoted from 28 on
    assert mbox.quote(raw) == raw[:28] + b">From the body\n>>From quoted\n"
    assert mbox.unquote(mbox.quote(raw)) == raw


WRAPPED = (
    b"From: a@example.org\nTo: b@example.org\nSubject: [...]\nMIME-Version: 1.0\nContent-Type: multipart/encrypted; "
    b'protocol="application/pgp-encrypted";\n boundary="pgpbulk-0123456789abcdef0123456789abcdef"\n\nThis is an '
    b"OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n--pgpbulk-0123456789abcdef0123456789abcdef\nContent-Type: "
    b"application/pgp-encrypted\nContent-Description: PGP/MIME version identification\n\nVersion: 1\n\n"
    b'--pgpbulk-0123456789abcdef0123456789abcdef\nContent-Type: application/octet-stream; name="encrypted.asc"\n'
    b'Content-Description: OpenPGP encrypted message\nContent-Disposition: inline; filename="encrypted.asc"\n\n'
    b"-----BEGIN PGP MESSAGE-----\n\nx\n-----END PGP MESSAGE-----\n\n--pgpbulk-0123456789abcdef0123456789abcdef--\n"
)
PAYLOAD = (
    b"X-Pgpbulk-Restore: v=1; prefix=83; ct=param; at=108; len=37\nHP-Outer: From: a@example.org\nHP-Outer: To: "
    b"b@example.org\nHP-Outer: Subject: [...]\nFrom: a@example.org\nTo: b@example.org\nSubject: s\nX-Other: o\n"
    b' folded\nContent-Type: text/plain;\n charset=utf-8; hp="cipher"; protected-headers="v1"\n\nbody\nFrom x\n'
)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_wrap_output_is_pinned_byte_for_byte(impl: str, eol: bytes) -> None:
    """What the archive writes for a message (payload and MIME structure), as it was before the kernel."""
    raw = (
        b"From: a@example.org\nTo: b@example.org\nSubject: s\nX-Other: o\n folded\nContent-Type: text/plain;\n"
        b" charset=utf-8\n\nbody\nFrom x\n"
    ).replace(b"\n", eol)
    payloads: list[bytes] = []

    def encrypt(payload: bytes) -> bytes:
        payloads.append(payload)
        return b"junk-----BEGIN PGP MESSAGE-----\n\nx\n-----END PGP MESSAGE-----\n"

    out = wrap(raw, encrypt, sha256="0123456789abcdef" * 4)
    want_payload = PAYLOAD.replace(b"\n", eol).replace(b"at=108", b"at=%d" % (108 + 6 * (len(eol) - 1)))
    want_payload = want_payload.replace(b"prefix=83", b"prefix=%d" % (83 + 3 * (len(eol) - 1)))
    assert out == WRAPPED.replace(b"\n", eol) and payloads == [want_payload]


def test_processed_built_without_init_equals_the_dataclass() -> None:
    """``Processed.mbox`` and ``to_shard`` skip the frozen dataclass's ``__init__``: the objects (fields,
    their order, equality, pickles) must be those the constructor makes."""
    item = MailItem(3, b"", b"From x Thu Jan  1 00:00:00 1970\n", 5, "src")
    p = Processed.mbox(item, b"From: a\n\nFrom b\n", "plain", "copied", "00", 4, "why")
    by_init = Processed(*[getattr(p, f.name) for f in dataclass_fields(Processed)])
    assert p == by_init and list(vars(p)) == list(vars(by_init))
    assert pickle.dumps(p) == pickle.dumps(by_init) and hash(p) == hash(by_init)
    assert p.chunk == b"From x Thu Jan  1 00:00:00 1970\nFrom: a\n\n>From b\n\n"
    assert p.entry == len(p.chunk).to_bytes(8, "big") + segment_hash.digest(p.chunk)


def test_to_shard_results_equal_the_dataclass(tmp_path: Path) -> None:
    item = MailItem(0, b"", b"From x Thu Jan  1 00:00:00 1970\n", 0, "src")
    batch = [
        Processed.mbox(item, b"Subject: %d\n\nx\n" % i, "plain", "copied", "00", 9, None) for i in range(3)
    ]
    sharded = to_shard(str(tmp_path / "o"), batch)
    at = 0
    for p, s in zip(batch, sharded, strict=True):
        values = {f.name: getattr(p, f.name) for f in dataclass_fields(Processed)}
        want = Processed(**{**values, "chunk": b"", "shard": s.shard, "at": at})
        assert s == want and list(vars(s)) == list(vars(want)) and pickle.dumps(s) == pickle.dumps(want)
        at += len(p.chunk)
    assert (tmp_path / sharded[0].shard).read_bytes() == b"".join(p.chunk for p in batch)


SEALED_CASES = [
    b"From: a@example.org\nTo: b@example.org\nSubject: s\n\nbody\nFrom x\n>From y\n",
    b"From : quoted outside\nSubject: s\n\nFrom body\n",  # an outer field that mbox must quote
    b"From: a\r\nSubject: s\r\n\r\nFrom crlf body\r\n",
    b"Received: x\r\nFrom: mixed endings\nSubject: s\n\nbody\n",  # outer's first line ends otherwise
    b"X-Only: no outer field at all\n\nFrom body\n",
    b"X-Only: crlf, no outer field\r\n\r\nbody\r\n",
    b"Subject: last field without its line ending",
    b"Subject: folded\n From not a line start\n\nbody",
]


@pytest.mark.parametrize(
    "sep", [b"From x Thu Jan  1 00:00:00 1970\n", b"From x Thu Jan  1 00:00:00 1970", None]
)
def test_sealed_entry_equals_assemble_then_mbox(impl: str, tmp_path: Path, sep: bytes | None) -> None:
    """The batch path builds a wrapped message's mbox entry from its pieces (only the outer fields
    quoted, the armored block not copied): every field of the result, the record and the shard's bytes
    must be those of assembling the message, then :meth:`Processed.mbox` of it."""
    from engine.mail import samples
    from engine.mail.pgpmime import NotWrappable, assemble, assemble_parts, prepare

    def wrappable(raw: bytes) -> bool:
        try:
            return bool(prepare(raw))
        except NotWrappable:
            return False

    raws = SEALED_CASES + [raw for raw in samples.generate(seed=3, count=12) if wrappable(raw)]
    assert len(raws) > len(SEALED_CASES) + 6
    armors = [  # as the payload returns it; a CRLF one is converted to the message's line endings
        b"junk-----BEGIN PGP MESSAGE-----\n\nwcBMA0\n=abcd\n-----END PGP MESSAGE-----\n",
        b"-----BEGIN PGP MESSAGE-----\r\n\r\nwcBMA0\r\n-----END PGP MESSAGE-----\r\n",
    ]
    pieces, reference = [], []
    for i, raw in enumerate(raws):
        item = MailItem(i, b"", sep, 10 * i, 'dir/"x".mbox')
        wrapping, armored = prepare(raw), armors[i % 2]
        digest = hashlib.sha256(raw).hexdigest()
        want = Processed.mbox(
            item, assemble(wrapping, armored, digest), "signed", "encrypted", digest, len(raw), None
        )
        parts = assemble_parts(wrapping, armored, digest)
        got = Processed.sealed(item, parts, "signed", digest, len(raw))
        assert got == want and list(vars(got)) == list(vars(want)) and pickle.dumps(got) == pickle.dumps(want)
        split = Processed.sealed(item, parts, "signed", digest, len(raw), joined=False)
        assert type(split.chunk) is tuple and b"".join(split.chunk) == want.chunk
        assert {**vars(split), "chunk": want.chunk} == vars(want)
        pieces.append(split)
        reference.append(want)
    assert any(b"\n>From : quoted" in p.chunk for p in reference)  # the quoting case is one
    from_pieces = to_shard(str(tmp_path / "a"), pieces)
    from_bytes = to_shard(str(tmp_path / "b"), reference)
    data = b"".join(p.chunk for p in reference)
    assert Path(from_pieces[0].shard).read_bytes() == Path(from_bytes[0].shard).read_bytes() == data
    for a, b in zip(from_pieces, from_bytes, strict=True):
        assert {**vars(a), "shard": ""} == {**vars(b), "shard": ""}


def test_item_bare_equals_with_raw_empty() -> None:
    item = MailItem(3, b"abc", b"From x\n", 5, "src", "name", "cur", truncated=True)
    bare, want = item.bare(), item.with_raw(b"")
    assert bare == want and list(vars(bare)) == list(vars(want)) and pickle.dumps(bare) == pickle.dumps(want)
    assert item.raw == b"abc" and item.truncated  # the original is untouched


def test_item_stored_equals_the_dataclass() -> None:
    for truncated in (False, True):
        got = MailItem.stored(4, b"raw", b"From x\n", 7, "src", truncated)
        want = MailItem(4, b"raw", b"From x\n", 7, "src", truncated=truncated)
        assert got == want and list(vars(got)) == list(vars(want)) and pickle.dumps(got) == pickle.dumps(want)
