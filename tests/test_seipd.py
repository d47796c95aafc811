"""SEIPD v1/v2 and SED: RFC 9580 Appendix A vectors, round trips, streaming, tampering."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import IntegrityError, MalformedPacket
from engine.openpgp import seipd
from engine.openpgp.constants import AEADAlgorithm, PacketTag, SymmetricAlgorithm
from engine.openpgp.packet import iter_packets
from engine.openpgp.symmetric import cfb_encryptor

AES128, AES256 = SymmetricAlgorithm.AES128, SymmetricAlgorithm.AES256

# RFC 9580 A.9 (EAX), A.10 (OCB), A.11 (GCM): v6 SKESK ("password") + SEIPD v2, AES-128. The session
# keys are the ones the SKESKs yield, as stated in the RFC.
AEAD_SAMPLES = {
    AEADAlgorithm.EAX: (
        "w0AGHgcBCwMIpa5XnR/F2Cv/aSJPkZmTs1Bvo7WaanPP+MXvxfQcV/tU4cImgV14"
        "KPX5LEVOtl6+AKtZhsaObnxV0mkCBwEGn/kOOzIZZPOkKRPI3MZhkyUBUifvt+rq"
        "pJ8EwuZ0F11KPSJu1q/LnKmsEiwUcOEcY9TAqyQcapOK1Iv5mlqZuQu6gyXeYQR1"
        "QCWKt5Wala0FHdqW6xVDHf719eIlXKeCYVRuM5o=",
        "3881bafe985412459b86c36f98cb9a5e",
    ),
    AEADAlgorithm.OCB: (
        "wz8GHQcCCwMIVqKY0vXjZFP/z8xcEWZO2520JZDX3EawckG2EsOBLP/76gDyNHsl"
        "ZBEj+IeuYNT9YU4IN9gZ02zSaQIHAgYgpmH3MfyaMDK1YjMmAn46XY21dI6+/wsM"
        "WRDQns3WQf+f04VidYA1vEl1TOG/P/+n2tCjuBBPUTPPQqQQCoPu9MobSAGohGv0"
        "K82nyM6dZeIS8wHLzZj9yt5pSod61CRzI/boVw==",
        "28e79ab82397d3c63de24ac217d7b791",
    ),
    AEADAlgorithm.GCM: (
        "wzwGGgcDCwMI6dOXhbIHAAj/tC58SD70iERXyzcmubPbn/d25fTZpAlS4kRymIUa"
        "v/91Jt8t1VRBdXmneZ/SaQIHAwb8uUSQvLmLvcnRBsYJAmaUD3LontwhtVlrFXax"
        "Ae0Pn/xvxtZbv9JNzQeQlm5tHoWjAFN4TLHYtqBpnvEhVaeyrWJYUxtXZR/Xd3kS"
        "+pXjXZtAIW9ppMJI2yj/QzHxYykHOZ5v+Q==",
        "1936fc8568980274bb900d8319360c77",
    ),
}
LITERAL_HELLO = b"\xcb\x13b\x00\x00\x00\x00\x00Hello, world!"


def _sample(mode: AEADAlgorithm) -> tuple[bytes, bytes]:
    b64, key = AEAD_SAMPLES[mode]
    packets = list(iter_packets(base64.b64decode(b64)))
    assert [p.tag for p in packets] == [PacketTag.SKESK, PacketTag.SEIPD]
    return bytes(packets[1].body), bytes.fromhex(key)


@pytest.mark.parametrize("mode", list(AEAD_SAMPLES))
def test_rfc9580_aead_samples_decrypt(mode: AEADAlgorithm) -> None:
    body, key = _sample(mode)
    assert body[:3] == bytes((2, AES128, mode))
    plain = seipd.open_v2(key, body)
    # literal "Hello, world!" followed by a padding packet (tag 21)
    assert plain.startswith(LITERAL_HELLO)
    assert next(iter(iter_packets(plain[len(LITERAL_HELLO) :]))).tag == PacketTag.PADDING


@pytest.mark.parametrize("mode", list(AEAD_SAMPLES))
def test_rfc9580_aead_sample_tampered(mode: AEADAlgorithm) -> None:
    body, key = _sample(mode)
    for pos in (5, 40, len(body) - 20, len(body) - 1):  # salt, chunk, chunk tag, final tag
        bad = bytearray(body)
        bad[pos] ^= 0x01
        with pytest.raises(IntegrityError):
            seipd.open_v2(key, bytes(bad))
    with pytest.raises(IntegrityError):
        seipd.open_v2(key, body[:-16])  # truncation: final tag missing


def test_eax_paper_vectors() -> None:
    from engine.openpgp.aead import AESEAX

    eax = AESEAX(bytes.fromhex("91945D3F4DCBEE0BF45EF52255F095A4"))
    nonce, header = bytes.fromhex("BECAF043B0A23D843194BA972C66DEBD"), bytes.fromhex("FA3BFD4806EB53FA")
    sealed = eax.encrypt(nonce, bytes.fromhex("F7FB"), header)
    assert sealed.hex().upper() == "19DD5C4C9331049D0BDAB0277408F67967E5"
    assert eax.decrypt(nonce, sealed, header) == bytes.fromhex("F7FB")


def _feed(dec: seipd.V1Decryptor | seipd.V2Decryptor, body: bytes, cuts: list[int]) -> bytes:
    out, pos = [], 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        out.append(dec.update(body[pos:cut]))
        pos = max(pos, cut)
    out.append(dec.update(body[pos:]))
    tail = dec.finalize()
    return b"".join(out) + (tail or b"")


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=5000),
    chunk_octet=st.integers(0, 6),
    mode=st.sampled_from(list(AEADAlgorithm)),
    cuts=st.lists(st.integers(0, 10_000), max_size=5),
)
def test_v2_round_trip_random_chunks(
    data: bytes, chunk_octet: int, mode: AEADAlgorithm, cuts: list[int]
) -> None:
    key = os.urandom(32)
    enc = seipd.V2Encryptor(key, AES256, mode, chunk_octet)
    pieces = [enc.header()]
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        pieces.append(enc.update(data[pos:cut]))
        pos = max(pos, cut)
    pieces += [enc.update(data[pos:]), enc.finalize()]
    body = b"".join(pieces)
    n_chunks = -(-len(data) // (1 << (chunk_octet + 6)))
    assert len(body) == 36 + len(data) + 16 * (n_chunks + 1)
    assert seipd.open_v2(key, body) == data
    assert _feed(seipd.V2Decryptor(key), body, cuts) == data


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=5000),
    cipher=st.sampled_from(
        [AES128, SymmetricAlgorithm.AES192, AES256, SymmetricAlgorithm.CAMELLIA256, SymmetricAlgorithm.CAST5]
    ),
    cuts=st.lists(st.integers(0, 10_000), max_size=5),
)
def test_v1_round_trip(data: bytes, cipher: SymmetricAlgorithm, cuts: list[int]) -> None:
    key = os.urandom(cipher.key_size)
    body = seipd.seal_v1(key, cipher, data)
    assert len(body) == 1 + cipher.block_size + 2 + len(data) + 22
    assert seipd.open_v1(key, cipher, body) == data
    assert _feed(seipd.V1Decryptor(key, cipher), body, cuts) == data


def test_v1_is_standard_cfb_with_zero_iv() -> None:
    """OpenPGP CFB without resync equals CFB with an all-zero IV over prefix || data || MDC."""
    key, prefix, data = os.urandom(32), os.urandom(16), b"some inner packets"
    enc = seipd.V1Encryptor(key, AES256, prefix=prefix)
    body = enc.header() + enc.update(data) + enc.finalize()
    import hashlib

    clear = prefix + prefix[-2:] + data + b"\xd3\x14"
    clear += hashlib.sha1(clear).digest()
    ctx = cfb_encryptor(AES256, key)
    assert body == b"\x01" + ctx.update(clear) + ctx.finalize()


def test_v1_tampering_is_integrity_error() -> None:
    key = os.urandom(32)
    body = seipd.seal_v1(key, AES256, b"x" * 1000)
    for pos in (1, 20, 500, len(body) - 1):
        bad = bytearray(body)
        bad[pos] ^= 0x80
        with pytest.raises(IntegrityError):
            seipd.open_v1(key, AES256, bytes(bad))
    with pytest.raises(IntegrityError):
        seipd.open_v1(key, AES256, body[:-1])
    with pytest.raises(IntegrityError):
        seipd.open_v1(os.urandom(32), AES256, body)
    with pytest.raises(MalformedPacket):
        seipd.open_v1(key, AES256, b"\x02" + body[1:])


def test_sed_legacy_decrypts() -> None:
    """SED: OpenPGP CFB with resync after the 18-octet prefix (RFC 4880 section 13.9)."""
    key, prefix, data = os.urandom(16), os.urandom(16), b"legacy data without MDC"
    head = cfb_encryptor(AES128, key).update(prefix + prefix[-2:])
    rest = cfb_encryptor(AES128, key, iv=head[2:18])
    body = head + rest.update(data) + rest.finalize()
    assert seipd.open_sed(key, AES128, body) == data
    with pytest.raises(IntegrityError):
        seipd.open_sed(os.urandom(16), AES128, body)


def test_seal_v1_many_equals_seal_v1_and_takes_aes_only() -> None:
    from engine.errors import InvalidArgument, UnsupportedAlgorithm
    from engine.openpgp.constants import SymmetricAlgorithm as S

    items = [
        (os.urandom(c.key_size), c, os.urandom(n), b"head", b"lead", os.urandom(16))
        for c, n in ((S.AES128, 0), (S.AES256, 17), (S.AES192, 5000), (S.AES256, 16))
    ]
    expected = [seipd.seal_v1(k, c, p, h, ld, lambda _n, pre=pre: pre) for k, c, p, h, ld, pre in items]
    assert seipd.seal_v1_many(items) == expected
    with pytest.raises(UnsupportedAlgorithm):
        seipd.seal_v1_many([(os.urandom(32), S.CAMELLIA256, b"x", b"", b"", os.urandom(16))])
    with pytest.raises(InvalidArgument):
        seipd.seal_v1_many([(os.urandom(24), S.AES256, b"x", b"", b"", os.urandom(16))])
