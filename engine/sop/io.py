"""Indirect arguments of the SOP CLI: file names, ``@ENV:NAME`` and ``@FD:N`` (draft section
"Special Designators for Indirect Inputs and Outputs"), and human-readable passwords."""

from __future__ import annotations

import os
import re
from typing import BinaryIO

from engine.sop.errors import (
    AMBIGUOUS_INPUT,
    MISSING_INPUT,
    OUTPUT_EXISTS,
    PASSWORD_NOT_HUMAN_READABLE,
    UNSUPPORTED_SPECIAL_PREFIX,
    SopError,
)

_SPECIAL = re.compile(r"@([A-Za-z]+):(.*)", re.DOTALL)


def _special(name: str) -> tuple[str, str] | None:
    m = _SPECIAL.fullmatch(name)
    if m is None:
        return None
    if os.path.exists(name):  # a file really called "@ENV:X": the reader cannot know which is meant
        raise SopError(AMBIGUOUS_INPUT, f"{name!r} is both a special designator and an existing file")
    return m.group(1).upper(), m.group(2)


def _fd(value: str, name: str) -> int:
    if not value.isdigit():
        raise SopError(UNSUPPORTED_SPECIAL_PREFIX, f"bad file descriptor in {name!r}")
    return int(value)


def read_input(name: str) -> bytes:
    """The bytes an indirect input names: a file, an environment variable or an open descriptor."""
    special = _special(name)
    if special is None:
        try:
            with open(name, "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise SopError(MISSING_INPUT, f"{name}: no such file") from None
    prefix, value = special
    if prefix == "ENV":
        if value not in os.environ:
            raise SopError(MISSING_INPUT, f"environment variable {value!r} is not set")
        return os.environb[value.encode()]
    if prefix == "FD":
        with os.fdopen(_fd(value, name), "rb", closefd=False) as f:
            return f.read()
    raise SopError(UNSUPPORTED_SPECIAL_PREFIX, f"unsupported special designator in {name!r}")


def open_output(name: str) -> BinaryIO:
    """A new file (OUTPUT_EXISTS if it is there already) or ``@FD:N``; ``@ENV:`` cannot be written."""
    special = _special(name)
    if special is None:
        try:
            return open(name, "xb")
        except FileExistsError:
            raise SopError(OUTPUT_EXISTS, f"{name}: already exists") from None
    prefix, value = special
    if prefix == "FD":
        return os.fdopen(_fd(value, name), "wb", closefd=False)
    raise SopError(UNSUPPORTED_SPECIAL_PREFIX, f"{name!r} cannot be used for output")


def password_for_new_key(raw: bytes) -> bytes:
    """A password for generating: UTF-8, trailing whitespace (a file's newline) removed."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SopError(PASSWORD_NOT_HUMAN_READABLE, "the password is not UTF-8") from None
    return raw.rstrip(b" \t\r\n")


def password_candidates(raw: bytes) -> list[bytes]:
    """Passwords to try when unlocking: as given, then without trailing whitespace."""
    stripped = raw.rstrip(b" \t\r\n")
    return [raw] if stripped == raw else [raw, stripped]
