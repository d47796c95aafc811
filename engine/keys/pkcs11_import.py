"""Storing private keys on a PKCS#11 token (tests and tools), with python-pkcs11's object creation.

The caller extracts the numbers from an OpenPGP secret key (``engine.openpgp.secret_key``); these
functions only write PKCS#11 objects that :class:`engine.keys.pkcs11.Pkcs11Key` can then use.
"""

from __future__ import annotations

from typing import Any

from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11e

from engine.errors import InvalidArgument, UnsupportedAlgorithm
from engine.keys.errors import TokenError
from engine.keys.pkcs11 import CURVES, OID_X25519, open_session
from engine.keys.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

NAMED_CURVES = {
    "nistp256": "06082a8648ce3d030107",
    "secp256r1": "06082a8648ce3d030107",
    "nistp384": "06052b81040022",
    "nistp521": "06052b81040023",
}


def _int_bytes(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _private_template(label: str, key_id: bytes, extractable: bool) -> dict[Any, Any]:
    return {
        Attribute.CLASS: ObjectClass.PRIVATE_KEY,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: not extractable,
        Attribute.EXTRACTABLE: extractable,
        Attribute.LABEL: label,
        Attribute.ID: key_id,
    }


def import_rsa_key(
    uri: str | Pkcs11Uri,
    n: int,
    e: int,
    d: int,
    p: int,
    q: int,
    *,
    label: str,
    key_id: bytes,
    module: str | None = None,
    extractable: bool = False,
) -> None:
    """Store an RSA private key (with its CRT values) on the token ``uri`` names."""
    attrs = _private_template(label, key_id, extractable) | {
        Attribute.KEY_TYPE: KeyType.RSA,
        Attribute.DECRYPT: True,
        Attribute.UNWRAP: False,
        Attribute.MODULUS: _int_bytes(n),
        Attribute.PUBLIC_EXPONENT: _int_bytes(e),
        Attribute.PRIVATE_EXPONENT: _int_bytes(d),
        Attribute.PRIME_1: _int_bytes(p),
        Attribute.PRIME_2: _int_bytes(q),
        Attribute.EXPONENT_1: _int_bytes(d % (p - 1)),
        Attribute.EXPONENT_2: _int_bytes(d % (q - 1)),
        Attribute.COEFFICIENT: _int_bytes(pow(q, -1, p)),
    }
    _create(uri, module, attrs)


def import_x25519_key(
    uri: str | Pkcs11Uri, secret: bytes, *, label: str, key_id: bytes, module: str | None = None
) -> None:
    """Store an X25519 private key (``secret`` in RFC 7748 byte order; see :func:`cv25519_secret`) as an
    EC_EDWARDS object with the curve25519 OID, which SoftHSM accepts for ECDH1_DERIVE."""
    if len(secret) != 32:
        raise InvalidArgument("an X25519 secret is 32 bytes")
    attrs = _private_template(label, key_id, False) | {
        Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
        Attribute.DERIVE: True,
        Attribute.EC_PARAMS: OID_X25519,
        Attribute.VALUE: bytes(secret),
    }
    _create(uri, module, attrs)


def import_ec_key(
    uri: str | Pkcs11Uri,
    curve: str,
    private_value: int,
    *,
    label: str,
    key_id: bytes,
    module: str | None = None,
) -> None:
    """Store a NIST-curve ECDH private key (``curve``: nistp256 / nistp384 / nistp521)."""
    oid = NAMED_CURVES.get(curve)
    if oid is None:
        raise UnsupportedAlgorithm(f"curve {curve!r}")
    length = CURVES[bytes.fromhex(oid)][1]
    attrs = _private_template(label, key_id, False) | {
        Attribute.KEY_TYPE: KeyType.EC,
        Attribute.DERIVE: True,
        Attribute.EC_PARAMS: bytes.fromhex(oid),
        Attribute.VALUE: private_value.to_bytes(length, "big"),
    }
    _create(uri, module, attrs)


def cv25519_secret(openpgp_mpi: bytes) -> bytes:
    """RFC 7748 byte order of an OpenPGP legacy Curve25519 secret: the MPI is big-endian, so reverse it."""
    return openpgp_mpi.rjust(32, b"\0")[::-1]


def _create(uri: str | Pkcs11Uri, module: str | None, attrs: dict[Any, Any]) -> None:
    parsed = uri if isinstance(uri, Pkcs11Uri) else parse_pkcs11_uri(uri)
    session = open_session(parsed, module)
    try:
        session.create_object(attrs)
    except p11e.PKCS11Error as exc:
        raise TokenError(f"cannot store key on {parsed}: {type(exc).__name__} {exc}") from exc
