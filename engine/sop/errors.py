"""Exit codes of the Stateless OpenPGP CLI (draft-dkg-openpgp-stateless-cli, "Failure Modes").

A :class:`SopError` carries the exit code; :func:`exit_code_for` maps pgpbulk's own errors onto
the SOP vocabulary for the command at hand.
"""

from __future__ import annotations

from engine.errors import (
    ArmorError,
    DecryptionFailed,
    IntegrityError,
    InvalidArgument,
    NoMatchingKey,
    StructuralError,
    UnsupportedAlgorithm,
    UnusableKey,
)

OK = 0
UNSPECIFIED = 1
NO_SIGNATURE = 3
UNSUPPORTED_ASYMMETRIC_ALGO = 13
CERT_CANNOT_ENCRYPT = 17
MISSING_ARG = 19
INCOMPLETE_VERIFICATION = 23
CANNOT_DECRYPT = 29
PASSWORD_NOT_HUMAN_READABLE = 31
UNSUPPORTED_OPTION = 37
BAD_DATA = 41
EXPECTED_TEXT = 53
OUTPUT_EXISTS = 59
MISSING_INPUT = 61
KEY_IS_PROTECTED = 67
UNSUPPORTED_SUBCOMMAND = 69
UNSUPPORTED_SPECIAL_PREFIX = 71
AMBIGUOUS_INPUT = 73
KEY_CANNOT_SIGN = 79
INCOMPATIBLE_OPTIONS = 83
UNSUPPORTED_PROFILE = 89


class SopError(Exception):
    """A failure with its SOP exit code; the message goes to stderr as one line."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def exit_code_for(exc: BaseException, command: str) -> int:
    """The SOP exit code for an engine error raised while running ``command``."""
    if isinstance(exc, SopError):
        return exc.code
    if isinstance(exc, (NoMatchingKey, DecryptionFailed, IntegrityError)):
        return CANNOT_DECRYPT
    if isinstance(exc, UnsupportedAlgorithm):
        return UNSUPPORTED_ASYMMETRIC_ALGO if command == "encrypt" else CANNOT_DECRYPT
    if isinstance(exc, UnusableKey):
        return CERT_CANNOT_ENCRYPT if command == "encrypt" else KEY_IS_PROTECTED
    if isinstance(exc, (ArmorError, StructuralError)):
        return BAD_DATA
    if isinstance(exc, InvalidArgument):
        return CERT_CANNOT_ENCRYPT if command == "encrypt" else BAD_DATA
    return UNSPECIFIED
