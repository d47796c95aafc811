"""z-base-32: spec vectors, strict decoding, and the native kernel against its pure-Python twin."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native, zbase32

RFC4648_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ZBASE32_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"  # RFC 6189 section 5.1.6
# RFC 4648 section 10 base32 vectors. z-base-32 takes the same bits in the same order (most
# significant first) and only swaps the alphabet and drops the '=' padding.
RFC4648_VECTORS = [
    (b"", ""),
    (b"f", "MY======"),
    (b"fo", "MZXQ===="),
    (b"foo", "MZXW6==="),
    (b"foob", "MZXW6YQ="),
    (b"fooba", "MZXW6YTB"),
    (b"foobar", "MZXW6YTBOI======"),
]
ZB32_VECTORS = [
    (raw, b32.rstrip("=").translate(str.maketrans(RFC4648_ALPHABET, ZBASE32_ALPHABET)))
    for raw, b32 in RFC4648_VECTORS
]
# draft-koch-openpgp-webkey-service section 3.1: SHA-1("joe.doe") in z-base-32.
WKD_DIGEST = hashlib.sha1(b"joe.doe").digest()
WKD_TEXT = "iy9q119eutrkn8s1mk4r39qejnbu3n5q"

KERNELS = _native.implementations("wkd")


@pytest.fixture(params=sorted(KERNELS))
def kernel(request: pytest.FixtureRequest):
    """Each loadable wkd kernel module, called directly."""
    return KERNELS[request.param]


def _both():
    if "native" not in KERNELS:
        if os.environ.get("PGPBULK_REQUIRE_NATIVE"):
            pytest.fail("engine._wkd_c is required (PGPBULK_REQUIRE_NATIVE=1) but not built")
        pytest.skip("engine._wkd_c not built")
    return KERNELS["native"], KERNELS["pure"]


def test_vector_f_by_hand() -> None:
    # 'f' = 0x66 = 01100 110(00): values 12 and 24 -> 'c' and 'a'.
    assert ZB32_VECTORS[1] == (b"f", "ca")


@pytest.mark.parametrize(("raw", "text"), ZB32_VECTORS)
def test_rfc4648_vectors(impl: str, raw: bytes, text: str) -> None:
    assert zbase32.encode(raw) == text
    assert zbase32.decode(text) == raw


def test_wkd_digest_vector(impl: str) -> None:
    assert zbase32.encode(WKD_DIGEST) == WKD_TEXT
    assert zbase32.decode(WKD_TEXT) == WKD_DIGEST


def test_every_symbol_decodes_to_its_index(kernel) -> None:
    # Eight copies of one symbol are 40 bits of that 5-bit value: five whole bytes.
    for value, ch in enumerate(ZBASE32_ALPHABET):
        expected = (int(f"{value:05b}" * 8, 2)).to_bytes(5, "big")
        assert kernel.zbase32_decode(ch * 8) == expected
        assert kernel.zbase32_encode(expected) == ch * 8


def test_bytes_like_inputs(kernel) -> None:
    assert kernel.zbase32_encode(bytearray(b"foobar")) == ZB32_VECTORS[-1][1]
    assert kernel.zbase32_encode(memoryview(b"xfoobar")[1:]) == ZB32_VECTORS[-1][1]


def test_encode_rejects_non_buffer(kernel) -> None:
    with pytest.raises(TypeError):
        kernel.zbase32_encode("text")


def test_decode_rejects_bytes(kernel) -> None:
    with pytest.raises(TypeError):
        kernel.zbase32_decode(b"ca")


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("cv", 1),  # 'v' and 'l' are not in the alphabet
        ("l", 0),
        ("CA", 0),  # upper case is not canonical
        ("ca ", 2),
        ("yyyyyy2y", 6),  # '2' is not in the alphabet
        ("yyé", 2),
        ("éyy", 0),
        ("y\u0000", 1),
        ("A\u00e9", 0),  # the first bad character wins, ASCII or not
    ],
)
def test_decode_names_bad_position(impl: str, text: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"position {position}$"):
        zbase32.decode(text)


@pytest.mark.parametrize("length", [1, 3, 6, 9, 11, 14])
def test_decode_rejects_lengths_no_bytes_encode_to(impl: str, length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        zbase32.decode("y" * length)


@pytest.mark.parametrize(
    "text",
    [
        "cb",  # 'f' is "ca": the last 2 bits of the second symbol must be zero ('b' = 00001)
        "yyyb",  # 2 bytes: 4 fill bits
        "yyyyb",  # 3 bytes: 1 fill bit
        "yyyyyyb",  # 4 bytes: 3 fill bits
    ],
)
def test_decode_rejects_non_zero_fill_bits(impl: str, text: str) -> None:
    with pytest.raises(ValueError, match=f"position {len(text) - 1}$"):
        zbase32.decode(text)


def test_empty(impl: str) -> None:
    assert zbase32.encode(b"") == ""
    assert zbase32.decode("") == b""


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_round_trip_and_length(data: bytes) -> None:
    for kernel in KERNELS.values():
        text = kernel.zbase32_encode(data)
        assert len(text) == -(-8 * len(data) // 5)  # ceil(8n/5)
        assert set(text) <= set(ZBASE32_ALPHABET)
        assert kernel.zbase32_decode(text) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_native_encode_matches_pure(data: bytes) -> None:
    native, pure = _both()
    assert native.zbase32_encode(data) == pure.zbase32_encode(data)


def _decode_outcome(kernel, text: str) -> bytes | str:
    try:
        return kernel.zbase32_decode(text)
    except ValueError as exc:
        return f"ValueError: {exc}"


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=ZBASE32_ALPHABET, max_size=40),
        st.text(alphabet=ZBASE32_ALPHABET + "lvAZ02 =\u00e9\u0000", max_size=40),
        st.text(max_size=20),
    )
)
def test_native_decode_matches_pure(text: str) -> None:
    native, pure = _both()
    assert _decode_outcome(native, text) == _decode_outcome(pure, text)
