"""Whole OpenPGP messages: encrypt, decrypt, session keys, re-wrap (RFC 9580 sections 10.3, 5.1, 5.13).

What we write (DESIGN.md): v3 PKESK + SEIPD v1 (AES-256 CFB + MDC) + literal data; SEIPD v2 (AES-OCB)
with v6 PKESKs only when every recipient advertises it in Features, or when the caller forces it.
No compression unless asked. Never SED (tag 9) or the LibrePGP OCB packet (tag 20).

Plaintext is released only after the MDC or final AEAD tag verified. :func:`decrypt` works on bytes in
memory; :func:`decrypt_stream` (``streaming``) handles inputs larger than memory with two passes over a
seekable source: the first verifies without keeping plaintext, the second releases it. A plaintext never
touches the disk through us.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.armor import armor as armor_bytes
from engine.armor import dearmor
from engine.errors import (
    DecryptionFailed,
    IntegrityError,
    InvalidArgument,
    MalformedPacket,
    NoMatchingKey,
    UnsupportedAlgorithm,
    UnsupportedError,
)
from engine.openpgp import seipd
from engine.openpgp.compressed import DecompressionLimit, decompress
from engine.openpgp.compressed import compress as compress_packet
from engine.openpgp.constants import (
    AEADAlgorithm,
    CompressionAlgorithm,
    PacketTag,
    PublicKeyAlgorithm,
    SymmetricAlgorithm,
)
from engine.openpgp.ecdh import RandomBytes
from engine.openpgp.literal import LiteralData, format_octet, literal_header
from engine.openpgp.packet import Packet, iter_packets, packet_header, write_packet
from engine.openpgp.pkesk import Pkesk, SessionKey, ecdh25519_batchable, ecdh25519_packets, pkesk_packet
from engine.openpgp.provider import KeyProvider
from engine.openpgp.recipients import Recipient, recipient_of, resolve_recipients
from engine.openpgp.recipients import choose_aead as _choose_aead
from engine.openpgp.symmetric import symmetric_algorithm

DEFAULT_MAX_OUTPUT = 1 << 30  # decompressed plaintext limit for in-memory decryption
_SKIPPABLE = frozenset((int(PacketTag.MARKER), int(PacketTag.PADDING)))
# Plain ints for the per-packet dispatch (an enum attribute lookup per comparison costs on 8 KiB mail).
_PKESK, _SKESK = int(PacketTag.PKESK), int(PacketTag.SKESK)
_DATA = frozenset((int(PacketTag.SEIPD), int(PacketTag.SED)))
_LITERAL, _COMPRESSED = int(PacketTag.LITERAL), int(PacketTag.COMPRESSED)
_SIGNATURES = frozenset((int(PacketTag.ONE_PASS_SIGNATURE), int(PacketTag.SIGNATURE)))
_SIXTY_FOUR_BIT = frozenset(
    {
        SymmetricAlgorithm.IDEA,
        SymmetricAlgorithm.TRIPLEDES,
        SymmetricAlgorithm.CAST5,
        SymmetricAlgorithm.BLOWFISH,
    }
)


@dataclass(frozen=True)
class DecryptResult:
    """Verified plaintext with what came with it. ``signatures`` are the one-pass signature and
    signature packets found around the literal data, kept unverified for the caller."""

    plaintext: bytes = field(repr=False)
    session_key: SessionKey
    literal: LiteralData  # metadata; its ``data`` is empty (the bytes are in ``plaintext``)
    signatures: tuple[Packet, ...] = ()
    cipher: SymmetricAlgorithm | None = None
    aead: AEADAlgorithm | None = None
    integrity: str = "mdc"  # "mdc", "aead" or "none" (legacy SED, opted in)


@dataclass(frozen=True)
class ParsedMessage:
    """The outer packets of an encrypted message: session key packets and the encrypted data packet."""

    pkesks: tuple[Pkesk, ...]
    others: tuple[Packet, ...]  # SKESK and marker packets before the data, kept for re-wrap
    data: Packet
    armored: bool

    @property
    def version(self) -> int:
        """0 for SED (tag 9), else the SEIPD version."""
        if self.data.tag == PacketTag.SED:
            return 0
        return self.data.body[0] if len(self.data.body) else -1


# --- input -------------------------------------------------------------------------------------------


def _binary(message: bytes | bytearray | memoryview) -> tuple[bytes | memoryview, bool]:
    head = bytes(message[:64]).lstrip()
    if head.startswith(b"-----BEGIN PGP"):
        return dearmor(bytes(message)).data, True
    return message if isinstance(message, bytes | memoryview) else bytes(message), False


def parse_message(message: bytes | bytearray | memoryview) -> ParsedMessage:
    """Split an encrypted message (armored or binary) into its PKESKs and its data packet."""
    data, armored = _binary(message)
    pkesks: list[Pkesk] = []
    others: list[Packet] = []
    body: Packet | None = None
    for pkt in iter_packets(data):
        tag = pkt.tag
        if body is not None:
            if tag in _SKIPPABLE:
                continue
            raise MalformedPacket(f"unexpected packet tag {tag} after the encrypted data", pkt.offset)
        if tag == _PKESK:
            try:
                pkesks.append(Pkesk.parse(pkt))
            except UnsupportedError:
                others.append(pkt)  # unknown version/algorithm: skip it as RFC 9580 section 10.3 allows
        elif tag == _SKESK or tag in _SKIPPABLE:
            others.append(pkt)
        elif tag in _DATA:
            body = pkt
        elif pkt.tag == PacketTag.OCB_ENCRYPTED:
            raise UnsupportedAlgorithm("LibrePGP OCB encrypted data (tag 20) is not supported")
        else:
            raise MalformedPacket(f"packet tag {pkt.tag} where an encrypted message was expected", pkt.offset)
    if body is None:
        raise MalformedPacket("no encrypted data packet in the message", len(data))
    return ParsedMessage(tuple(pkesks), tuple(others), body, armored)


def _as_parsed(message: bytes | bytearray | memoryview | ParsedMessage) -> ParsedMessage:
    return message if isinstance(message, ParsedMessage) else parse_message(message)


# --- session keys ------------------------------------------------------------------------------------


def decrypt_session_key(message: bytes | ParsedMessage, key_provider: KeyProvider) -> SessionKey:
    """The session key of ``message``: tries each PKESK addressed to the provider, then anonymous ones.

    NoMatchingKey when no PKESK is for us; DecryptionFailed when a matching one would not decrypt.
    """
    parsed = _as_parsed(message)
    ordered = [p for p in parsed.pkesks if not p.anonymous] + [p for p in parsed.pkesks if p.anonymous]
    failure: Exception | None = None
    for pkesk in ordered:
        try:
            sk = key_provider.decrypt_session_key(pkesk)
        except NoMatchingKey:
            continue
        except (DecryptionFailed, UnsupportedAlgorithm) as exc:
            failure = exc
            continue
        return _check_session_key(parsed, sk)
    if failure is not None:
        raise DecryptionFailed("no recipient session key could be decrypted") from None
    raise NoMatchingKey("none of the message's recipients is an available secret key")


def _check_session_key(parsed: ParsedMessage, sk: SessionKey) -> SessionKey:
    if parsed.version == 2:
        cipher = symmetric_algorithm(parsed.data.body[1]) if len(parsed.data.body) > 1 else None
        if cipher is None or len(sk.key) != cipher.key_size:
            raise DecryptionFailed("session key does not fit the SEIPD v2 cipher")
        return SessionKey(cipher, sk.key)
    if sk.algorithm is None:
        raise DecryptionFailed("a v6 PKESK cannot precede a SEIPD v1 or SED packet")
    symmetric_algorithm(sk.algorithm)
    return sk


# --- decrypt -----------------------------------------------------------------------------------------


def open_data(parsed: ParsedMessage, sk: SessionKey, allow_legacy_sed: bool = False) -> bytes:
    """Decrypt and verify the data packet; returns the inner packet stream."""
    body = parsed.data.body
    version = parsed.version
    try:
        if version == 1:  # no copy: the kernel reads the input buffer itself
            return seipd.open_v1(sk.key, sk.algorithm, body)  # type: ignore[arg-type]
        if version == 2:
            return seipd.open_v2(sk.key, bytes(body))
        if version == 0:
            if not allow_legacy_sed:
                raise IntegrityError("symmetrically encrypted data without integrity protection (tag 9)")
            return seipd.open_sed(sk.key, sk.algorithm, bytes(body))  # type: ignore[arg-type]
    except MalformedPacket as exc:
        raise MalformedPacket(exc.reason, parsed.data.body_offset + (exc.offset or 0)) from None
    raise UnsupportedError(f"SEIPD version {version}")


def decrypt(
    message: bytes | bytearray | memoryview | ParsedMessage,
    key_provider: KeyProvider | None = None,
    *,
    session_key: SessionKey | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    allow_legacy_sed: bool = False,
) -> DecryptResult:
    """Decrypt a whole message in memory; IntegrityError (and no plaintext) when verification fails.

    Either ``key_provider`` or a known ``session_key`` must be given. ``max_output`` bounds the
    decompressed size (a compression bomb raises DecompressionLimit).
    """
    parsed = _as_parsed(message)
    if session_key is not None:
        sk = _check_session_key(parsed, session_key)
    elif key_provider is not None:
        sk = decrypt_session_key(parsed, key_provider)
    else:
        raise InvalidArgument("decrypt needs a key provider or a session key")
    inner = open_data(parsed, sk, allow_legacy_sed)
    literal, sigs = unwrap_inner(inner, max_output)
    version = parsed.version
    aead = AEADAlgorithm(parsed.data.body[2]) if version == 2 else None
    integrity = {1: "mdc", 2: "aead"}.get(version, "none")
    meta = LiteralData(b"", literal.format, literal.filename, literal.date)
    return DecryptResult(literal.data, sk, meta, tuple(sigs), sk.algorithm, aead, integrity)


def unwrap_inner(inner: bytes, max_output: int, depth: int = 0) -> tuple[LiteralData, list[Packet]]:
    """Find the literal data in a decrypted packet stream (through compression), keeping signatures."""
    # Offsets in these errors count from the start of this (decrypted or decompressed) stream; the
    # source says which, so a byte number is never mistaken for one in the encrypted input.
    where = "decrypted data" if depth == 0 else f"decompressed data (level {depth})"
    if depth > 8:
        raise MalformedPacket("compressed data nested too deeply", 0, where)
    literal: LiteralData | None = None
    sigs: list[Packet] = []
    for pkt in iter_packets(inner, where):
        tag = pkt.tag
        if tag == _LITERAL:
            if literal is not None:
                raise MalformedPacket("more than one literal data packet", pkt.offset, where)
            if len(pkt.body) > max_output:
                raise DecompressionLimit(f"plaintext larger than max_output={max_output}", pkt.offset, where)
            literal = LiteralData.parse(pkt)
        elif tag == _COMPRESSED:
            if literal is not None:
                raise MalformedPacket("compressed data after the literal data", pkt.offset, where)
            literal, inner_sigs = unwrap_inner(decompress(pkt, max_output), max_output, depth + 1)
            sigs.extend(inner_sigs)
        elif tag in _SIGNATURES:
            sigs.append(Packet(tag, bytes(pkt.body), pkt.offset, pkt.header_len, pkt.length))
        elif tag in _SKIPPABLE:
            continue
        else:
            raise MalformedPacket(f"unexpected packet tag {pkt.tag} inside encrypted data", pkt.offset, where)
    if literal is None:
        raise MalformedPacket("encrypted data holds no literal data packet", len(inner), where)
    return literal, sigs


# --- encrypt -----------------------------------------------------------------------------------------


def session_key_packets(
    recipients: Iterable[Recipient],
    sk: SessionKey,
    version: int,
    anonymous: bool = False,
    pkesk_random: Callable[[Recipient], RandomBytes] | None = None,
) -> bytes:
    """Serialized PKESKs (v3 for SEIPD v1, v6 for SEIPD v2) of ``sk`` for every recipient.

    ``pkesk_random(recipient)`` gives the random source of that recipient's PKESK (default: os.urandom;
    :func:`engine.openpgp.derive.pkesk_randomness` for repeatable re-encryption)."""
    source = pkesk_random or _fresh_random
    return b"".join([pkesk_packet(r, sk, version, anonymous, source(r)) for r in recipients])


def _fresh_random(_recipient: Recipient) -> RandomBytes:
    return os.urandom


def _session_key(cipher: SymmetricAlgorithm, chosen: SessionKey | None, random_bytes: RandomBytes) -> SessionKey:
    """``chosen`` (checked to fit ``cipher``) with ``cipher`` set, or a fresh one from ``random_bytes``."""
    if chosen is None:
        return SessionKey(cipher, random_bytes(cipher.key_size))
    if chosen.algorithm not in (None, cipher) or len(chosen.key) != cipher.key_size:
        raise InvalidArgument(f"the session key does not fit {cipher.name}")
    return SessionKey(cipher, chosen.key)


def encrypt(
    plaintext: bytes,
    recipients: Sequence[Any],
    *,
    armor: bool = False,
    aead: bool | None = None,
    cipher: SymmetricAlgorithm = SymmetricAlgorithm.AES256,
    filename: bytes = b"",
    date: int = 0,
    compress: bool | CompressionAlgorithm = False,
    anonymous: bool = False,
    literal_format: str = "b",
    session_key: SessionKey | None = None,
    random_bytes: RandomBytes = os.urandom,
    pkesk_random: Callable[[Recipient], RandomBytes] | None = None,
) -> bytes:
    """Encrypt ``plaintext`` to ``recipients`` (certificates); see the module docstring for choices.

    ``literal_format`` is the literal data format octet: 'b' (binary), 't' or 'u' (UTF-8 text); the
    bytes are written unchanged either way. ``session_key``: use this key (its algorithm, if set, must
    be ``cipher``) instead of a fresh random one, e.g. to check the result in memory; never reuse one.
    ``random_bytes`` gives the session key (when not given) and the SEIPD v1 prefix / v2 salt;
    ``pkesk_random`` the PKESKs' randomness per recipient (see :func:`session_key_packets`). Both stay
    os.urandom except for a repeatable re-encryption (:mod:`engine.openpgp.derive`)."""
    if not recipients:
        raise InvalidArgument("encrypt needs at least one recipient")
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        from engine.openpgp.streaming import read_all

        plaintext = read_all(plaintext)
    rcpts = resolve_recipients(recipients)
    use_aead = _choose_aead(rcpts, aead)
    sk = _session_key(cipher, session_key, random_bytes)
    head = literal_header(format_octet(literal_format), filename, date)
    head = packet_header(PacketTag.LITERAL, len(head) + len(plaintext)) + head
    if compress:
        algo = CompressionAlgorithm.ZLIB if compress is True else CompressionAlgorithm(compress)
        head, plaintext = b"", compress_packet(head + bytes(plaintext), algo)
    if use_aead:
        out = session_key_packets(rcpts, sk, 6, anonymous, pkesk_random) + write_packet(
            PacketTag.SEIPD, seipd.seal_v2(sk.key, cipher, head + bytes(plaintext), random_bytes=random_bytes)
        )
    else:  # one pass and one output buffer: PKESKs, SEIPD header, then the body written in place
        size = 1 + cipher.block_size + 2 + len(head) + len(plaintext) + 22
        lead = session_key_packets(rcpts, sk, 3, anonymous, pkesk_random) + packet_header(PacketTag.SEIPD, size)
        out = seipd.seal_v1(sk.key, cipher, plaintext, head, lead, random_bytes)
    if armor:
        return armor_bytes(out)
    return out


def encrypt_many(
    plaintexts: Sequence[bytes],
    recipients: Sequence[Any],
    *,
    armor: bool = False,
    aead: bool | None = None,
    cipher: SymmetricAlgorithm = SymmetricAlgorithm.AES256,
    session_keys: Sequence[SessionKey] | None = None,
) -> list[bytes]:
    """``[encrypt(p, recipients, armor=armor, aead=aead, cipher=cipher) for p in plaintexts]``, faster.

    Each message gets its own session key, PKESKs and prefix, as with :func:`encrypt` (binary literal
    data, no file name, no compression). SEIPD v1 with AES, the usual case for mail, runs the
    messages' CFB chains side by side in the native kernel (:func:`seipd.seal_v1_many`).
    ``session_keys``: one per message, chosen by the caller (e.g. to check each result in memory),
    as ``encrypt``'s ``session_key``; never reuse one."""
    rcpts = resolve_recipients(recipients)
    keys: Sequence[SessionKey | None] = [None] * len(plaintexts) if session_keys is None else session_keys
    if len(keys) != len(plaintexts):
        raise InvalidArgument("encrypt_many needs one session key per plaintext")
    if _choose_aead(rcpts, aead) or not cipher.is_aes:
        return [
            encrypt(p, rcpts, armor=armor, aead=aead, cipher=cipher, session_key=k)
            for p, k in zip(plaintexts, keys, strict=True)
        ]
    literal = literal_header(format_octet("b"), b"", 0)
    batched = bool(rcpts) and all(ecdh25519_batchable(r) for r in rcpts)
    items, session_keys, secrets = [], [], []
    for plaintext, chosen in zip(plaintexts, keys, strict=True):
        sk = _session_key(cipher, chosen, os.urandom)
        # drawn in encrypt's order: session key, each PKESK's ephemeral secret, SEIPD prefix
        if batched:  # the PKESKs of the whole batch are built below, one kernel call per recipient
            secrets.append([os.urandom(32) for _ in rcpts])
            pkesks = b""
        else:
            pkesks = session_key_packets(rcpts, sk, 3)
        head = packet_header(PacketTag.LITERAL, len(literal) + len(plaintext)) + literal
        size = 1 + cipher.block_size + 2 + len(head) + len(plaintext) + 22  # as in encrypt
        lead = pkesks + packet_header(PacketTag.SEIPD, size)
        session_keys.append(sk.key)
        items.append((sk.key, cipher, plaintext, head, lead, os.urandom(cipher.block_size)))
    if batched:
        columns = [
            ecdh25519_packets(r, session_keys, cipher, [s[j] for s in secrets]) for j, r in enumerate(rcpts)
        ]
        for i, pkesks in enumerate(zip(*columns, strict=True)):
            key, _, plaintext, head, lead, prefix = items[i]
            items[i] = (key, cipher, plaintext, head, b"".join(pkesks) + lead, prefix)
    sealed = seipd.seal_v1_many(items)
    return [armor_bytes(out, crc=True) for out in sealed] if armor else sealed


# --- re-wrap -----------------------------------------------------------------------------------------


def rewrap(
    message: bytes | ParsedMessage,
    session_key: SessionKey,
    new_recipients: Sequence[Any],
    *,
    armor: bool | None = None,
    keep_skesk: bool = True,
    deterministic: bool = False,
) -> bytes:
    """The same message for ``new_recipients``: new PKESKs, the encrypted data packet byte for byte.

    The old PKESKs are dropped; SKESK and marker packets are kept unless ``keep_skesk`` is false. For
    SEIPD v1 the session key is checked against the prefix's repeated octets (one block of work; a
    wrong key passes with probability 2**-16); a SEIPD v2 session key is only checked for its size.
    ``armor`` None keeps the input's form. Check :func:`needs_full_reencryption` first.
    ``deterministic``: derive every random value of the new PKESKs from the session key
    (:func:`engine.openpgp.derive.pkesk_randomness`), so the same input always gives the same bytes.
    """
    parsed = _as_parsed(message)
    if not new_recipients:
        raise InvalidArgument("rewrap needs at least one recipient")
    sk = _check_session_key(parsed, session_key)
    if parsed.version == 1 and not seipd.quick_check_v1(sk.key, sk.algorithm, parsed.data.body):  # type: ignore[arg-type]
        raise DecryptionFailed("session key does not fit the encrypted data (quick check)")
    version = 6 if parsed.version == 2 else 3
    rand = None
    if deterministic:
        from engine.openpgp.derive import pkesk_randomness

        rand = pkesk_randomness(sk)
    pkesks = session_key_packets((recipient_of(c) for c in new_recipients), sk, version, pkesk_random=rand)
    kept = b"".join(bytes(p.raw) for p in parsed.others if keep_skesk or p.tag != PacketTag.SKESK)
    out = pkesks + kept + bytes(parsed.data.raw)
    if armor if armor is not None else parsed.armored:
        return armor_bytes(out)
    return out


def needs_full_reencryption(
    message: bytes | ParsedMessage,
    session_key: SessionKey | None = None,
    new_recipients: Sequence[Any] = (),
) -> str | None:
    """Why a re-wrap would keep a weak container, or None when re-wrapping is fine.

    Reasons: no MDC (SED), a 64-bit block cipher, an X25519/X448 recipient with a non-AES cipher. The
    cipher of a SEIPD v1 packet is only known from its session key: pass ``session_key`` for that check.
    """
    parsed = _as_parsed(message)
    if parsed.version == 0:
        return "no integrity protection: symmetrically encrypted data (tag 9) without MDC"
    cipher: int | None = None
    if parsed.version == 2 and len(parsed.data.body) > 1:
        cipher = parsed.data.body[1]
    elif session_key is not None:
        cipher = session_key.algorithm
    if cipher is None:
        return None
    if cipher in _SIXTY_FOUR_BIT:
        return f"64-bit block cipher {SymmetricAlgorithm(cipher).name}"
    if not SymmetricAlgorithm(cipher).is_aes and parsed.version == 1:
        for c in new_recipients:
            if recipient_of(c).algorithm in (PublicKeyAlgorithm.X25519, PublicKeyAlgorithm.X448):
                return (
                    f"X25519/X448 recipients require AES, the message uses {SymmetricAlgorithm(cipher).name}"
                )
    return None
