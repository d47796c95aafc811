"""Constant-memory message encryption and decryption over file objects.

:func:`encrypt_stream` pipes ``src`` through literal data -> (compression) -> SEIPD, every layer written
with partial body lengths, 1 MiB at a time.

:func:`decrypt_stream` must not release plaintext before the MDC / final AEAD tag verified, yet cannot
hold a large plaintext in memory, and must not park it on disk. So, for a data packet larger than
``memory_limit``, it reads a **seekable** source twice: pass one decrypts and verifies, discarding the
plaintext (and hashing the ciphertext); pass two decrypts again and streams the literal data to ``dst``,
then re-checks the integrity and ciphertext hash (the source must not change in between; if it does,
IntegrityError is raised at the end). Smaller packets are verified and released from memory in one pass.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import zlib
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from engine.errors import (
    IntegrityError,
    InvalidArgument,
    MalformedPacket,
    UnsupportedAlgorithm,
    UnsupportedError,
)
from engine.openpgp import seipd
from engine.openpgp.compressed import DecompressionLimit
from engine.openpgp.constants import AEADAlgorithm, CompressionAlgorithm, PacketTag, SymmetricAlgorithm
from engine.openpgp.literal import LiteralData, format_octet, literal_header
from engine.openpgp.message import (
    DecryptResult,
    ParsedMessage,
    _check_session_key,
    _choose_aead,
    decrypt_session_key,
    resolve_recipients,
    session_key_packets,
    unwrap_inner,
)
from engine.openpgp.packet import Packet, PacketWriter, StreamPacket, iter_packets_stream, packet_header
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.provider import KeyProvider

BUFFER = 1 << 20
DEFAULT_MEMORY_LIMIT = 64 << 20


def read_all(src: Any) -> bytes:
    """All bytes of a file object."""
    return b"".join(iter(lambda: src.read(BUFFER), b""))


class _Sink:
    """A write-only file object that transforms each write and passes it on."""

    def __init__(self, dst: Any, transform: Callable[[bytes], bytes]) -> None:
        self._dst, self._t = dst, transform

    def write(self, data: bytes) -> int:
        out = self._t(bytes(data))
        if out:
            self._dst.write(out)
        return len(data)


# --- encrypt -----------------------------------------------------------------------------------------


def encrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    recipients: Sequence[Any],
    *,
    aead: bool | None = None,
    cipher: SymmetricAlgorithm = SymmetricAlgorithm.AES256,
    filename: bytes = b"",
    date: int = 0,
    compress: bool | CompressionAlgorithm = False,
    armor: bool = False,
    literal_format: str = "b",
) -> None:
    """Encrypt ``src`` to ``recipients`` into ``dst`` in constant memory; same choices as
    :func:`engine.openpgp.message.encrypt`. ``armor`` streams through ``engine.armor.ArmorWriter``."""
    if not recipients:
        raise InvalidArgument("encrypt needs at least one recipient")
    fmt = format_octet(literal_format)
    if armor:
        from engine.armor import ArmorWriter

        rcpts = resolve_recipients(recipients)  # once: Recipient objects pass through the call below
        with ArmorWriter(dst, "MESSAGE", crc=not _choose_aead(rcpts, aead)) as writer:  # RFC 9580 6.1
            encrypt_stream(
                src,
                writer,
                rcpts,
                aead=aead,
                cipher=cipher,
                filename=filename,
                date=date,
                compress=compress,
                literal_format=literal_format,
            )  # type: ignore[arg-type]
        return
    rcpts = resolve_recipients(recipients)
    use_aead = _choose_aead(rcpts, aead)
    sk = SessionKey(cipher, os.urandom(cipher.key_size))
    dst.write(session_key_packets(rcpts, sk, 6 if use_aead else 3))
    size = None if use_aead or compress or not cipher.is_aes else _known_size(src)
    if size is not None:
        _write_v1_sized(src, dst, size, sk, literal_header(fmt, filename, date))
        return
    outer = PacketWriter(dst, PacketTag.SEIPD, BUFFER)
    enc: seipd.V1Encryptor | seipd.V2Encryptor
    enc = seipd.V2Encryptor(sk.key, cipher) if use_aead else seipd.V1Encryptor(sk.key, cipher)
    outer.write(enc.header())
    sink: Any = _Sink(outer, enc.update)
    comp_writer = None
    if compress:
        algo = CompressionAlgorithm.ZLIB if compress is True else CompressionAlgorithm(compress)
        if algo not in (CompressionAlgorithm.ZIP, CompressionAlgorithm.ZLIB):
            raise InvalidArgument("streaming compression supports ZIP and ZLIB")
        comp_writer = PacketWriter(sink, PacketTag.COMPRESSED, BUFFER)
        comp_writer.write(bytes((algo,)))
        co = zlib.compressobj(6, zlib.DEFLATED, -15 if algo == CompressionAlgorithm.ZIP else zlib.MAX_WBITS)
        sink = _Sink(comp_writer, co.compress)
    lit = PacketWriter(sink, PacketTag.LITERAL, BUFFER)  # type: ignore[arg-type]
    lit.write(literal_header(fmt, filename, date))
    for piece in iter(lambda: src.read(BUFFER), b""):
        lit.write(piece)
    lit.close()
    if comp_writer is not None:
        comp_writer.write(co.flush())
        comp_writer.close()
    outer.write(enc.finalize())
    outer.close()


def _known_size(src: Any) -> int | None:
    """Octets left in a regular file or BytesIO; None when the size cannot be known in advance."""
    try:
        if isinstance(src, io.BytesIO):
            return len(src.getbuffer()) - src.tell()
        st = os.fstat(src.fileno())
        if stat.S_ISREG(st.st_mode) and hasattr(src, "readinto"):
            return st.st_size - src.tell()
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _write_v1_sized(src: Any, dst: Any, size: int, sk: SessionKey, head: bytes) -> None:
    """SEIPD v1 with definite lengths for an input of known ``size``: no partial-length framing, one
    buffer read into and encrypted in place (SHA-1 and CFB in one pass), nothing allocated per piece."""
    assert sk.algorithm is not None
    lit = packet_header(PacketTag.LITERAL, len(head) + size) + head
    enc = seipd.V1Encryptor(sk.key, sk.algorithm)
    body_len = 1 + sk.algorithm.block_size + 2 + len(lit) + size + 22
    dst.write(packet_header(PacketTag.SEIPD, body_len) + enc.header() + enc.update(lit))
    reuse = isinstance(dst, io.IOBase)  # writes that copy at once; anything else gets its own bytes
    view = memoryview(bytearray(min(size, BUFFER) or 1))
    left = size
    while left:
        n = src.readinto(view[: min(left, BUFFER)])
        if not n:
            raise InvalidArgument(f"the input ended {left} octets before its size when encryption began")
        piece = view[:n]
        enc.update_into(piece, piece)
        dst.write(piece if reuse else bytes(piece))
        left -= n
    if src.read(1):
        raise InvalidArgument("the input grew while it was being encrypted")
    dst.write(enc.finalize())


# --- decrypt -----------------------------------------------------------------------------------------


def _outer(src: BinaryIO) -> tuple[list[Pkesk], list[Packet], StreamPacket]:
    pkesks, others = [], []
    end = 0
    for sp in iter_packets_stream(src):
        if sp.tag in (PacketTag.SEIPD, PacketTag.SED):
            return pkesks, others, sp
        body = sp.read_all(limit=1 << 16)
        pkt = Packet(sp.tag, body, sp.offset, sp.header_len, sp.header_len + len(body))
        end = sp.offset + pkt.length
        if sp.tag == PacketTag.PKESK:
            try:
                pkesks.append(Pkesk.parse(pkt))
            except UnsupportedError:
                others.append(pkt)  # unknown version/algorithm: skipped as parse_message does (RFC 9580 10.3)
        elif sp.tag == PacketTag.OCB_ENCRYPTED:
            raise UnsupportedAlgorithm("LibrePGP OCB encrypted data (tag 20) is not supported")
        elif sp.tag in (PacketTag.SKESK, PacketTag.MARKER, PacketTag.PADDING):
            others.append(pkt)
        else:
            raise MalformedPacket(f"packet tag {sp.tag} where an encrypted message was expected", sp.offset)
    raise MalformedPacket("no encrypted data packet in the message", end)


def _decryptor(sp: StreamPacket, sk: SessionKey, head: bytes) -> tuple[Any, int]:
    if sp.tag == PacketTag.SED or not head or head[0] not in (1, 2):
        raise IntegrityError("only SEIPD v1/v2 is streamed; legacy SED is refused")
    if head[0] == 1:
        dec: Any = seipd.V1Decryptor(sk.key, sk.algorithm)  # type: ignore[arg-type]
    else:
        dec = seipd.V2Decryptor(sk.key)
    dec.update(head)
    return dec, head[0]


def _pump(sp: StreamPacket, dec: Any, out: Callable[[bytes], None], digest: Any) -> None:
    for piece in iter(lambda: sp.read(BUFFER), b""):
        digest.update(piece)
        plain = dec.update(piece)
        if plain:
            out(plain)
    tail = dec.finalize()
    if tail:
        out(tail)


def decrypt_stream(
    src: BinaryIO,
    dst: BinaryIO,
    key_provider: KeyProvider | None = None,
    *,
    session_key: SessionKey | None = None,
    max_output: int | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> DecryptResult:
    """Decrypt a binary message from ``src`` and write its literal data to ``dst`` only once verified.

    Returns a DecryptResult whose ``plaintext`` is empty (the bytes went to ``dst``). Inputs whose data
    packet exceeds ``memory_limit`` need a seekable ``src`` (two passes, see the module docstring).
    """
    start = src.tell() if src.seekable() else 0
    pkesks, others, sp = _outer(src)
    data_offset = start + sp.offset
    head = sp.read(2)
    parsed = ParsedMessage(tuple(pkesks), tuple(others), Packet(sp.tag, head, sp.offset), False)
    if session_key is None:
        if key_provider is None:
            raise InvalidArgument("decrypt needs a key provider or a session key")
        session_key = decrypt_session_key(parsed, key_provider)
    else:
        session_key = _check_session_key(parsed, session_key)
    dec, version = _decryptor(sp, session_key, head)
    limit = max_output if max_output is not None else 1 << 62
    # Pass one: verify; keep the plaintext only while it fits the memory limit.
    kept: list[bytes] | None = []
    size = 0

    def keep(plain: bytes) -> None:
        nonlocal kept, size
        size += len(plain)
        if kept is not None:
            kept.append(plain)
            if size > memory_limit:
                kept = None

    first_hash = hashlib.sha256()
    _pump(sp, dec, keep, first_hash)
    sk = SessionKey(dec.cipher, session_key.key) if version == 2 else session_key
    aead = dec.aead if version == 2 else None
    if kept is not None:
        literal, sigs = unwrap_inner(b"".join(kept), limit)
        dst.write(literal.data)
        return _result(literal, sigs, sk, version, aead)
    if not src.seekable():
        raise InvalidArgument(f"message larger than memory_limit={memory_limit} needs a seekable source")
    # Pass two: decrypt again and stream the literal data out.
    src.seek(data_offset)
    sp2 = next(iter(iter_packets_stream(src)))
    dec2, _ = _decryptor(sp2, session_key, sp2.read(2))
    plain = _PlainReader(sp2, dec2)
    literal, sigs = _stream_inner(plain, dst, limit, 0)
    if plain.digest.digest() != first_hash.digest():
        raise IntegrityError("the message changed between the two decryption passes")
    return _result(literal, sigs, sk, version, aead)


def _result(
    literal: LiteralData, sigs: list[Packet], sk: SessionKey, version: int, aead: Any
) -> DecryptResult:
    meta = LiteralData(b"", literal.format, literal.filename, literal.date)
    integrity = "aead" if version == 2 else "mdc"
    return DecryptResult(
        b"", sk, meta, tuple(sigs), sk.algorithm, AEADAlgorithm(aead) if aead else None, integrity
    )


class _PlainReader:
    """A readable file object over decrypted data (pulls ciphertext, pushes it through ``dec``)."""

    def __init__(self, sp: StreamPacket, dec: Any) -> None:
        self._sp, self._dec = sp, dec
        self._buf = bytearray()
        self._eof = False
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            piece = self._sp.read(BUFFER)
            if piece:
                self.digest.update(piece)
                self._buf += self._dec.update(piece)
            else:
                self._buf += self._dec.finalize() or b""
                self._eof = True
        n = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class _InflateReader:
    """A readable file object over the decompressed body of a compressed data packet, bounded."""

    def __init__(self, sp: StreamPacket, limit: int) -> None:
        algo = sp.read(1)
        if not algo or algo[0] not in (CompressionAlgorithm.ZIP, CompressionAlgorithm.ZLIB):
            raise MalformedPacket("streamed decryption reads ZIP/ZLIB compression only", sp.offset)
        self._sp = sp
        self._d = zlib.decompressobj(-15 if algo[0] == CompressionAlgorithm.ZIP else zlib.MAX_WBITS)
        self._limit, self._total = limit, 0

    def read(self, n: int = -1) -> bytes:
        if n == 0:  # zlib's max_length 0 would mean "unlimited"
            return b""
        n = BUFFER if n < 0 else n
        out = b""
        while not out and not self._d.eof:
            data = self._d.unconsumed_tail or self._sp.read(BUFFER)
            if not data:
                out = self._d.flush()
                break
            try:
                out = self._d.decompress(data, n)
            except zlib.error as exc:
                raise MalformedPacket(f"corrupt compressed data: {exc}", self._sp.offset) from None
        self._total += len(out)
        if self._total > self._limit:
            raise DecompressionLimit(f"decompressed data exceeds {self._limit} octets", self._sp.offset)
        return out


def _stream_inner(src: Any, dst: BinaryIO, limit: int, depth: int) -> tuple[LiteralData, list[Packet]]:
    literal: LiteralData | None = None
    sigs: list[Packet] = []
    for sp in iter_packets_stream(src):
        if sp.tag == PacketTag.LITERAL and literal is None:
            head = sp.read(2)
            if len(head) < 2:
                raise MalformedPacket("truncated literal data header", sp.offset)
            rest = sp.read(head[1] + 4)
            if len(rest) < head[1] + 4:
                raise MalformedPacket("truncated literal data header", sp.offset)
            literal = LiteralData(b"", head[0], rest[:-4], int.from_bytes(rest[-4:], "big"))
            written = 0
            while piece := sp.read(BUFFER):
                written += len(piece)
                if written > limit:
                    raise DecompressionLimit(f"plaintext larger than max_output={limit}", sp.offset)
                dst.write(piece)
        elif sp.tag == PacketTag.COMPRESSED and literal is None and depth < 8:
            literal, inner = _stream_inner(_InflateReader(sp, limit), dst, limit, depth + 1)
            sigs += inner
        elif sp.tag in (PacketTag.ONE_PASS_SIGNATURE, PacketTag.SIGNATURE):
            body = sp.read_all(limit=1 << 20)
            sigs.append(Packet(sp.tag, body, sp.offset, sp.header_len, sp.header_len + len(body)))
        elif sp.tag not in (PacketTag.MARKER, PacketTag.PADDING):
            raise MalformedPacket(f"unexpected packet tag {sp.tag} inside encrypted data", sp.offset)
    if literal is None:  # offset 0: the start of the decrypted (or decompressed) packet stream
        raise MalformedPacket("encrypted data holds no literal data packet", 0)
    return literal, sigs
