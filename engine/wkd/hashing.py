"""WKD hashed local parts and lookup URLs (draft-koch-openpgp-webkey-service, section 3.1).

The hash is z-base-32(SHA-1(local part)) with only the ASCII letters A-Z lower-cased; other bytes,
UTF-8 sequences included, are hashed unchanged (so ``str.lower()`` would be wrong: "ÄRGER" must
hash "Ärger"). The kernel (native or pure twin) is looked up on each call so tests can switch it.

URLs follow GnuPG 2.2/2.4 exactly:

* the local part in ``?l=`` is ASCII lower-cased (gpg puts its lower-cased mailbox there) and
  percent-escaped as dirmngr does when it fetches (``http_escape_string(mbox, "%;?&=+#")``):
  bytes outside gpg's ``VALID_URI_CHARS`` (space, controls, backtick, DEL, every byte >= 0x80) and
  the specials ``% ; ? & = + #`` become ``%XX`` (upper-case hex); everything else, ``/ ~ ' !`` and
  ``{ | }`` included, stays. ``gpg-wks-client --print-wkd-url`` prints the same local part
  unescaped; percent-decoding ours gives its output.
* the domain is ASCII lower-cased only and used as given, without IDNA: gpg-wks-client prints a
  non-ASCII domain as raw UTF-8, and dirmngr neither converts it to punycode nor can fetch from it
  ("Syntax error in URI"). Callers that need a resolvable name pass the A-label (``xn--...``) form.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from engine import _native
from engine.errors import InvalidArgument

__all__ = ["escape_local_part", "split_address", "wkd_hash", "wkd_hashes", "wkd_url"]

METHODS = ("advanced", "direct")

_ASCII_LOWER_STR = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# GnuPG common/http.c VALID_URI_CHARS minus the specials dirmngr passes for the l= parameter.
_GPG_URI_KEEP = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@!\"#$%&'()*+,-./:;<=>?[\\]^_{|}~"
) - frozenset(b"%;?&=+#")
# Domain characters GnuPG accepts in a mailbox (common/mbox-util.c), plus any non-ASCII character.
_DOMAIN_ASCII_STR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_DOMAIN_ASCII = frozenset(_DOMAIN_ASCII_STR)


def wkd_hash(local_part: str | bytes) -> str:
    """The 32-character WKD hash of a local part (a str is UTF-8 encoded first)."""
    return _native.kernel("wkd").wkd_hash(local_part)


def wkd_hashes(items: Iterable[str | bytes]) -> list[str]:
    """``[wkd_hash(x) for x in items]``, in one native loop when the extension is built."""
    return _native.kernel("wkd").wkd_hashes(items)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"  # C0, DEL and C1


def _check_local(local: str) -> None:
    if local.isprintable():
        return  # the common case (printable: no control character, no surrogate), ASCII or not
    for i, ch in enumerate(local):
        if _is_control(ch):
            raise InvalidArgument(f"control character {ch!r} in the local part at position {i}")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidArgument(f"lone surrogate {ch!r} in the local part at position {i}")


_GOOD_DOMAINS: set[str] = set()  # domains that passed :func:`_check_domain` (which depends on nothing else)


def _check_domain(domain: str, offset: int) -> None:
    plain = domain.isascii() and not domain.strip(_DOMAIN_ASCII_STR)  # the common case, no loop
    for i, ch in enumerate(() if plain else domain, start=offset):
        if ch in "/\\":
            raise InvalidArgument(f"{ch!r} in the domain at position {i}: a domain is not a path")
        if _is_control(ch):  # NUL included
            raise InvalidArgument(f"control character {ch!r} in the domain at position {i}")
        if ch.isspace() or 0xD800 <= ord(ch) <= 0xDFFF or (ord(ch) < 0x80 and ch not in _DOMAIN_ASCII):
            raise InvalidArgument(f"character {ch!r} not allowed in a domain, at position {i}")
    if ".." in domain:
        raise InvalidArgument(f"empty label ('..') in domain {domain!r}")
    if domain.startswith(".") or domain.endswith("."):
        raise InvalidArgument(f"domain {domain!r} must not start or end with '.'")


def split_address(address: str) -> tuple[str, str]:
    """Split ``local@domain`` into ``(local, domain)`` unchanged, refusing what cannot be a WKD address.

    Exactly one ``@`` (GnuPG refuses more, quoted local parts included); both parts non-empty; no
    control characters or NUL anywhere; the domain also refuses ``/``, ``\\``, ``..``, a leading
    or trailing dot, white space and ASCII other than letters, digits, ``-``, ``.`` and ``_``.
    Raises :class:`engine.errors.InvalidArgument`.
    """
    if not isinstance(address, str):
        raise InvalidArgument(f"address must be str, not {type(address).__name__}")
    count = address.count("@")
    if count != 1:
        what = "no '@'" if count == 0 else f"{count} '@' characters (exactly one is allowed)"
        raise InvalidArgument(f"address {address!r} has {what}")
    local, _, domain = address.partition("@")
    if not local:
        raise InvalidArgument(f"address {address!r} has an empty local part")
    if not domain:
        raise InvalidArgument(f"address {address!r} has an empty domain")
    _check_local(local)
    if domain not in _GOOD_DOMAINS:  # a keyring has few domains: each is checked once
        _check_domain(domain, len(local) + 1)
        if len(_GOOD_DOMAINS) >= 4096:
            _GOOD_DOMAINS.clear()
        _GOOD_DOMAINS.add(domain)
    return local, domain


def escape_local_part(local: str | bytes) -> str:
    """Percent-escape a local part for ``?l=`` exactly as GnuPG's dirmngr does (see module doc)."""
    raw = local.encode("utf-8") if isinstance(local, str) else bytes(local)
    return "".join(chr(b) if b in _GPG_URI_KEEP else f"%{b:02X}" for b in raw)


def wkd_url(address: str, method: str = "advanced") -> str:
    """The WKD lookup URL of ``address``: ``method`` is "advanced" (openpgpkey. subdomain) or "direct"."""
    if method not in METHODS:
        raise InvalidArgument(f"unknown WKD method {method!r}; expected one of {METHODS}")
    local, domain = split_address(address)
    local = local.translate(_ASCII_LOWER_STR)
    domain = domain.translate(_ASCII_LOWER_STR)
    hashed = wkd_hash(local)
    query = escape_local_part(local)
    if method == "advanced":
        return f"https://openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{hashed}?l={query}"
    return f"https://{domain}/.well-known/openpgpkey/hu/{hashed}?l={query}"
