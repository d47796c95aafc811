"""ASCII armor: base64 kernels (RFC 4648 vectors, native == pure on every SIMD path) and the public API."""

from __future__ import annotations

import io
import random
import tracemalloc
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _native
from engine.armor import ArmorReader, ArmorWarning, ArmorWriter, armor, crc_wanted, dearmor, iter_dearmor
from engine.errors import ArmorError, InvalidArgument

IMPLS = _native.implementations("armor")
PURE = IMPLS["pure"]
NATIVE = IMPLS.get("native")
needs_native = pytest.mark.skipif(NATIVE is None, reason="native kernel not built")
FIXTURE_OK = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
KINDS = ["MESSAGE", "PUBLIC KEY BLOCK", "PRIVATE KEY BLOCK", "SIGNATURE", "ARMORED FILE", "MESSAGE, PART 2/3"]
# RFC 4648 §10 test vectors.
RFC4648 = [(b"", b""), (b"f", b"Zg=="), (b"fo", b"Zm8="), (b"foo", b"Zm9v"), (b"foob", b"Zm9vYg=="),
           (b"fooba", b"Zm9vYmE="), (b"foobar", b"Zm9vYmFy")]  # fmt: skip


def kernel() -> object:
    return _native.kernel("armor")


@pytest.fixture(params=["avx2", "ssse3", "scalar"])
def simd(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each native base64 path the CPU has (clipped to it)."""
    if NATIVE is None:
        pytest.skip("native kernel not built")
    NATIVE._select(base64=request.param)
    try:
        yield request.param
    finally:
        NATIVE._select(base64="avx2")


# ------------------------------------------------------------------------------------------- kernels


@pytest.mark.parametrize(("raw", "b64"), RFC4648)
def test_rfc4648_vectors(impl: str, raw: bytes, b64: bytes) -> None:
    assert kernel().encode_body(raw) == (b64 + b"\n" if b64 else b"")
    assert kernel().decode_body(b64) == raw
    assert kernel().decode_body(b" \t" + b64[:2] + b"\r\n" + b64[2:] + b"\n") == raw


def test_encode_wraps_lines(impl: str) -> None:
    body = kernel().encode_body(bytes(100))  # 100 zero bytes: 136 chars of 'A' with "AA==" at the end
    assert body == b"A" * 64 + b"\n" + b"A" * 64 + b"\n" + b"AAAAAA==\n"
    assert kernel().encode_body(bytes(6), 4) == b"AAAA\nAAAA\n"
    for width in (0, 6, -4):
        with pytest.raises(ValueError):
            kernel().encode_body(b"x", width)


@pytest.mark.parametrize(
    ("text", "reason", "offset"),
    [
        (b"Zm9v!", "invalid base64 character 0x21", 4),
        (b"Zm9v\x00", "invalid base64 character 0x00", 4),
        (b"Zm9\xffv", "invalid base64 character 0xff", 3),
        (b"Z===", "misplaced base64 padding '='", 1),
        (b"Zm==Zm9v", "base64 data after padding", 4),
        (b"Zm8==", "misplaced base64 padding '='", 4),
        (b"Zm=v", "base64 data after padding", 3),
        (b"Zm9", "incomplete final base64 group", 3),
        (b"Zm=\n", "incomplete final base64 group", 4),
    ],
)
def test_decode_errors(impl: str, text: bytes, reason: str, offset: int) -> None:
    with pytest.raises(ValueError) as info:
        kernel().decode_body(text)
    assert info.value.args == (reason, offset)


def test_decode_chunk_stops_before_partial_group(impl: str) -> None:
    assert kernel().decode_chunk(b"Zm9v\nZm", False, -1) == (b"foo", 5, -1)
    assert kernel().decode_chunk(b"Zm9vZm=", False, -1) == (b"foo", 4, -1)
    assert kernel().decode_chunk(b"Zm9v\n", False, 0xB704CE)[2] == kernel().crc24(b"foo")


@needs_native
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200), st.binary(min_size=900, max_size=1200)),
       width=st.sampled_from([4, 8, 60, 64, 76, 100]))  # fmt: skip
def test_native_equals_pure_encode(simd: str, data: bytes, width: int) -> None:
    assert NATIVE.encode_body(data, width) == PURE.encode_body(data, width)
    head, tail = b"-----BEGIN PGP MESSAGE-----\n\n", b"-----END PGP MESSAGE-----\n"
    assert NATIVE.armor_block(data, head, tail, width, 1) == PURE.armor_block(data, head, tail, width, 1)
    out_n, out_p = bytearray(len(data) * 2 + 8), bytearray(len(data) * 2 + 8)
    assert NATIVE.encode_into(data, out_n, width, 5) == PURE.encode_into(data, out_p, width, 5)
    assert out_n == out_p
    assert NATIVE.decode_chunk(NATIVE.encode_body(data, width), True, 7) == (data, len(
        NATIVE.encode_body(data, width)), PURE.crc24(data, 7))  # fmt: skip


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from([b"A", b"z", b"0", b"+", b"/", b"=", b" ", b"\n", b"\r", b"\t", b"!",
                                      b"-", b"AAAA" * 8, b"QUJD" * 9]), max_size=40).map(b"".join),
       final=st.booleans())  # fmt: skip
def test_native_equals_pure_decode(simd: str, text: bytes, final: bool) -> None:
    def run(mod: object) -> object:
        try:
            return mod.decode_chunk(text, final, 0xB704CE)
        except ValueError as exc:
            return exc.args

    assert run(NATIVE) == run(PURE)


@needs_native
def test_every_byte_at_every_block_position(simd: str) -> None:
    """Each byte value at each position of a 64-character block: native verdict == pure verdict."""
    base = bytearray(b"QUJD" * 16)
    for pos in range(0, 64, 3):
        for value in range(256):
            text = bytes(base[:pos]) + bytes([value]) + bytes(base[pos + 1 :])
            results = []
            for mod in (NATIVE, PURE):
                try:
                    results.append(mod.decode_body(text))
                except ValueError as exc:
                    results.append(exc.args)
            assert results[0] == results[1], (pos, value)


@needs_native
def test_large_native_equals_pure(simd: str) -> None:
    rng = random.Random(7)
    data = rng.randbytes(300_000)  # above the GIL-release threshold
    body = NATIVE.encode_body(data)
    assert body == PURE.encode_body(data)
    assert NATIVE.decode_body(body.replace(b"\n", b"\r\n")) == data
    assert NATIVE.decode_chunk(body, True, 0xB704CE)[2] == NATIVE.crc24(data)


def test_features(impl: str) -> None:
    feats = kernel().features()
    assert feats["impl"] == impl
    assert {"avx2", "pclmul", "ssse3", "base64", "crc24"} <= feats.keys()


# ------------------------------------------------------------------------------------------ public API


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=700), kind=st.sampled_from(KINDS), crc=st.sampled_from([None, True, False]))
def test_roundtrip(impl: str, data: bytes, kind: str, crc: bool | None) -> None:
    text = armor(data, kind, {"Comment": ["one", "two"], "Version": "t"}, crc=crc)
    block = dearmor(text, strict=True)
    assert (block.kind, block.data) == (kind, data)
    assert block.header_items() == [("Comment", "one"), ("Comment", "two"), ("Version", "t")]
    assert block.headers == {"Comment": "one\ntwo", "Version": "t"}


def test_layout(impl: str) -> None:
    text = armor(bytes(range(200)), "SIGNATURE", {"Comment": "c"}, crc=True)
    lines = text.split(b"\n")
    assert lines[0] == b"-----BEGIN PGP SIGNATURE-----"
    assert lines[1:3] == [b"Comment: c", b""]
    assert [len(x) for x in lines[3:-3]] == [64, 64, 64, 64, 12]  # 200 bytes: 268 characters
    assert lines[-3].startswith(b"=") and len(lines[-3]) == 5
    assert lines[-2:] == [b"-----END PGP SIGNATURE-----", b""]


@pytest.mark.parametrize("kind", ["MESSAGE, PART 1", "PGP MESSAGE", "message", "", "MESSAGE\n"])
def test_kind_validated(impl: str, kind: str) -> None:
    if kind == "MESSAGE, PART 1":
        assert armor(b"x", kind).startswith(b"-----BEGIN PGP MESSAGE, PART 1-----\n")
    else:
        with pytest.raises(InvalidArgument):
            armor(b"x", kind)


@pytest.mark.parametrize("headers", [{"Comment": "a\nb"}, {"Comment": "a\r"}, {"Bad Key": "v"}, {"K:": "v"},
                                     {"Comment": ["ok", "b\n"]}])  # fmt: skip
def test_header_validated(impl: str, headers: dict) -> None:
    with pytest.raises(InvalidArgument):
        armor(b"x", headers=headers)


def _packet(tag: int, body: bytes) -> bytes:
    return bytes([0xC0 | tag, len(body)]) + body


@pytest.mark.parametrize(
    ("data", "wanted"),
    [
        (_packet(6, b"\x06" + bytes(40)), False),  # v6 public key
        (_packet(5, b"\x06" + bytes(40)), False),  # v6 secret key
        (_packet(6, b"\x04" + bytes(40)), True),  # v4 key
        (_packet(1, b"\x06" + bytes(20)) + _packet(18, b"\x02" + bytes(30)), False),  # v6 PKESK + SEIPD v2
        (_packet(1, b"\x03" + bytes(20)) + _packet(18, b"\x02" + bytes(30)), False),  # ends in SEIPD v2
        (_packet(1, b"\x03" + bytes(20)) + _packet(18, b"\x01" + bytes(30)), True),  # SEIPD v1
        (_packet(2, b"\x06" + bytes(9)) + _packet(2, b"\x06" + bytes(9)), False),  # only v6 signatures
        (_packet(2, b"\x06" + bytes(9)) + _packet(2, b"\x04" + bytes(9)), True),
        (bytes([0x99, 0, 3, 4, 0, 0]), True),  # legacy header, v4 key
        (b"", True),
        (b"not openpgp", True),
    ],
)
def test_crc_follows_rfc9580(impl: str, data: bytes, wanted: bool) -> None:
    assert crc_wanted(data) is wanted
    lines = armor(data).split(b"\n")
    assert lines[-3].startswith(b"=") is wanted
    assert armor(data, crc=True).split(b"\n")[-3].startswith(b"=")


def test_lenient_reading(impl: str) -> None:
    data = bytes(range(150))
    text = armor(data, crc=True)
    messy = b"mail text\r\n\r\n" + b"\r\n".join(b"  " + ln + b"   " for ln in text.split(b"\n")) + b"after"
    assert dearmor(messy).data == data
    no_crc = b"\n".join(ln for ln in text.split(b"\n") if not ln.startswith(b"="))
    assert dearmor(no_crc, strict=True).data == data
    no_blank = text.replace(b"-----\n\n", b"-----\n", 1)
    assert dearmor(no_blank).data == data
    assert dearmor(text.decode()).data == data
    with pytest.raises(ArmorError, match="bad header line") as info:
        dearmor(no_blank, strict=True)
    assert info.value.line == 2


def test_wrong_crc_warns_or_fails(impl: str) -> None:
    text = armor(b"hello world", crc=True)
    lines = text.split(b"\n")
    good = lines[-3]
    bad = b"=" + (b"AAAA" if good != b"=AAAA" else b"BBBB")
    broken = text.replace(good, bad)
    with pytest.warns(ArmorWarning, match="CRC-24 mismatch"):
        assert dearmor(broken).data == b"hello world"
    with pytest.raises(ArmorError, match="CRC-24 mismatch") as info:
        dearmor(broken, strict=True)
    assert info.value.line == 4  # BEGIN, blank, one body line, CRC
    with pytest.warns(ArmorWarning, match="bad CRC line"):
        dearmor(text.replace(good, b"=AB"))
    with pytest.raises(ArmorError, match="bad CRC line"):
        dearmor(text.replace(good, b"=AB"), strict=True)


BODY = armor(bytes(range(100)), crc=True)  # lines: BEGIN, blank, 3 of base64, CRC, END


def _spoil(line: int, char: bytes) -> bytes:
    """BODY with the 10th character of 0-based ``line`` replaced."""
    old = BODY.split(b"\n")[line][:10]
    return BODY.replace(old, old[:9] + char)


@pytest.mark.parametrize(
    ("text", "match", "line"),
    [
        (b"just some text\nno armor here\n", "no '-----BEGIN PGP", 1),
        (BODY.replace(b"-----END PGP MESSAGE-----\n", b""), "no END line", 7),
        (BODY.replace(b"END PGP MESSAGE", b"END PGP SIGNATURE"), "mismatched END line", 7),
        (_spoil(3, b"!"), "invalid base64 character 0x21", 4),
        (_spoil(2, b"\x00"), "character 0x00", 3),
        (_spoil(3, b"-"), "character 0x2d", 4),
        (b"-----BEGIN PGP MESSAGE\nabc\n", "malformed BEGIN line", 1),
        (b"x\n-----BEGIN PGP MESSAGE-----\nComment: x\n\n" + b"QUJD\n" * 3 + b"QUJ\n"
         b"-----END PGP MESSAGE-----\n", "incomplete final base64 group", 8),
    ],
)  # fmt: skip
def test_errors_have_line_numbers(impl: str, text: bytes, match: str, line: int) -> None:
    with pytest.raises(ArmorError, match=match) as info:
        dearmor(text)
    assert info.value.line == line
    with pytest.raises(ArmorError, match=match):
        ArmorReader(io.BytesIO(text), chunk_size=7).read()


def test_huge_single_line_is_bounded(impl: str) -> None:
    big = b"\x00garbage" * (2 << 20)  # 16 MiB, no newline
    tracemalloc.start()
    try:
        with pytest.raises(ArmorError, match="no '-----BEGIN"):
            dearmor(big)
        with pytest.raises(ArmorError, match="no END line"):
            dearmor(b"-----BEGIN PGP MESSAGE-----\n\n" + b"A" * len(big))
        with pytest.raises(ArmorError, match="no '-----BEGIN"):
            ArmorReader(io.BytesIO(big), chunk_size=1 << 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * len(big)


def test_iter_dearmor_keyring(impl: str) -> None:
    blocks = [(b"one", "PUBLIC KEY BLOCK"), (b"two" * 50, "SIGNATURE"), (b"", "MESSAGE")]
    text = b"preamble\n" + b"between\r\n".join(armor(d, k) for d, k in blocks) + b"after\n"
    text = text.replace(b"-----BEGIN PGP SIGNATURE", b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: x\n\nhi\n"
                        b"-----BEGIN PGP SIGNATURE")  # fmt: skip
    assert [(b.data, b.kind) for b in iter_dearmor(text)] == blocks
    assert list(iter_dearmor(b"nothing")) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=8),
       crc=st.sampled_from([True, False, None]))  # fmt: skip
def test_writer_random_chunks_equal_armor(impl: str, data: bytes, cuts: list[int], crc: bool | None) -> None:
    out, first = io.BytesIO(), b""
    with ArmorWriter(out, "PUBLIC KEY BLOCK", {"Comment": "w"}, crc=crc) as writer:
        pos = 0
        for cut in [*sorted(cuts), len(data)]:
            cut = max(pos, min(cut, len(data)))
            assert writer.write(memoryview(data)[pos:cut]) == cut - pos
            first = first or data[pos:cut]
            pos = cut
    if crc is None:  # the writer decides from its first non-empty write
        crc = crc_wanted(first)
    assert out.getvalue() == armor(data, "PUBLIC KEY BLOCK", {"Comment": "w"}, crc=crc)
    with pytest.raises(ValueError):
        writer.write(b"x")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 300), min_size=1, max_size=20),
       chunk=st.integers(1, 200), crlf=st.booleans())  # fmt: skip
def test_reader_random_sizes_equal_dearmor(
    impl: str, data: bytes, sizes: list[int], chunk: int, crlf: bool
) -> None:
    text = b"junk before\n" + armor(data, "SIGNATURE", {"Comment": "r"}, crc=True) + b"junk after\n"
    if crlf:
        text = text.replace(b"\n", b"\r\n")
    reader = ArmorReader(io.BytesIO(text), strict=True, chunk_size=chunk)
    assert (reader.kind, reader.headers) == ("SIGNATURE", {"Comment": "r"})
    got, i = bytearray(), 0
    while part := reader.read(sizes[i % len(sizes)]):
        assert len(part) <= sizes[i % len(sizes)]
        got += part
        i += 1
    assert bytes(got) == dearmor(text).data == data


def test_reader_readinto_and_crc(impl: str) -> None:
    data = bytes(range(256)) * 40
    text = armor(data, crc=True)
    reader = ArmorReader(io.BytesIO(text), chunk_size=100)
    buf = bytearray(1000)
    got = bytearray()
    while n := reader.readinto(buf):
        got += buf[:n]
    assert got == data
    good = text.split(b"\n")[-3]
    broken = text.replace(good, b"=" + (b"AAAA" if good != b"=AAAA" else b"BBBB"))
    with pytest.raises(ArmorError, match="CRC-24 mismatch"):
        ArmorReader(io.BytesIO(broken), strict=True).read()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ArmorReader(io.BytesIO(broken)).read() == data
    assert any(issubclass(w.category, ArmorWarning) for w in caught)
