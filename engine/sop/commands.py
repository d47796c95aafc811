"""The SOP subcommands pgpbulk implements, each a function of parsed arguments and binary streams."""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import platform
import shutil
import tempfile
from typing import Any, BinaryIO, cast

import engine
from engine.armor import ArmorReader, ArmorWriter, armor
from engine.errors import DecryptionFailed, IntegrityError, NoMatchingKey
from engine.openpgp.constants import SymmetricAlgorithm
from engine.openpgp.pkesk import SessionKey
from engine.openpgp.provider import InProcessKeyProvider
from engine.openpgp.streaming import decrypt_stream, encrypt_stream
from engine.sop import keys as sopkeys
from engine.sop.errors import (
    BAD_DATA,
    CANNOT_DECRYPT,
    EXPECTED_TEXT,
    KEY_IS_PROTECTED,
    MISSING_ARG,
    UNSUPPORTED_OPTION,
    UNSUPPORTED_PROFILE,
    SopError,
)
from engine.sop.io import open_output, password_for_new_key, read_input

SPEC = "~draft-dkg-openpgp-stateless-cli-14"
CHUNK = 1 << 20
SPOOL = 64 << 20  # ciphertext kept in memory up to this size, then spooled to a temporary file
ENCRYPT_PROFILES = {
    "default": (None, "SEIPD v2 (AES-256-OCB) only when every recipient advertises it, else SEIPD v1"),
    "rfc4880": (False, "always v3 PKESK + SEIPD v1 (AES-256 CFB + MDC)"),
    "rfc9580": (True, "always v6 PKESK + SEIPD v2 (AES-256-OCB)"),
}
_BEGIN = b"-----BEGIN PGP "


def cmd_version(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    if args.sop_spec:
        lines = [SPEC, "pgpbulk implements version, list-profiles, generate-key, extract-cert, encrypt,"]
        lines.append("decrypt, armor and dearmor; no signing, verification or password-based encryption.")
    elif args.backend:
        lines = [f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})"]
    elif args.extended:
        from engine import _native

        kernels = ", ".join(f"{k}={v}" for k, v in _native.describe().items())
        lines = [
            f"pgpbulk {engine.__version__}",
            f"cryptography {cryptography.__version__} ({backend.openssl_version_text()})",
            f"Python {platform.python_version()}",
            f"kernels: {kernels}",
            f"sop spec: {SPEC}",
        ]
    else:
        lines = [f"pgpbulk {engine.__version__}"]
    stdout.write("".join(f"{line}\n" for line in lines).encode())
    return 0


def cmd_list_profiles(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    if args.subcommand == "generate-key":
        items = [(name, p[2]) for name, p in sopkeys.PROFILES.items()]
    elif args.subcommand == "encrypt":
        items = [(name, p[1]) for name, p in ENCRYPT_PROFILES.items()]
    else:
        raise SopError(UNSUPPORTED_PROFILE, f"{args.subcommand} has no profiles")
    stdout.write("".join(f"{name}: {text}\n" for name, text in items).encode())
    return 0


def cmd_generate_key(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    password = password_for_new_key(read_input(args.with_key_password)) if args.with_key_password else None
    cert = sopkeys.generate_key(args.userids, args.profile, password)
    data = cert.serialize(secret=True)
    stdout.write(data if args.no_armor else armor(data, "PRIVATE KEY BLOCK"))
    return 0


def cmd_extract_cert(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    certs = sopkeys.read_key_args(stdin.read(), "standard input")
    data = b"".join(c.public().serialize() for c in certs)
    stdout.write(data if args.no_armor else armor(data, "PUBLIC KEY BLOCK"))
    return 0


class _TextChecked:
    """A reader that fails with EXPECTED_TEXT as soon as the bytes passing through are not UTF-8."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._dec = codecs.getincrementaldecoder("utf-8")()

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        try:
            self._dec.decode(data, final=not data)
        except UnicodeDecodeError:
            raise SopError(EXPECTED_TEXT, "--as=text, but the input is not UTF-8") from None
        return data


def cmd_encrypt(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    if args.with_password or args.sign_with:
        option = "--with-password" if args.with_password else "--sign-with"
        raise SopError(UNSUPPORTED_OPTION, f"{option} is not supported by pgpbulk")
    if args.profile not in ENCRYPT_PROFILES:
        raise SopError(UNSUPPORTED_PROFILE, f"unknown encrypt profile {args.profile!r}")
    if not args.certs:
        raise SopError(MISSING_ARG, "encrypt needs at least one CERTS argument")
    certs = [c for name in args.certs for c in sopkeys.read_cert_args(read_input(name), name)]
    text = args.as_ == "text"
    src: Any = _TextChecked(stdin) if text else stdin
    aead = ENCRYPT_PROFILES[args.profile][0]
    # --as=text: the input is UTF-8 (checked above), so the literal data says 'u' (RFC 9580 section 5.9);
    # the bytes themselves are not altered (no line-ending conversion).
    fmt = "u" if text else "b"
    encrypt_stream(src, stdout, certs, aead=aead, armor=not args.no_armor, literal_format=fmt)
    return 0


def _spool_binary(stdin: BinaryIO, stack: contextlib.ExitStack) -> Any:
    """The message from ``stdin`` as a seekable binary file (dearmored when armored). Only ciphertext
    is spooled: beyond SPOOL octets it goes to a temporary file, closed (deleted) with ``stack``."""
    spool: Any = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL))  # noqa: SIM115
    shutil.copyfileobj(stdin, spool, CHUNK)
    spool.seek(0)
    armored = spool.read(4096).lstrip().startswith(_BEGIN)
    spool.seek(0)
    if not armored:
        return spool
    binary = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL))  # noqa: SIM115
    shutil.copyfileobj(ArmorReader(spool), binary, CHUNK)
    binary.seek(0)
    return binary


def _parse_session_key(raw: bytes, name: str) -> SessionKey:
    try:
        algo, _, hexkey = raw.decode("ascii").strip().partition(":")
        cipher = SymmetricAlgorithm(int(algo))
        key = bytes.fromhex(hexkey)
    except (UnicodeDecodeError, ValueError):
        raise SopError(BAD_DATA, f"{name}: not a session key of the form ALGO:HEX") from None
    if len(key) != cipher.key_size:
        raise SopError(BAD_DATA, f"{name}: {len(key)} octets is the wrong size for {cipher.name}")
    return SessionKey(cipher, key)


def cmd_decrypt(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    for option in ("with_password", "verify_out", "verify_with"):
        if getattr(args, option):
            flag = "--" + option.replace("_", "-")
            raise SopError(UNSUPPORTED_OPTION, f"{flag} is not supported by pgpbulk (no verification)")
    if not args.keys and not args.with_session_key:
        raise SopError(MISSING_ARG, "decrypt needs KEYS or --with-session-key")
    session_keys = [_parse_session_key(read_input(n), n) for n in args.with_session_key]
    keys = [k for name in args.keys for k in sopkeys.read_key_args(read_input(name), name)]
    passwords = [read_input(n) for n in args.with_key_password]
    out_name = args.session_key_out
    with contextlib.ExitStack() as stack:
        sk_out = stack.enter_context(open_output(out_name)) if out_name else None  # fails early if it exists
        try:
            result = _decrypt(_spool_binary(stdin, stack), stdout, session_keys, keys, passwords)
        except BaseException:
            if sk_out is not None and not out_name.startswith("@"):  # leave no empty session key file
                os.unlink(out_name)
            raise
        if sk_out is not None:
            sk = result.session_key
            algo = int(sk.algorithm) if sk.algorithm is not None else 0
            sk_out.write(f"{algo}:{sk.key.hex().upper()}\n".encode())
    return 0


def _decrypt(
    src: Any, stdout: BinaryIO, session_keys: list[SessionKey], keys: list[Any], passwords: list[bytes]
) -> Any:
    for sk in session_keys:
        try:
            return decrypt_stream(src, stdout, session_key=sk, memory_limit=SPOOL)
        except (DecryptionFailed, IntegrityError):  # a wrong session key: try the next one, then KEYS
            src.seek(0)
    if not keys:
        raise SopError(CANNOT_DECRYPT, "no session key given fits the message")
    found = sopkeys.unlock_keys(keys, passwords)
    try:
        return decrypt_stream(src, stdout, InProcessKeyProvider(found.unlocked), memory_limit=SPOOL)
    except NoMatchingKey:
        if found.locked:
            raise SopError(
                KEY_IS_PROTECTED, "a key that may fit is locked; give --with-key-password"
            ) from None
        raise


def cmd_armor(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    head = stdin.read(CHUNK)
    if head.lstrip().startswith(_BEGIN):  # already armored: idempotent
        stdout.write(head)
        shutil.copyfileobj(stdin, stdout, CHUNK)
        return 0
    if head and not head[0] & 0x80:
        raise SopError(BAD_DATA, "the input is not binary OpenPGP data")
    kind = _label(args.label, head)
    with ArmorWriter(stdout, kind, crc=None) as writer:
        writer.write(head)
        while chunk := stdin.read(CHUNK):
            writer.write(chunk)
    return 0


def _label(label: str, head: bytes) -> str:
    """The armor kind for ``--label`` or, with ``auto``, for the first packet's tag."""
    fixed = {"sig": "SIGNATURE", "key": "PRIVATE KEY BLOCK", "cert": "PUBLIC KEY BLOCK", "message": "MESSAGE"}
    if label != "auto":
        return fixed[label]
    if not head:
        return "MESSAGE"
    first = head[0]
    tag = first & 0x3F if first & 0x40 else (first >> 2) & 0x0F
    return {5: "PRIVATE KEY BLOCK", 6: "PUBLIC KEY BLOCK", 2: "SIGNATURE"}.get(tag, "MESSAGE")


def cmd_dearmor(args: argparse.Namespace, stdin: BinaryIO, stdout: BinaryIO) -> int:
    head = stdin.read(CHUNK)
    if head and head[0] & 0x80:  # already binary: idempotent
        stdout.write(head)
        shutil.copyfileobj(stdin, stdout, CHUNK)
        return 0
    if not head.lstrip().startswith(_BEGIN):
        raise SopError(BAD_DATA, "the input is neither ASCII-armored nor binary OpenPGP data")
    shutil.copyfileobj(ArmorReader(cast(BinaryIO, _Prefixed(head, stdin))), stdout, CHUNK)
    return 0


class _Prefixed:
    """``head`` followed by the rest of ``src``, as one readable stream."""

    def __init__(self, head: bytes, src: BinaryIO) -> None:
        self._head, self._src = head, src

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out = self._head if n < 0 else self._head[:n]
            self._head = self._head[len(out) :]
            return out
        return self._src.read(n)
