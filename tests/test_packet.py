"""Packet framing: every header and length form, partial bodies, streaming, and fuzzing."""

from __future__ import annotations

import io
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import MalformedPacket
from engine.openpgp.packet import (
    BodyReader,
    PacketWriter,
    encode_length,
    iter_packets,
    iter_packets_stream,
    packet_header,
    write_packet,
)


@pytest.mark.parametrize(
    ("length", "encoded"),
    [
        (0, "00"),
        (191, "bf"),
        (192, "c000"),
        (8383, "dfff"),
        (8384, "ff000020c0"),
        (100000, "ff000186a0"),
    ],
)
def test_new_format_length_forms(length: int, encoded: str) -> None:
    assert encode_length(length).hex() == encoded
    pkt = next(iter_packets(write_packet(11, b"a" * length)))
    assert (pkt.tag, len(pkt.body), pkt.header_len) == (11, length, 1 + len(encoded) // 2)


@pytest.mark.parametrize(("length", "header_len"), [(5, 2), (255, 2), (256, 3), (65535, 3), (65536, 5)])
def test_old_format_length_forms(length: int, header_len: int) -> None:
    data = write_packet(8, b"b" * length, old_format=True)
    pkt = next(iter_packets(data))
    assert not pkt.new_format
    assert (pkt.tag, len(pkt.body), pkt.header_len, bytes(pkt.raw)) == (8, length, header_len, data)


def test_old_format_indeterminate_runs_to_end() -> None:
    data = bytes((0x80 | 11 << 2 | 3,)) + b"all the rest"
    (pkt,) = iter_packets(data)
    assert pkt.indeterminate and bytes(pkt.body) == b"all the rest"
    (spkt,) = [(p.indeterminate, p.read_all()) for p in iter_packets_stream(io.BytesIO(data))]
    assert spkt == (True, b"all the rest")


def test_partial_lengths_hand_made() -> None:
    # 512-byte partial chunk (0xE9), then 1 partial (0xE0), then a final definite chunk of 3.
    data = b"\xcb\xe9" + b"A" * 512 + b"\xe0" + b"B" + b"\x03" + b"CDE" + write_packet(13, b"uid")
    pkts = list(iter_packets(data))
    assert pkts[0].partial and bytes(pkts[0].body) == b"A" * 512 + b"BCDE"
    assert pkts[0].length == len(data) - 5 and pkts[1].offset == len(data) - 5
    streamed = [(p.tag, p.read_all()) for p in iter_packets_stream(io.BytesIO(data))]
    assert streamed == [(11, b"A" * 512 + b"BCDE"), (13, b"uid")]


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 4096, 70000])
def test_packet_writer_round_trip(size: int) -> None:
    out = io.BytesIO()
    body = bytes(i % 251 for i in range(size))
    with PacketWriter(out, 18, chunk_size=1024) as w:
        for i in range(0, size, 700):
            w.write(body[i : i + 700])
    data = out.getvalue()
    (pkt,) = iter_packets(data)
    assert pkt.tag == 18 and bytes(pkt.body) == body
    assert pkt.partial == (size > 1024)
    if pkt.partial:  # first chunk: at least 512, a power of two (RFC 9580 section 4.2.1.4)
        assert data[1] == 224 + 10


def test_stream_skips_unread_body_and_reads_incrementally() -> None:
    data = write_packet(11, b"x" * 10000) + write_packet(13, b"after")
    it = iter_packets_stream(io.BytesIO(data))
    first = next(it)
    assert first.read(3) == b"xxx" and first.body_read == 3
    second = next(it)
    assert (second.tag, second.offset, second.read_all()) == (13, 10006, b"after")


@pytest.mark.parametrize(
    ("data", "offset", "reason"),
    [
        (b"\x3f\x00", 0, "bit 7 clear"),
        (b"\xc0\x00", 0, "tag 0"),
        (write_packet(13, b"ok") + b"\xcd\x05abc", 4, "declares 5 bytes"),
        (write_packet(13, b"ok") + b"\xcd", 4, "length missing"),
        (b"\xcd\xdf", 0, "two-octet"),
        (b"\xcd\xff\x00\x00", 0, "five-octet"),
        (b"\x85\x01", 0, "old-format length"),
        (b"\xcb\xe9" + b"A" * 100, 2, "partial body chunk"),
        (b"\xcb\xe9" + b"A" * 512, 514, "length missing"),
    ],
)
def test_malformed_offsets(data: bytes, offset: int, reason: str) -> None:
    with pytest.raises(MalformedPacket, match=reason) as exc:
        list(iter_packets(data, source="t.pgp"))
    assert exc.value.offset == offset and exc.value.source == "t.pgp"
    with pytest.raises(MalformedPacket):
        for p in iter_packets_stream(io.BytesIO(data)):
            p.read_all()


def test_body_reader_offsets() -> None:
    pkt = next(iter_packets(write_packet(13, b"ab", old_format=True)))
    r = BodyReader.of(pkt, "user id")
    assert r.u8() == ord("a")
    with pytest.raises(MalformedPacket, match="user id: truncated") as exc:
        r.u16()
    assert exc.value.offset == 3


def test_header_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        packet_header(20, 3, old_format=True)
    with pytest.raises(ValueError):
        PacketWriter(io.BytesIO(), 11, chunk_size=1000)


packets = st.lists(
    st.tuples(st.integers(1, 63), st.binary(max_size=9000), st.booleans()), min_size=1, max_size=5
)


@settings(max_examples=60, deadline=None)
@given(packets)
def test_write_read_round_trip(items: list[tuple[int, bytes, bool]]) -> None:
    data = b"".join(write_packet(t, b, old_format=old and t < 16) for t, b, old in items)
    assert [(p.tag, bytes(p.body)) for p in iter_packets(data)] == [(t, b) for t, b, _ in items]
    streamed = [(p.tag, p.read_all()) for p in iter_packets_stream(io.BytesIO(data))]
    assert streamed == [(t, b) for t, b, _ in items]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_malformed(data: bytes) -> None:
    start = time.perf_counter()
    total = 0
    try:
        for p in iter_packets(data):
            total += len(p.body)
            assert p.length <= len(data) and len(p.body) <= len(data)
    except MalformedPacket as e:
        assert e.offset is not None and 0 <= e.offset <= len(data)
    try:
        for sp in iter_packets_stream(io.BytesIO(data)):
            assert len(sp.read_all()) <= len(data)
    except MalformedPacket as e:
        assert e.offset is not None and 0 <= e.offset <= len(data)
    assert total <= len(data) and time.perf_counter() - start < 1.0
