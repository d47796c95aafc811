"""In-process OpenPGP (RFC 9580): packets, keys, signatures. Thin export list; see the modules."""

from engine.openpgp.constants import (
    AEADAlgorithm,
    CompressionAlgorithm,
    Curve,
    Features,
    HashAlgorithm,
    KeyFlags,
    PacketTag,
    PublicKeyAlgorithm,
    S2KType,
    S2KUsage,
    SignatureType,
    SymmetricAlgorithm,
)
from engine.openpgp.keys import Cert, read_cert, read_certs
from engine.openpgp.packet import Packet, PacketWriter, iter_packets, iter_packets_stream, write_packet
from engine.openpgp.public_key import PublicKey
from engine.openpgp.secret_key import SecretKey, UnlockedKey, WrongPassphrase

__all__ = [
    "AEADAlgorithm",
    "Cert",
    "CompressionAlgorithm",
    "Curve",
    "Features",
    "HashAlgorithm",
    "KeyFlags",
    "Packet",
    "PacketTag",
    "PacketWriter",
    "PublicKey",
    "PublicKeyAlgorithm",
    "S2KType",
    "S2KUsage",
    "SecretKey",
    "SignatureType",
    "SymmetricAlgorithm",
    "UnlockedKey",
    "WrongPassphrase",
    "iter_packets",
    "iter_packets_stream",
    "read_cert",
    "read_certs",
    "write_packet",
]
