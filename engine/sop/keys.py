"""Keys and certificates for the SOP commands: generation profiles, reading CERTS and KEYS, unlocking."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import StructuralError, UnsupportedError, UnusableKey
from engine.openpgp.constants import SignatureType
from engine.openpgp.keygen import generate
from engine.openpgp.keys import Cert, read_cert, read_certs
from engine.openpgp.secret_key import UnlockedKey
from engine.openpgp.signature import Signature, certification_data, key_data
from engine.openpgp.userid import UserID
from engine.sop.errors import BAD_DATA, UNSUPPORTED_PROFILE, SopError
from engine.sop.io import password_candidates

# name -> (keygen kind, key version, description); the first is the default.
PROFILES: dict[str, tuple[str, int, str]] = {
    "default": ("ed25519", 4, "v4 Ed25519 (legacy EdDSA) + Cv25519 ECDH; what gpg 2.2 and every peer read"),
    "rfc4880": ("rsa3072", 4, "v4 RSA-3072 + RSA-3072 (RFC 4880 algorithms only)"),
    "rfc9580": ("ed25519", 6, "v6 Ed25519 + X25519, SEIPD v2 (AES-256-OCB) advertised; not for gpg 2.2"),
    "rsa2048": ("rsa2048", 4, "v4 RSA-2048 + RSA-2048"),
    "rsa3072": ("rsa3072", 4, "v4 RSA-3072 + RSA-3072"),
    "rsa4096": ("rsa4096", 4, "v4 RSA-4096 + RSA-4096"),
}
_PRIMARY_UID = 25  # subpacket type: Primary User ID


def generate_key(user_ids: list[str], profile: str = "default", password: bytes | None = None) -> Cert:
    """A new secret key with exactly ``user_ids`` (none is allowed: properties then sit on a direct-key
    signature), protected with ``password`` when given."""
    if profile not in PROFILES:
        raise SopError(UNSUPPORTED_PROFILE, f"unknown generate-key profile {profile!r}")
    kind, version, _ = PROFILES[profile]
    first = user_ids[0] if user_ids else "placeholder"
    cert = generate(first, kind=kind, version=version, passphrase=password)
    if len(user_ids) == 1:
        return cert
    return _with_user_ids(cert, [u.encode("utf-8") for u in user_ids], password)


def _with_user_ids(cert: Cert, uids: list[bytes], password: bytes | None) -> Cert:
    """The same key with the User IDs replaced by ``uids``, each certified with the first one's
    properties (only the first marked primary)."""
    assert cert.secret is not None
    primary = cert.primary
    private = cert.secret.unlock(password).private
    template = cert.user_ids[0].self_signatures[0]
    base = [s for s in template.hashed if s.type != _PRIMARY_UID]
    out = [cert.secret.serialize()]
    out += [s.serialize() for s in cert.direct_signatures]
    if not uids and not cert.direct_signatures:
        direct = Signature.create(primary, private, SignatureType.DIRECT_KEY, key_data(primary), base)
        out.append(direct.serialize())
    for i, uid in enumerate(uids):
        hashed = list(template.hashed) if i == 0 else base
        data = certification_data(primary, uid)
        sig = Signature.create(primary, private, SignatureType.POSITIVE_CERTIFICATION, data, hashed)
        out += [UserID(uid).serialize(), sig.serialize()]
    for sub in cert.subkeys:
        assert sub.secret is not None
        out.append(sub.secret.serialize())
        out += [s.serialize() for s in sub.signatures]
    return read_cert(b"".join(out), source="sop generate-key")


def _read(data: bytes, what: str, name: str) -> list[Cert]:
    try:
        certs = read_certs(data, source=name)
    except (StructuralError, UnsupportedError) as exc:
        raise SopError(BAD_DATA, f"{name}: not an OpenPGP {what}: {exc}") from None
    if not certs:
        raise SopError(BAD_DATA, f"{name}: no OpenPGP {what} found")
    return certs


def read_cert_args(data: bytes, name: str) -> list[Cert]:
    """Certificates from one CERTS argument; a secret key there is BAD_DATA."""
    certs = _read(data, "certificate", name)
    if any(c.is_secret for c in certs):
        raise SopError(BAD_DATA, f"{name}: a secret key where a certificate was expected")
    return certs


def read_key_args(data: bytes, name: str) -> list[Cert]:
    """Secret keys from one KEYS argument; a certificate there is BAD_DATA."""
    keys = _read(data, "secret key", name)
    if not all(k.is_secret for k in keys):
        raise SopError(BAD_DATA, f"{name}: a certificate where a secret key was expected")
    return keys


@dataclass
class UnlockResult:
    """Decryption keys ready for use, and how many secret keys no password opened."""

    unlocked: list[UnlockedKey] = field(default_factory=list)
    locked: int = 0


def unlock_keys(keys: list[Cert], passwords: list[bytes]) -> UnlockResult:
    """Unlock every encryption-capable secret (sub)key with the first password that fits."""
    result = UnlockResult()
    candidates = [p for raw in passwords for p in password_candidates(raw)]
    for cert in keys:
        for secret in cert.secret_keys():
            if not secret.has_secret or not getattr(secret.public.algorithm, "can_encrypt", False):
                continue
            if not secret.is_protected:
                result.unlocked.append(secret.unlock())
                continue
            for pw in candidates:
                try:
                    result.unlocked.append(secret.unlock(pw))
                    break
                except UnusableKey:
                    continue
            else:
                result.locked += 1
    return result
