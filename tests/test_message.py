"""In-process message round trips: SEIPD v1/v2 choice, compression, metadata, errors, limits."""

from __future__ import annotations

import bz2
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import IntegrityError, MalformedPacket, NoMatchingKey, PgpBulkError, StructuralError
from engine.openpgp import keygen, message, seipd, streaming
from engine.openpgp.compressed import DecompressionLimit, compress
from engine.openpgp.constants import CompressionAlgorithm, PacketTag, SymmetricAlgorithm
from engine.openpgp.literal import LiteralData
from engine.openpgp.packet import write_packet
from engine.openpgp.pkesk import SessionKey
from engine.openpgp.provider import InProcessKeyProvider

AES256 = SymmetricAlgorithm.AES256


@pytest.fixture(scope="module")
def v4() -> object:
    return keygen.generate("Four <four@example.org>")


@pytest.fixture(scope="module")
def v6() -> object:
    return keygen.generate("Six <six@example.org>", version=6)


def _shape(ct: bytes) -> tuple[list[int], int]:
    parsed = message.parse_message(ct)
    return [p.version for p in parsed.pkesks], parsed.version


@pytest.mark.parametrize("size", [0, 1, 8192, 300_000])
def test_round_trip_v4_uses_seipd_v1(v4, size: int) -> None:  # type: ignore[no-untyped-def]
    pt = os.urandom(size)
    ct = message.encrypt(pt, [v4.public()])
    assert _shape(ct) == ([3], 1)
    result = message.decrypt(ct, InProcessKeyProvider([v4]))
    assert result.plaintext == pt and result.integrity == "mdc" and result.cipher == AES256
    assert result.literal == LiteralData(b"", ord("b"), b"", 0)


@pytest.mark.parametrize("cipher", [SymmetricAlgorithm.AES128, AES256, SymmetricAlgorithm.CAMELLIA256])
def test_encrypt_many_is_encrypt_for_each(v4, v6, cipher: SymmetricAlgorithm) -> None:  # type: ignore[no-untyped-def]
    """Same shape, literal data and plaintext as one ``encrypt`` per message; a fresh session key each."""
    pts = [os.urandom(size) for size in (0, 1, 16, 8192, 40_000)]
    cases = [([v4], ([3], 1))]
    if cipher.is_aes:  # X25519 (the v6 key) and SEIPD v2 take AES only, for encrypt as for encrypt_many
        cases += [([v6], ([6], 2)), ([v4, v6], ([3, 3], 1))]
    for recipients, shape in cases:
        outs = message.encrypt_many(pts, [k.public() for k in recipients], cipher=cipher)
        single = message.encrypt(pts[3], [k.public() for k in recipients], cipher=cipher)
        assert len(outs[3]) == len(single) and [_shape(o) for o in outs] == [shape] * len(pts)
        keys = set()
        for pt, ct in zip(pts, outs, strict=True):
            for key in recipients:
                result = message.decrypt(ct, InProcessKeyProvider([key]))
                assert result.plaintext == pt and result.cipher == cipher
                assert result.literal == LiteralData(b"", ord("b"), b"", 0)
                keys.add(result.session_key.key)
        assert len(keys) == len(pts)
    armored = message.encrypt_many([b"a", b"b"], [v4.public()], armor=True)
    assert [message.decrypt(a, InProcessKeyProvider([v4])).plaintext for a in armored] == [b"a", b"b"]


def test_auto_aead_only_when_every_recipient_advertises_it(v4, v6) -> None:  # type: ignore[no-untyped-def]
    assert _shape(message.encrypt(b"x", [v6.public()])) == ([6], 2)
    assert _shape(message.encrypt(b"x", [v6.public(), v4.public()])) == ([3, 3], 1)
    forced = message.encrypt(b"forced", [v4.public()], aead=True)
    assert _shape(forced) == ([6], 2)
    assert message.decrypt(forced, InProcessKeyProvider([v4])).plaintext == b"forced"
    both = message.encrypt(b"both", [v6.public(), v4.public()])
    for key in (v4, v6):
        assert message.decrypt(both, InProcessKeyProvider([key])).plaintext == b"both"


def test_v6_round_trip_and_metadata(v6) -> None:  # type: ignore[no-untyped-def]
    ct = message.encrypt(b"meta", [v6.public()], filename=b"a.txt", date=1234, armor=True)
    assert ct.startswith(b"-----BEGIN PGP MESSAGE-----")
    result = message.decrypt(ct, InProcessKeyProvider([v6]))
    assert result.plaintext == b"meta" and result.integrity == "aead"
    assert (result.literal.filename, result.literal.date) == (b"a.txt", 1234)


@pytest.mark.parametrize("algo", [True, CompressionAlgorithm.ZIP, CompressionAlgorithm.BZIP2])
def test_compressed_round_trip(v4, algo) -> None:  # type: ignore[no-untyped-def]
    pt = b"compressible " * 10_000
    ct = message.encrypt(pt, [v4.public()], compress=algo)
    assert len(ct) < len(pt) // 10
    assert message.decrypt(ct, InProcessKeyProvider([v4])).plaintext == pt


def test_anonymous_recipient(v4) -> None:  # type: ignore[no-untyped-def]
    ct = message.encrypt(b"hidden", [v4.public()], anonymous=True)
    assert message.parse_message(ct).pkesks[0].anonymous
    assert message.decrypt(ct, InProcessKeyProvider([v4])).plaintext == b"hidden"


def test_file_object_input(v4) -> None:  # type: ignore[no-untyped-def]
    ct = message.encrypt(io.BytesIO(b"from a file"), [v4.public()])  # type: ignore[arg-type]
    assert message.decrypt(ct, InProcessKeyProvider([v4])).plaintext == b"from a file"


def test_wrong_key_and_tampering(v4, v6) -> None:  # type: ignore[no-untyped-def]
    ct = message.encrypt(b"x" * 1000, [v4.public()])
    with pytest.raises(NoMatchingKey):
        message.decrypt(ct, InProcessKeyProvider([v6]))
    for pos in (len(ct) - 1, len(ct) - 30, len(ct) - 900):
        bad = bytearray(ct)
        bad[pos] ^= 0x10
        with pytest.raises(IntegrityError):
            message.decrypt(bytes(bad), InProcessKeyProvider([v4]))
    with pytest.raises(MalformedPacket) as err:
        message.decrypt(ct[:-10], InProcessKeyProvider([v4]))
    assert err.value.offset is not None


def _encrypted_inner(inner: bytes, sk: SessionKey, tag: int = PacketTag.SEIPD) -> bytes:
    return write_packet(tag, seipd.seal_v1(sk.key, AES256, inner))


def test_compression_bomb_is_bounded() -> None:
    sk = SessionKey(AES256, os.urandom(32))
    literal = LiteralData(bytes(30 << 20)).serialize()
    for algo in (CompressionAlgorithm.ZLIB, CompressionAlgorithm.BZIP2):
        ct = _encrypted_inner(compress(literal, algo, 9), sk)
        assert len(ct) < 200_000
        with pytest.raises(DecompressionLimit):
            message.decrypt(ct, session_key=sk, max_output=1 << 20)
        sink = io.BytesIO()
        with pytest.raises((DecompressionLimit, MalformedPacket)):
            streaming.decrypt_stream(io.BytesIO(ct), sink, session_key=sk, max_output=1 << 20)
        assert sink.getvalue() == b""


def test_signatures_and_bzip2_inside_are_kept() -> None:
    sk = SessionKey(AES256, os.urandom(32))
    ops, sig = (
        write_packet(PacketTag.ONE_PASS_SIGNATURE, b"\x03" * 13),
        write_packet(PacketTag.SIGNATURE, b"s"),
    )
    inner = ops + LiteralData(b"body").serialize() + sig
    packed = write_packet(PacketTag.COMPRESSED, b"\x03" + bz2.compress(inner))
    result = message.decrypt(_encrypted_inner(packed, sk), session_key=sk)
    assert result.plaintext == b"body"
    assert [p.tag for p in result.signatures] == [PacketTag.ONE_PASS_SIGNATURE, PacketTag.SIGNATURE]


def test_sed_refused_unless_opted_in() -> None:
    from engine.openpgp.symmetric import cfb_encryptor

    sk = SessionKey(AES256, os.urandom(32))
    prefix = os.urandom(16)
    head = cfb_encryptor(AES256, sk.key).update(prefix + prefix[-2:])
    rest = cfb_encryptor(AES256, sk.key, iv=head[2:18])
    ct = write_packet(PacketTag.SED, head + rest.update(LiteralData(b"old").serialize()) + rest.finalize())
    with pytest.raises(IntegrityError):
        message.decrypt(ct, session_key=sk)
    assert message.decrypt(ct, session_key=sk, allow_legacy_sed=True).plaintext == b"old"
    assert message.needs_full_reencryption(ct) is not None


def test_stream_round_trip_two_pass(v4, v6) -> None:  # type: ignore[no-untyped-def]
    pt = os.urandom(3 << 20)
    for key in (v4, v6):
        out = io.BytesIO()
        streaming.encrypt_stream(io.BytesIO(pt), out, [key.public()])
        armored = io.BytesIO()
        streaming.encrypt_stream(io.BytesIO(pt[:5000]), armored, [key.public()], armor=True)
        assert message.decrypt(armored.getvalue(), InProcessKeyProvider([key])).plaintext == pt[:5000]
        for limit in (1 << 30, 1 << 16):
            sink = io.BytesIO()
            streaming.decrypt_stream(
                io.BytesIO(out.getvalue()), sink, InProcessKeyProvider([key]), memory_limit=limit
            )
            assert sink.getvalue() == pt
        bad = bytearray(out.getvalue())
        bad[len(bad) // 2] ^= 1
        sink = io.BytesIO()
        with pytest.raises(IntegrityError):
            streaming.decrypt_stream(
                io.BytesIO(bytes(bad)), sink, InProcessKeyProvider([key]), memory_limit=1 << 16
            )
        assert sink.getvalue() == b""


_FUZZ_KEY = SessionKey(AES256, bytes(range(32)))
_FUZZ_TEXT = b"fuzz me " * 40


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_messages_raise_typed_errors_only(data: st.DataObject) -> None:
    """Any mutation of a valid message: a pgpbulk error (with an offset when structural), never a crash."""
    base = bytearray(data.draw(st.sampled_from(_BASES)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(base) - 1))
        base[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(base)))
    blob = bytes(base[:cut])
    try:
        result = message.decrypt(blob, session_key=_FUZZ_KEY, max_output=1 << 20)
    except StructuralError as exc:
        assert exc.offset is None or 0 <= exc.offset <= len(blob) + 64
    except PgpBulkError:
        pass
    else:  # integrity protection: whatever decrypts is the original plaintext
        assert result.plaintext == _FUZZ_TEXT
    sink = io.BytesIO()
    try:
        streaming.decrypt_stream(io.BytesIO(blob), sink, session_key=_FUZZ_KEY, memory_limit=256)
    except PgpBulkError:
        assert sink.getvalue() == b""
    else:
        assert sink.getvalue() == _FUZZ_TEXT


def _bases() -> list[bytes]:
    inner = LiteralData(_FUZZ_TEXT).serialize()
    v1 = write_packet(PacketTag.SEIPD, seipd.seal_v1(_FUZZ_KEY.key, AES256, compress(inner)))
    v2 = write_packet(PacketTag.SEIPD, seipd.seal_v2(_FUZZ_KEY.key, AES256, inner, chunk_octet=0))
    return [v1, v2]


_BASES = _bases()
