"""CRC-24 (RFC 9580 §6.1): spec check value, incremental use, native == pure on every CPU path."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _native
from engine.crc24 import CRC24_INIT, crc24

IMPLS = _native.implementations("armor")


def _bitwise(data: bytes, crc: int = CRC24_INIT) -> int:
    """The RFC 9580 §6.1 reference loop, bit by bit (independent of both kernels' tables)."""
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def test_check_value(impl: str) -> None:
    assert crc24(b"123456789") == 0x21CF02  # RFC 9580 / DESIGN.md check value


def test_empty_is_initial_value(impl: str) -> None:
    assert crc24(b"") == 0xB704CE


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types(impl: str, kind: type) -> None:
    assert crc24(kind(b"123456789")) == 0x21CF02


def test_rejects_bad_initial_value(impl: str) -> None:
    with pytest.raises(ValueError):
        crc24(b"x", 1 << 24)
    with pytest.raises(TypeError):
        crc24("text")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=600), cut=st.integers(min_value=0, max_value=600))
def test_incremental_equals_one_shot(impl: str, data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    assert crc24(data[cut:], crc24(data[:cut])) == crc24(data) == _bitwise(data)


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
@pytest.mark.parametrize("path", ["pclmul", "slicing-by-8"])
def test_native_paths_match_reference(path: str) -> None:
    native = IMPLS["native"]
    native._select(crc=path)
    try:
        for n in [*range(0, 200), 255, 256, 257, 1023, 1024, 1025, 4099]:
            data = bytes((i * 131 + n) & 0xFF for i in range(n))
            assert native.crc24(data) == _bitwise(data), n
            assert native.crc24(data, 0x123456) == _bitwise(data, 0x123456), n
    finally:
        native._select(crc="pclmul")


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=0, max_size=5000), init=st.integers(min_value=0, max_value=0xFFFFFF))
def test_native_equals_pure(data: bytes, init: int) -> None:
    assert IMPLS["native"].crc24(data, init) == IMPLS["pure"].crc24(data, init)


@pytest.mark.skipif("native" not in IMPLS, reason="native kernel not built")
def test_native_equals_pure_large() -> None:
    data = bytes(range(256)) * 1031 + b"tail"  # > 64 KiB: runs without the GIL
    assert IMPLS["native"].crc24(data) == IMPLS["pure"].crc24(data)
    assert IMPLS["native"].crc24(memoryview(data)[7:]) == IMPLS["pure"].crc24(data[7:])
