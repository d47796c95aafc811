"""The ``--key`` argument: which provider holds a secret key.

Forms: ``PATH`` or ``file:PATH`` (a secret key file), ``agent:`` or ``agent:FINGERPRINT`` (gpg-agent; the
GnuPG home comes from ``--gnupghome`` or ``$GNUPGHOME``), ``pkcs11:...`` (an RFC 7512 URI).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidArgument
from engine.keys.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEX = re.compile(r"^[0-9A-F]+$")


@dataclass(frozen=True)
class FileKeySpec:
    """A secret key (or keyring) file, unlocked in-process."""

    path: Path


@dataclass(frozen=True)
class AgentKeySpec:
    """Keys held by gpg-agent: all secret keys of the home, or the one with ``fingerprint`` (upper-case
    hex: a 40/64-digit fingerprint or a 16-digit key ID)."""

    fingerprint: str | None = None
    gnupghome: str | None = None


@dataclass(frozen=True)
class Pkcs11KeySpec:
    """A private key on a PKCS#11 token."""

    uri: Pkcs11Uri

    def __str__(self) -> str:
        return str(self.uri)  # the PIN is redacted


KeySpec = FileKeySpec | AgentKeySpec | Pkcs11KeySpec


def parse_key_spec(text: str, gnupghome: str | os.PathLike[str] | None = None) -> KeySpec:
    """Parse one ``--key`` value. ``gnupghome`` (from ``--gnupghome``) wins over ``$GNUPGHOME``."""
    if not text:
        raise InvalidArgument("empty --key")
    scheme = _SCHEME.match(text)
    name = scheme.group(0)[:-1].lower() if scheme else ""
    if name == "agent":
        home = str(gnupghome) if gnupghome else os.environ.get("GNUPGHOME") or None
        return AgentKeySpec(_fingerprint(text[6:]), home)
    if name == "pkcs11":
        return Pkcs11KeySpec(parse_pkcs11_uri(text))
    if name == "file":
        rest = text[5:]
        if rest.startswith("//"):  # file:///abs/path (RFC 8089); file://host/... is not local
            host, _, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise InvalidArgument(f"--key {text}: only local file: URIs are supported")
            rest = "/" + path
        if not rest:
            raise InvalidArgument("--key file: needs a path")
        return FileKeySpec(Path(rest))
    if scheme and not os.path.exists(text):
        raise InvalidArgument(
            f"--key {text}: unknown provider {name!r} (use file:, agent: or pkcs11:; "
            "write file:PATH for a file whose name has a colon)"
        )
    return FileKeySpec(Path(text))


def _fingerprint(text: str) -> str | None:
    fpr = text.replace(" ", "").upper()
    if fpr.startswith("0X"):
        fpr = fpr[2:]
    if not fpr:
        return None
    if len(fpr) not in (16, 40, 64) or not _HEX.match(fpr):
        raise InvalidArgument(f"agent:{text}: expected a fingerprint (40 or 64 hex digits) or key ID (16)")
    return fpr
