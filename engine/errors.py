"""The error vocabulary of pgpbulk.

Modelled on ProtonMail/go-crypto's ``errors``: structural (the bytes are malformed), unsupported (valid
but not implemented), signature (well formed, does not verify), invalid argument (the caller's fault),
integrity (decrypted data failed its check) and one opaque decryption failure that hides parsing
details of decrypted data from an attacker. Every error that concerns input bytes says where.
"""

from __future__ import annotations


class PgpBulkError(Exception):
    """Base class of every error pgpbulk raises on purpose."""


class InvalidArgument(PgpBulkError, ValueError):
    """The caller passed something unusable (wrong type, unknown option, bad address)."""


class StructuralError(PgpBulkError, ValueError):
    """Input bytes are malformed. ``offset`` is the byte offset in the input where it was found."""

    def __init__(self, reason: str, offset: int | None = None, source: str | None = None) -> None:
        self.reason = reason
        self.offset = offset
        self.source = source
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.offset is not None:
            where.append(f"byte {self.offset}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class ArmorError(StructuralError):
    """ASCII armor is malformed. ``line`` is the 1-based line number where it was found."""

    def __init__(
        self, reason: str, line: int | None = None, offset: int | None = None, source: str | None = None
    ) -> None:
        self.line = line
        super().__init__(reason, offset=offset, source=source)

    def _message(self) -> str:
        where = []
        if self.source:
            where.append(str(self.source))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.offset is not None and self.line is None:
            where.append(f"byte {self.offset}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class MalformedPacket(StructuralError):
    """An OpenPGP packet is malformed (bad header, length, or body)."""


class UnsupportedError(PgpBulkError):
    """Valid input that pgpbulk does not implement."""


class UnsupportedAlgorithm(UnsupportedError):
    """A public-key, symmetric, hash, AEAD or compression algorithm pgpbulk does not handle."""


class SignatureError(PgpBulkError):
    """A signature is well formed but does not verify."""


class IntegrityError(PgpBulkError):
    """Decrypted data failed its integrity check (MDC or AEAD tag); no plaintext was released."""


class DecryptionFailed(PgpBulkError):
    """Decryption failed; details are withheld on purpose (oracle resistance)."""


class NoMatchingKey(PgpBulkError):
    """No available secret key matches any recipient of the message."""


class UnusableKey(PgpBulkError):
    """A key is unusable (expired, revoked, no encryption subkey, wrong passphrase)."""
