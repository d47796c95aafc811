"""Signature packets: subpacket framing, sign/verify round trips, and both directions against gpg."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from engine.errors import MalformedPacket, SignatureError
from engine.openpgp import keygen
from engine.openpgp.constants import HashAlgorithm, PacketTag, SignatureType
from engine.openpgp.keys import read_cert
from engine.openpgp.packet import BodyReader, iter_packets
from engine.openpgp.signature import Signature, Subpacket, parse_subpackets
from tests.conftest import require_tool


@pytest.mark.parametrize("size", [0, 190, 191, 8000, 9000])
def test_subpacket_length_forms_round_trip(size: int) -> None:
    sps = [Subpacket(20, b"n" * size, critical=True), Subpacket(2, b"\x00\x00\x00\x01")]
    raw = b"".join(s.serialize() for s in sps)
    parsed, area = parse_subpackets(BodyReader(raw), len(raw))
    assert parsed == sps and area == raw


def test_zero_length_subpacket_is_malformed() -> None:
    with pytest.raises(MalformedPacket, match="length 0") as exc:
        parse_subpackets(BodyReader(b"\x05\x02\x00\x00\x00\x01\x00", base=100), 7)
    assert exc.value.offset == 106


@pytest.mark.parametrize(("kind", "version"), [("ed25519", 4), ("ed25519", 6), ("rsa2048", 4)])
def test_sign_verify_round_trip_and_tamper(kind: str, version: int) -> None:
    cert = keygen.generate("S <s@example.org>", kind, version=version)
    priv = cert.secret.unlock().private  # type: ignore[union-attr]
    now = int(time.time())
    sig = Signature.create(
        cert.primary,
        priv,
        SignatureType.BINARY,
        b"data",
        [Subpacket(2, now.to_bytes(4, "big"))],
        hash_algorithm=HashAlgorithm.SHA256,
    )
    again = Signature.parse(next(iter_packets(sig.serialize())))
    assert again.body() == sig.body() and again.created == now and again.version == version
    again.verify(cert.primary, b"data")
    with pytest.raises(SignatureError):
        again.verify(cert.primary, b"datA")
    other = keygen.generate("O <o@example.org>", kind, version=version)
    assert not again.is_valid(other.primary, b"data")


def test_ecdsa_sign_verify_round_trip() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from engine.openpgp.constants import Curve, PublicKeyAlgorithm
    from engine.openpgp.public_key import ECDSAMaterial, PublicKey

    priv = ec.generate_private_key(ec.SECP384R1())
    point = priv.public_key().public_bytes(
        __import__("cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]).Encoding.X962,
        __import__(
            "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
        ).PublicFormat.UncompressedPoint,
    )
    key = PublicKey.build(PublicKeyAlgorithm.ECDSA, ECDSAMaterial(Curve.NIST_P384, point), int(time.time()))
    sig = Signature.create(
        key, priv, 0, b"m", [Subpacket(2, b"\x00\x00\x00\x05")], hash_algorithm=HashAlgorithm.SHA384
    )
    Signature.parse(next(iter_packets(sig.serialize()))).verify(key, b"m")
    assert not sig.is_valid(key, b"n")


def _gpg(home: Path, *args: str) -> bytes:
    cmd = [
        require_tool("gpg"),
        "--homedir",
        str(home),
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]
    return subprocess.run([*cmd, *args], capture_output=True, check=True).stdout


@pytest.mark.peer
@pytest.mark.parametrize("algo", ["ed25519", "rsa2048", "nistp256", "dsa2048"])
def test_verify_gpg_detached_signatures(gnupghome: Path, tmp_path: Path, algo: str) -> None:
    uid = f"V <{algo}@example.org>"
    _gpg(gnupghome, "--quick-gen-key", uid, algo, "sign", "never")
    cert = read_cert(_gpg(gnupghome, "--export", uid))
    doc = tmp_path / "doc.txt"
    doc.write_bytes(b"signed by gpg\n" * 100)
    for digest in ("SHA256", "SHA512"):
        sig_bytes = _gpg(gnupghome, "--digest-algo", digest, "--detach-sign", "-o", "-", str(doc))
        (pkt,) = iter_packets(sig_bytes)
        sig = Signature.parse(pkt)
        assert sig.issuer_fingerprint == cert.fingerprint and sig.issuer_key_id == cert.key_id
        sig.verify(cert.primary, doc.read_bytes())
        with pytest.raises(SignatureError):
            sig.verify(cert.primary, doc.read_bytes() + b"x")


@pytest.mark.peer
def test_gpg_verifies_our_signatures(gnupghome: Path, tmp_path: Path) -> None:
    for kind in ("ed25519", "rsa2048"):
        cert = keygen.generate(f"W <{kind}@example.org>", kind)
        (tmp_path / "k.pgp").write_bytes(keygen.export(cert, armor=False))
        _gpg(gnupghome, "--import", str(tmp_path / "k.pgp"))
        doc = tmp_path / "doc.bin"
        doc.write_bytes(hashlib.sha256(kind.encode()).digest() * 50)
        created = int(time.time())
        hashed = [Subpacket(2, created.to_bytes(4, "big")), Subpacket(33, b"\x04" + cert.fingerprint)]
        priv = cert.secret.unlock().private  # type: ignore[union-attr]
        sig = Signature.create(cert.primary, priv, SignatureType.BINARY, doc.read_bytes(), hashed)
        (tmp_path / "doc.sig").write_bytes(sig.serialize())
        status = subprocess.run(
            [
                require_tool("gpg"),
                "--homedir",
                str(gnupghome),
                "--batch",
                "--status-fd",
                "1",
                "--verify",
                str(tmp_path / "doc.sig"),
                str(doc),
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        assert f"VALIDSIG {cert.fingerprint_hex}" in status, status


def test_self_signature_accessors() -> None:
    cert = keygen.generate("A <a@example.org>", expires=86400)
    sig = cert.user_ids[0].self_signature()
    assert sig is not None and sig.type is SignatureType.POSITIVE_CERTIFICATION
    assert sig.key_expiration == 86400 and sig.primary_uid and sig.key_flags == 0x03
    assert sig.preferred_symmetric[0] == 9 and sig.features == 0x01
    assert cert.expires_at() == cert.primary.created + 86400
    assert not cert.valid_at(cert.primary.created + 86401) and cert.valid_at()
    binding = cert.subkeys[0].binding()
    assert (
        binding is not None and binding.key_flags == 0x0C and binding.issuer_fingerprint == cert.fingerprint
    )
    assert [p.tag for p in iter_packets(cert.serialize())] == [6, 13, 2, 14, 2]
    assert all(p.tag != PacketTag.SECRET_KEY for p in iter_packets(cert.serialize()))
