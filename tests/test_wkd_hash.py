"""WKD hash, SHA-1 kernel, address splitting and URLs (spec vectors; native against pure twin)."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _native, wkd
from engine.errors import InvalidArgument

KERNELS = _native.implementations("wkd")

# draft-koch-openpgp-webkey-service section 3.1, and the non-ASCII vectors (GnuPG output).
HASH_VECTORS = [
    ("Joe.Doe", "iy9q119eutrkn8s1mk4r39qejnbu3n5q"),
    ("joe.doe", "iy9q119eutrkn8s1mk4r39qejnbu3n5q"),
    ("ÄRGER", "ewd7piirpeasam9iz8or84x4be3xhxqw"),
    ("jörg", "h8ghzysw1a49fnopr45hii67zzgshjt8"),
]
# FIPS 180-4 / NIST CSRC example values for SHA-1.
SHA1_VECTORS = [
    (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
    (b"a" * 1_000_000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
]


def _native_kernel():
    if "native" not in KERNELS:
        if os.environ.get("PGPBULK_REQUIRE_NATIVE"):
            pytest.fail("engine._wkd_c is required (PGPBULK_REQUIRE_NATIVE=1) but not built")
        pytest.skip("engine._wkd_c not built")
    return KERNELS["native"]


def _native_backends() -> list[str]:
    native = KERNELS.get("native")
    if native is None:
        return []
    return ["portable", "sha_ni"] if native.features()["sha_ni"] else ["portable"]


# ---- hash vectors and semantics ----------------------------------------------------------------


@pytest.mark.parametrize(("local", "expected"), HASH_VECTORS)
def test_hash_vectors(impl: str, local: str, expected: str) -> None:
    assert wkd.wkd_hash(local) == expected
    assert wkd.wkd_hash(local.encode("utf-8")) == expected
    assert wkd.wkd_hashes([local, local.encode("utf-8")]) == [expected, expected]


def test_only_ascii_letters_are_folded(impl: str) -> None:
    # "ÄRGER" hashes "Ärger": Ä stays, so it differs from the Unicode-lowered "ärger".
    assert wkd.wkd_hash("ÄRGER") == wkd.wkd_hash("Ärger")
    assert wkd.wkd_hash("ÄRGER") != wkd.wkd_hash("ärger")
    assert wkd.wkd_hash("ÄRGER") != wkd.wkd_hash("ÄRGER".lower())
    # Neighbours of the letter range ('@' 0x40, '[' 0x5B) and Latin-1 letters are not folded.
    assert wkd.wkd_hash(b"@[") != wkd.wkd_hash(b"`{")
    assert wkd.wkd_hash(b"\xc4") != wkd.wkd_hash(b"\xe4")
    assert wkd.wkd_hash(b"\xc4RGER") == wkd.wkd_hash(b"\xc4rger")


def test_hash_matches_hashlib_definition(impl: str) -> None:
    # The definition spelled out with hashlib: SHA-1 of the ASCII-lowered bytes, z-base-32 of it.
    local = "Mixed.CASE+Tag_ÖÄ"
    lowered = local.encode("utf-8").translate(
        bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
    )
    digest = hashlib.sha1(lowered).digest()
    # 20 bytes = 160 bits = 32 symbols, most significant bits first.
    bits = int.from_bytes(digest, "big")
    expected = "".join("ybndrfg8ejkmcpqxot1uwisza345h769"[(bits >> (155 - 5 * i)) & 31] for i in range(32))
    assert wkd.wkd_hash(local) == expected


@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 1000])
def test_hash_around_block_boundaries(impl: str, length: int) -> None:
    local = ("AbC.d" * 300)[:length]
    digest = hashlib.sha1(local.lower().encode()).digest()  # ASCII only here, so lower() is exact
    assert wkd.wkd_hash(local) == KERNELS["pure"].zbase32_encode(digest)


def test_bytes_like_and_errors(impl: str) -> None:
    expected = HASH_VECTORS[0][1]
    assert wkd.wkd_hash(bytearray(b"Joe.Doe")) == expected
    assert wkd.wkd_hash(memoryview(b"xJoe.Doe")[1:]) == expected
    with pytest.raises(TypeError):
        wkd.wkd_hash(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wkd.wkd_hashes([b"ok", None])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        wkd.wkd_hashes(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single one"):
        wkd.wkd_hashes("joe.doe")
    with pytest.raises(UnicodeEncodeError):
        wkd.wkd_hash("a\ud800b")


def test_hashes_accepts_any_iterable(impl: str) -> None:
    expected = [v for _, v in HASH_VECTORS]
    assert wkd.wkd_hashes(local for local, _ in HASH_VECTORS) == expected
    assert wkd.wkd_hashes(tuple(local for local, _ in HASH_VECTORS)) == expected
    assert wkd.wkd_hashes([]) == []


_locals = st.one_of(st.text(max_size=150), st.binary(max_size=150))


@settings(max_examples=100, deadline=None)
@given(st.lists(_locals, max_size=10))
def test_batch_equals_single(items: list[str | bytes]) -> None:
    for kernel in KERNELS.values():
        try:
            expected = [kernel.wkd_hash(x) for x in items]
        except UnicodeEncodeError:
            with pytest.raises(UnicodeEncodeError):
                kernel.wkd_hashes(items)
            continue
        assert kernel.wkd_hashes(items) == expected


@settings(max_examples=200, deadline=None)
@given(_locals)
def test_native_hash_matches_pure(local: str | bytes) -> None:
    native = _native_kernel()
    try:
        expected = KERNELS["pure"].wkd_hash(local)
    except UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            native.wkd_hash(local)
        return
    assert native.wkd_hash(local) == expected


# ---- SHA-1 kernel -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", _native_backends())
@pytest.mark.parametrize(("data", "hexdigest"), SHA1_VECTORS, ids=["empty", "abc", "448bit", "million-a"])
def test_sha1_fips_vectors(backend: str, data: bytes, hexdigest: str) -> None:
    assert _native_kernel().sha1(data, backend).hex() == hexdigest


_boundary_sizes = st.sampled_from([0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 191, 192, 193, 300])


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.binary(max_size=300), _boundary_sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n)))
)
def test_sha1_matches_hashlib(data: bytes) -> None:
    native = _native_kernel()
    expected = hashlib.sha1(data).digest()
    for backend in _native_backends():
        assert native.sha1(data, backend) == expected


@pytest.mark.parametrize("backend", _native_backends())
def test_sha1_large(backend: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert _native_kernel().sha1(memoryview(data), backend) == hashlib.sha1(data).digest()


def test_sha1_backend_choice(impl: str) -> None:
    kernel = _native.kernel("wkd")
    feats = kernel.features()
    assert feats["native"] is (impl == "native")
    assert kernel.sha1(b"abc", "portable").hex() == SHA1_VECTORS[1][1]
    with pytest.raises(ValueError, match="unknown SHA-1 backend"):
        kernel.sha1(b"abc", "sha3")
    if not feats["sha_ni"]:
        with pytest.raises(ValueError, match="not available"):
            kernel.sha1(b"abc", "sha_ni")


# ---- addresses and URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("Joe.Doe@Example.ORG", ("Joe.Doe", "Example.ORG")),
        ("a+tag@x.org", ("a+tag", "x.org")),
        ("jörg@bücher.de", ("jörg", "bücher.de")),
        ("a b%c/d@x_y.org", ("a b%c/d", "x_y.org")),
    ],
)
def test_split_address(address: str, parts: tuple[str, str]) -> None:
    assert wkd.split_address(address) == parts


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("joe.example.org", "no '@'"),
        ("a@b@example.org", "2 '@'"),
        ("@example.org", "empty local part"),
        ("joe@", "empty domain"),
        ("joe@exa/mple.org", "'/' in the domain at position 7"),
        ("joe@example.org/../x", "'/' in the domain"),
        ("joe@exa\\mple.org", "in the domain at position 7"),
        ("joe@example..org", r"empty label \('..'\)"),
        ("joe@.example.org", "must not start or end"),
        ("joe@example.org.", "must not start or end"),
        ("joe@exam\0ple.org", "control character '\\\\x00' in the domain at position 8"),
        ("joe@exam\nple.org", "control character"),
        ("joe@exam ple.org", "not allowed in a domain, at position 8"),
        ("joe@exam:443", "not allowed in a domain"),
        ("jo\0e@example.org", "control character '\\\\x00' in the local part at position 2"),
        ("jo\x7fe@example.org", "control character"),
        ("jo\x85e@example.org", "control character"),
        ("jo\ud800e@example.org", "lone surrogate"),
    ],
)
def test_split_address_refuses(address: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        wkd.split_address(address)


def test_split_address_type() -> None:
    with pytest.raises(InvalidArgument, match="must be str"):
        wkd.split_address(b"a@b.org")  # type: ignore[arg-type]


def test_url_draft_example(impl: str) -> None:
    # Draft section 3.1 example host and path; gpg lower-cases the l= value (see module doc).
    assert wkd.wkd_url("Joe.Doe@Example.ORG") == (
        "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/"
        "iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=joe.doe"
    )
    assert wkd.wkd_url("Joe.Doe@Example.ORG", method="direct") == (
        "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=joe.doe"
    )


# The first three were read from dirmngr 2.2.40's log ("error connecting to '<url>'") after WKD_GET
# of these local parts; the others follow from VALID_URI_CHARS in GnuPG's common/http.c.
# tests/test_wkd_hash_gpg.py checks random addresses against a live dirmngr.
@pytest.mark.parametrize(
    ("local", "escaped"),
    [
        ("a+b%20c?d", "a%2Bb%2520c%3Fd"),
        ("a`b{c}d|e^f=g/h~i$j", "a%60b{c}d|e^f%3Dg/h~i$j"),
        ("a'b!c*d#e&f", "a'b!c*d%23e%26f"),
        ("ärger", "%C3%A4rger"),
        ('a;b c"d', 'a%3Bb%20c"d'),
    ],
)
def test_escape_local_part_like_dirmngr(local: str, escaped: str) -> None:
    assert wkd.escape_local_part(local) == escaped
    assert wkd.escape_local_part(local.encode("utf-8")) == escaped


def test_url_lowercases_ascii_only(impl: str) -> None:
    url = wkd.wkd_url("ÄRGER@ÜBER.DE")
    assert url == (
        "https://openpgpkey.Über.de/.well-known/openpgpkey/Über.de/hu/"
        "ewd7piirpeasam9iz8or84x4be3xhxqw?l=%C3%84rger"
    )


def test_url_bad_method() -> None:
    with pytest.raises(InvalidArgument, match="unknown WKD method"):
        wkd.wkd_url("a@b.org", method="sideways")
