"""Certificates (transferable public / secret keys, RFC 9580 section 10.1) assembled from packets.

A :class:`Cert` verifies its self-signatures once when read: a User ID without a valid self-certification
is not valid, a subkey whose binding signature fails is not used. Validity at a time (creation, expiry,
revocation), key flags, Features and the encryption subkey are answered from the verified signatures.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from engine.armor import iter_dearmor
from engine.errors import MalformedPacket, UnsupportedError
from engine.openpgp.constants import Features, KeyFlags, PacketTag, RevocationReason, SignatureType
from engine.openpgp.packet import Packet, iter_packets
from engine.openpgp.public_key import PublicKey
from engine.openpgp.secret_key import SecretKey
from engine.openpgp.signature import Signature, binding_data, certification_data, key_data
from engine.openpgp.userid import UserID

T = SignatureType
_SOFT_REASONS = (RevocationReason.SUPERSEDED, RevocationReason.RETIRED, RevocationReason.USER_ID_INVALID)
_KEY_TAGS = (PacketTag.PUBLIC_KEY, PacketTag.SECRET_KEY)
_SUB_TAGS = (PacketTag.PUBLIC_SUBKEY, PacketTag.SECRET_SUBKEY)
_IGNORED_TAGS = (PacketTag.TRUST, PacketTag.MARKER, PacketTag.PADDING)


def _now(at: int | None) -> int:
    return int(time.time()) if at is None else at


def _newest_at(sigs: list[Signature], at: int) -> Signature | None:
    live = [s for s in sigs if s.created <= at and not s.expired_at(at)]
    return max(live, key=lambda s: s.created) if live else None


def _revoked_at(revocations: list[Signature], at: int) -> bool:
    """Hard revocations (compromise, no reason) apply always; soft ones from their creation time."""
    for s in revocations:
        reason = s.revocation_reason
        if reason is None or reason[0] not in _SOFT_REASONS or s.created <= at:
            return True
    return False


@dataclass(eq=False)
class UserIDEntry:
    """A User ID (or attribute) with all its signatures and its verified self-signatures."""

    uid: UserID
    signatures: list[Signature] = field(default_factory=list)
    self_signatures: list[Signature] = field(default_factory=list)
    revocations: list[Signature] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.uid.text

    @property
    def email(self) -> str | None:
        return self.uid.email

    def self_signature(self, at: int | None = None) -> Signature | None:
        """The newest valid self-certification in force at ``at``."""
        return _newest_at(self.self_signatures, _now(at))

    def valid_at(self, at: int | None = None) -> bool:
        at = _now(at)
        return self.self_signature(at) is not None and not _revoked_at(self.revocations, at)


@dataclass(eq=False)
class Subkey:
    """A subkey with its signatures; ``bindings`` hold only the verified binding signatures."""

    key: PublicKey
    secret: SecretKey | None = None
    signatures: list[Signature] = field(default_factory=list)
    bindings: list[Signature] = field(default_factory=list)
    revocations: list[Signature] = field(default_factory=list)
    backsig_ok: bool = False

    @property
    def created(self) -> int:
        return self.key.created

    def binding(self, at: int | None = None) -> Signature | None:
        return _newest_at(self.bindings, _now(at))

    def flags(self, at: int | None = None) -> KeyFlags:
        """Key flags from the binding; without a flags subpacket, what the algorithm can do."""
        sig = self.binding(at)
        if sig is None:
            return KeyFlags(0)
        raw = sig.key_flags
        if raw is None:
            algo = self.key.algorithm
            raw = (KeyFlags.encryption() if getattr(algo, "can_encrypt", False) else 0) | (
                KeyFlags.SIGN if getattr(algo, "can_sign", False) else 0
            )
        if not self.backsig_ok:  # a signing subkey needs its primary key binding (section 5.2.1)
            raw &= ~KeyFlags.SIGN
        return KeyFlags(raw & 0xFF)

    def expires_at(self, at: int | None = None) -> int | None:
        sig = self.binding(at)
        exp = sig.key_expiration if sig else None
        return self.key.created + exp if exp else None

    def valid_at(self, at: int | None = None) -> bool:
        at = _now(at)
        exp = self.expires_at(at)
        return (
            self.key.created <= at
            and self.binding(at) is not None
            and (exp is None or at < exp)
            and not _revoked_at(self.revocations, at)
        )


@dataclass(eq=False)
class Cert:
    """A certificate (or transferable secret key) and everything bound to it."""

    primary: PublicKey
    secret: SecretKey | None = None
    direct_signatures: list[Signature] = field(default_factory=list)
    revocations: list[Signature] = field(default_factory=list)
    other_signatures: list[Signature] = field(default_factory=list)
    user_ids: list[UserIDEntry] = field(default_factory=list)
    subkeys: list[Subkey] = field(default_factory=list)
    source: str | None = None

    fingerprint = property(lambda self: self.primary.fingerprint)
    key_id = property(lambda self: self.primary.key_id)
    fingerprint_hex = property(lambda self: self.primary.fingerprint_hex)
    version = property(lambda self: self.primary.version)

    @property
    def is_secret(self) -> bool:
        return self.secret is not None

    # -- the signature that speaks for the primary key ------------------------------------------
    def primary_user_id(self, at: int | None = None) -> UserIDEntry | None:
        """The valid User ID marked primary (newest self-sig wins), else the one with the newest self-sig."""
        at = _now(at)
        live = [(u, u.self_signature(at)) for u in self.user_ids if u.valid_at(at) and not u.uid.attribute]
        if not live:
            return None
        return max(live, key=lambda us: (us[1].primary_uid, us[1].created))[0]  # type: ignore[union-attr]

    def primary_signature(self, at: int | None = None) -> Signature | None:
        """Direct-key signature for v6 (or when no User ID), else the primary User ID's self-signature."""
        at = _now(at)
        direct = _newest_at(self.direct_signatures, at)
        uid = self.primary_user_id(at)
        uid_sig = uid.self_signature(at) if uid else None
        if self.primary.version == 6:
            return direct or uid_sig
        return uid_sig or direct

    def _attr(self, name: str, at: int | None) -> int | None:
        for sig in (self.primary_signature(at), _newest_at(self.direct_signatures, _now(at))):
            value = getattr(sig, name, None) if sig else None
            if value is not None:
                return value
        return None

    def key_flags(self, at: int | None = None) -> KeyFlags:
        return KeyFlags((self._attr("key_flags", at) or 0) & 0xFF)

    @property
    def features(self) -> Features:
        return Features((self._attr("features", None) or 0) & 0xFF)

    @property
    def supports_seipd_v2(self) -> bool:
        return bool(self.features & Features.SEIPD_V2)

    def preferred_symmetric(self) -> list[int]:
        sig = self.primary_signature()
        return sig.preferred_symmetric if sig else []

    def preferred_aead(self) -> list[tuple[int, int]]:
        sig = self.primary_signature()
        return sig.preferred_aead if sig else []

    def expires_at(self, at: int | None = None) -> int | None:
        exp = self._attr("key_expiration", at)
        return self.primary.created + exp if exp else None

    def is_revoked(self, at: int | None = None) -> bool:
        return _revoked_at(self.revocations, _now(at))

    def valid_at(self, at: int | None = None) -> bool:
        at = _now(at)
        exp = self.expires_at(at)
        return (
            self.primary.created <= at
            and self.primary_signature(at) is not None
            and (exp is None or at < exp)
            and not self.is_revoked(at)
        )

    # -- key selection -----------------------------------------------------------------------
    def encryption_subkeys(self, at: int | None = None) -> list[Subkey]:
        """Valid encryption-capable subkeys at ``at``, newest first."""
        at = _now(at)
        if not self.valid_at(at):
            return []
        found = [
            s
            for s in self.subkeys
            if s.valid_at(at)
            and s.flags(at) & KeyFlags.encryption()
            and getattr(s.key.algorithm, "can_encrypt", False)
        ]
        return sorted(found, key=lambda s: s.created, reverse=True)

    def encryption_subkey(self, at: int | None = None) -> PublicKey | None:
        """The key gpg encrypts to: newest valid encryption subkey, else an encryption-capable primary."""
        subs = self.encryption_subkeys(at)
        if subs:
            return subs[0].key
        if self.valid_at(at) and self.key_flags(at) & KeyFlags.encryption():
            return self.primary if getattr(self.primary.algorithm, "can_encrypt", False) else None
        return None

    def secret_keys(self) -> list[SecretKey]:
        """Every secret key packet present (primary first), stubs included."""
        keys = [self.secret] if self.secret else []
        return keys + [s.secret for s in self.subkeys if s.secret is not None]

    def secret_for(self, key_id_or_fpr: bytes) -> SecretKey | None:
        """The secret key whose key ID or fingerprint is ``key_id_or_fpr``."""
        for sk in self.secret_keys():
            if key_id_or_fpr in (sk.fingerprint, sk.key_id):
                return sk
        return None

    # -- output ------------------------------------------------------------------------------
    def serialize(self, secret: bool = False) -> bytes:
        """The certificate as packets (secret key packets when ``secret`` and present)."""
        out = [self.secret.serialize() if secret and self.secret else self.primary.serialize()]
        out += [s.serialize() for s in self.revocations + self.direct_signatures + self.other_signatures]
        for u in self.user_ids:
            out.append(u.uid.serialize())
            out += [s.serialize() for s in u.signatures]
        for sub in self.subkeys:
            out.append(sub.secret.serialize() if secret and sub.secret else sub.key.serialize())
            out += [s.serialize() for s in sub.signatures]
        return b"".join(out)

    def public(self) -> Cert:
        """The same certificate without secret key material."""
        subs = [
            Subkey(s.key, None, s.signatures, s.bindings, s.revocations, s.backsig_ok) for s in self.subkeys
        ]
        return Cert(
            self.primary,
            None,
            self.direct_signatures,
            self.revocations,
            self.other_signatures,
            self.user_ids,
            subs,
            self.source,
        )

    def _uid_index(self) -> dict[bytes, list[UserIDEntry]]:
        """User IDs by packet body and by ASCII-lowercased address, built once (rebuilt if ``user_ids`` grew)."""
        cached = self.__dict__.get("_index")
        if cached is not None and cached[0] == len(self.user_ids):
            return cached[1]
        index: dict[bytes, list[UserIDEntry]] = {}
        for u in self.user_ids:
            if u.uid.attribute:
                continue
            index.setdefault(b"=" + u.uid.data, []).append(u)
            if u.email is not None:
                index.setdefault(b"@" + u.email.encode("utf-8").lower(), []).append(u)
        self.__dict__["_index"] = (len(self.user_ids), index)
        return index

    def minimal(self, uid: str | bytes, at: int | None = None) -> bytes:
        """Primary key, its revocations and direct-key signatures, only ``uid`` (User ID text or email)
        with its newest valid self-signature, and valid subkeys with their newest binding (WKD).

        The User IDs are indexed once per certificate, so calling this for each of N User IDs is O(N).
        """
        at = _now(at)
        want = uid.encode("utf-8") if isinstance(uid, str) else uid
        index = self._uid_index()
        for key in (b"=" + want, b"@" + want.lower()):
            entry = next((u for u in index.get(key, ()) if u.valid_at(at)), None)
            if entry is not None:
                return self.minimal_for(entry, at)
        raise UnsupportedError(f"no valid User ID {want!r} on {self.fingerprint_hex}")

    def minimal_for(self, entry: UserIDEntry, at: int | None = None) -> bytes:
        """:meth:`minimal` for a User ID entry of this certificate the caller already chose."""
        at = _now(at)
        sig = entry.self_signature(at)
        if sig is None:
            raise UnsupportedError(f"no valid self-signature on {entry.text!r} of {self.fingerprint_hex}")
        out = [self.primary.serialize()]
        out += [s.serialize() for s in self.revocations]
        direct = _newest_at(self.direct_signatures, at)
        if direct:
            out.append(direct.serialize())
        out += [entry.uid.serialize(), sig.serialize()]
        for sub in self.subkeys:
            binding = sub.binding(at)
            if binding is not None and sub.valid_at(at):
                out += [sub.key.serialize(), binding.serialize()]
        return b"".join(out)

    def __repr__(self) -> str:
        uid = self.primary_user_id()
        return f"<Cert {self.fingerprint_hex} {uid.text if uid else '(no valid user id)'!r}>"


# -- assembly ------------------------------------------------------------------------------------
def _issued_by_primary(sig: Signature, primary: PublicKey) -> bool:
    fpr, kid = sig.issuer_fingerprint, sig.issuer_key_id
    if fpr is not None:
        return fpr == primary.fingerprint
    return kid is None or kid == primary.key_id


def _verified(sig: Signature, key: PublicKey, data: bytes) -> bool:
    return not sig.has_unknown_critical() and _issued_by_primary(sig, key) and sig.is_valid(key, data)


def _finish(cert: Cert) -> Cert:
    """Verify every self-signature once and sort them into their places."""
    p = cert.primary
    kd = key_data(p)
    for sig in list(cert.other_signatures):
        if sig.sig_type == T.DIRECT_KEY and _verified(sig, p, kd):
            cert.direct_signatures.append(sig)
            cert.other_signatures.remove(sig)
        elif sig.sig_type == T.KEY_REVOCATION and _verified(sig, p, kd):
            cert.revocations.append(sig)
            cert.other_signatures.remove(sig)
    for u in cert.user_ids:
        data = certification_data(p, u.uid.data, u.uid.attribute)
        for sig in u.signatures:
            t = sig.sig_type
            # A certification dated before the key is ignored, as gpg does ("signature older than key").
            if 0x10 <= t <= 0x13 and sig.created >= p.created and _verified(sig, p, data):
                u.self_signatures.append(sig)
            elif t == T.CERTIFICATION_REVOCATION and _verified(sig, p, data):
                u.revocations.append(sig)
    for sub in cert.subkeys:
        data = binding_data(p, sub.key)
        for sig in sub.signatures:
            if sig.sig_type == T.SUBKEY_BINDING and _verified(sig, p, data):
                sub.bindings.append(sig)
                sub.backsig_ok = sub.backsig_ok or any(
                    e.sig_type == T.PRIMARY_KEY_BINDING and e.is_valid(sub.key, data)
                    for e in sig.embedded_signatures()
                )
            elif sig.sig_type == T.SUBKEY_REVOCATION and _verified(sig, p, data):
                sub.revocations.append(sig)
    return cert


def certs_from_packets(packets: Iterator[Packet], source: str | None = None) -> Iterator[Cert]:
    """Group packets into certificates; a new primary key packet starts the next one."""
    cert: Cert | None = None
    target: list[Signature] | None = None
    for pkt in packets:
        tag = pkt.tag
        if tag in _IGNORED_TAGS:
            continue
        if tag in _KEY_TAGS:
            if cert is not None:
                yield _finish(cert)
            secret = SecretKey.parse(pkt) if tag == PacketTag.SECRET_KEY else None
            cert = Cert(secret.public if secret else PublicKey.parse(pkt), secret, source=source)
            target = cert.other_signatures
            continue
        if cert is None:
            raise MalformedPacket(f"packet tag {tag} before any primary key", pkt.offset, source)
        if tag == PacketTag.SIGNATURE:
            try:
                sig = Signature.parse(pkt)
            except UnsupportedError:
                continue  # unknown signature versions are ignored, as section 5.2 allows
            assert target is not None
            target.append(sig)
        elif tag in (PacketTag.USER_ID, PacketTag.USER_ATTRIBUTE):
            entry = UserIDEntry(UserID.parse(pkt))
            cert.user_ids.append(entry)
            target = entry.signatures
        elif tag in _SUB_TAGS:
            try:
                secret = SecretKey.parse(pkt) if tag == PacketTag.SECRET_SUBKEY else None
                sub = Subkey(secret.public if secret else PublicKey.parse(pkt), secret)
            except UnsupportedError:
                target = []  # an unknown subkey algorithm: skip it and its signatures
                continue
            cert.subkeys.append(sub)
            target = sub.signatures
        else:
            raise MalformedPacket(f"unexpected packet tag {tag} in a certificate", pkt.offset, source)
    if cert is not None:
        yield _finish(cert)


def _is_armored(data: bytes) -> bool:
    return data.lstrip()[:15] == b"-----BEGIN PGP "


def _dearmor_all(data: bytes, source: str | None) -> list[bytes]:
    """Every armored block's payload."""
    blocks = []
    for item in iter_dearmor(data):
        payload = item if isinstance(item, bytes | bytearray | memoryview) else getattr(item, "data", None)
        if payload is None and isinstance(item, tuple):
            payload = next(x for x in reversed(item) if isinstance(x, bytes | bytearray))
        blocks.append(bytes(payload))  # type: ignore[arg-type]
    return blocks


def read_certs(data: bytes, source: str | None = None) -> list[Cert]:
    """Every certificate in ``data``: binary or armored, one or many (keyrings), public or secret."""
    blobs = _dearmor_all(data, source) if _is_armored(data) else [data]
    out: list[Cert] = []
    for blob in blobs:
        out.extend(certs_from_packets(iter_packets(blob, source), source))
    return out


def read_cert(data: bytes, source: str | None = None) -> Cert:
    """Exactly one certificate; MalformedPacket otherwise."""
    certs = read_certs(data, source)
    if len(certs) != 1:
        raise MalformedPacket(f"expected one certificate, found {len(certs)}", source=source)
    return certs[0]
