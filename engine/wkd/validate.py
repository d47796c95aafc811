"""Addresses and domains fit for a WKD tree: normalized the way GnuPG requests them, refused when unsafe.

GnuPG (2.2/2.4) lowercases the ASCII letters of the domain only and uses a non-ASCII domain as raw
UTF-8, without IDNA (``gpg-wks-client --print-wkd-url 'Ärger@Bücher.Example'`` prints
``https://openpgpkey.bücher.example/.well-known/openpgpkey/bücher.example/hu/...``), and
``gpg-wks-client --install-key`` names the domain directory the same way. We do the same, so a tree we
build is laid out exactly as GnuPG's; :func:`idna_alias` gives the A-label (``xn--``) form a web server
needs in ``server_name``. Anything that could leave the tree (``/``, ``\\``, ``..``, NUL, control
characters) is refused by :func:`engine.wkd.hashing.split_address`; here we add DNS length limits and a
last path check.
"""

from __future__ import annotations

import functools
import os

from engine.errors import InvalidArgument
from engine.wkd.hashing import split_address

__all__ = ["idna_alias", "normalize_address", "normalize_domain", "safe_name"]

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
MAX_DOMAIN = 253  # RFC 1035 section 2.3.4 (presentation form, without the root dot)
MAX_LABEL = 63
MAX_LOCAL = 256  # generous; RFC 5321 says 64, real User IDs are sometimes longer


def ascii_lower(text: str) -> str:
    """Lowercase ASCII letters only, as GnuPG does (``str.lower`` would fold non-ASCII too)."""
    return text.translate(_ASCII_LOWER)


def safe_name(name: str) -> str:
    """``name`` if it is one safe path component; InvalidArgument otherwise (the last line of defence)."""
    if (
        not name
        or name in (".", "..")
        or os.sep in name
        or "/" in name
        or "\\" in name
        or "\0" in name
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    ):
        raise InvalidArgument(f"{name!r} is not a safe file name")
    return name


def _check_labels(domain: str) -> None:
    encoded = domain.encode("utf-8")
    if len(encoded) > MAX_DOMAIN:
        raise InvalidArgument(f"domain is longer than {MAX_DOMAIN} bytes")
    for label in domain.split("."):
        if len(label.encode("utf-8")) > MAX_LABEL:
            raise InvalidArgument(f"domain label {label[:20]!r}... is longer than {MAX_LABEL} bytes")
        if label.startswith("-") or label.endswith("-"):
            raise InvalidArgument(f"domain label {label!r} starts or ends with '-'")


def normalize_domain(domain: str) -> str:
    """A domain as GnuPG requests it: ASCII-lowercased, UTF-8 kept; InvalidArgument when unusable."""
    _, dom = split_address(f"x@{domain}")
    dom = ascii_lower(dom)
    _check_labels(dom)
    return safe_name(dom)


def normalize_address(address: str) -> tuple[str, str, str]:
    """``(local, domain, address)`` with the domain normalized and the local part checked.

    The local part keeps its case (the WKD hash lowercases ASCII itself); the returned address is
    ``ascii_lower(local)@domain``, the key clients look up. Raises InvalidArgument with the reason.
    """
    local, dom = split_address(address)
    if len(local.encode("utf-8")) > MAX_LOCAL:
        raise InvalidArgument(f"local part is longer than {MAX_LOCAL} bytes")
    dom = _domain_checked(dom)
    return local, dom, f"{ascii_lower(local)}@{dom}"


@functools.lru_cache(maxsize=256)
def _domain_checked(dom: str) -> str:
    """The lowercased domain after the label and path checks (a keyring has few domains: cached)."""
    dom = ascii_lower(dom)
    _check_labels(dom)
    return safe_name(dom)


def idna_alias(domain: str) -> str:
    """The A-label form of a domain (``bücher.example`` -> ``xn--bcher-kva.example``); ASCII unchanged."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidArgument(f"domain {domain!r} has no IDNA form: {exc}") from None
