"""``--recipient`` values to certificates: a cert file, a GnuPG keyring lookup, or a WKD lookup.

Forms: a path to a certificate file (binary or armored; every certificate in it is used), ``wkd:ADDRESS``
(fetched over HTTPS like a mail client does, see :mod:`engine.wkd.check`), a fingerprint or key ID (16,
40 or 64 hex digits, ``0x`` optional) or a mail address looked up in the GnuPG keyring of ``gnupghome``
(or ``$GNUPGHOME``) with python-gnupg. Each certificate must have a usable encryption key now; an
address that matches several keyring entries is refused (give the fingerprint).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidArgument, PgpBulkError
from engine.openpgp.keys import Cert, read_certs

_HEX = re.compile(r"^(0x)?([0-9A-Fa-f]{16}|[0-9A-Fa-f]{40}|[0-9A-Fa-f]{64})$")
_ADDRESS = re.compile(r"^<?([^<>@\s]+@[^<>@\s]+)>?$")


@dataclass(frozen=True)
class RecipientOptions:
    """Where lookups go: the GnuPG home, and for WKD a CA file and an optional ``HOST:PORT`` override."""

    gnupghome: str | None = None
    cafile: str | None = None
    wkd_connect: str | None = None
    timeout: float = 10.0


def _from_file(path: Path) -> list[Cert]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"--recipient {path}: {exc.strerror}") from None
    return read_certs(data, str(path))


def _from_wkd(address: str, opts: RecipientOptions) -> list[Cert]:
    from engine.wkd.check import fetch

    data = fetch(address, cafile=opts.cafile, connect=opts.wkd_connect, timeout=opts.timeout)
    return read_certs(data, f"wkd:{address}")


def _from_keyring(query: str, opts: RecipientOptions) -> list[Cert]:
    import gnupg

    home = opts.gnupghome or os.environ.get("GNUPGHOME") or None
    if home is not None and not Path(home).is_dir():
        raise InvalidArgument(f"--recipient {query}: GnuPG home {home} does not exist")
    gpg = gnupg.GPG(gnupghome=home)
    address = _ADDRESS.match(query)
    pattern = f"<{address.group(1)}>" if address and not _HEX.match(query) else query.removeprefix("0x")
    found = gpg.list_keys(keys=[pattern])
    if not found:
        raise InvalidArgument(f"--recipient {query}: no such key in the keyring {home or '~/.gnupg'}")
    if len(found) > 1:
        fprs = ", ".join(k["fingerprint"] for k in found)
        raise InvalidArgument(f"--recipient {query}: several keys match ({fprs}); give a fingerprint")
    data = gpg.export_keys(found[0]["fingerprint"], armor=False)
    return read_certs(data if isinstance(data, bytes) else data.encode(), f"keyring:{query}")


def lookup(spec: str, opts: RecipientOptions | None = None) -> list[Cert]:
    """The certificates one ``--recipient`` value names (each with a usable encryption key)."""
    opts = opts or RecipientOptions()
    if spec.startswith("wkd:"):
        certs = _from_wkd(spec[4:], opts)
    elif Path(spec).is_file():
        certs = _from_file(Path(spec))
    elif _HEX.match(spec) or _ADDRESS.match(spec):
        certs = _from_keyring(spec, opts)
    else:
        raise InvalidArgument(
            f"--recipient {spec}: not a certificate file, a fingerprint, a mail address or wkd:ADDRESS"
        )
    if not certs:
        raise InvalidArgument(f"--recipient {spec}: no certificate found")
    for cert in certs:
        if cert.encryption_subkey() is None:
            raise InvalidArgument(
                f"--recipient {spec}: {cert.fingerprint_hex} has no usable encryption key "
                "(expired, revoked or not for encryption)"
            )
    return certs


def resolve(specs: Iterable[str], opts: RecipientOptions | None = None) -> list[bytes]:
    """Every ``--recipient`` value resolved to binary public certificates (picklable, deduplicated)."""
    out: dict[bytes, bytes] = {}
    for spec in specs:
        try:
            certs = lookup(spec, opts)
        except InvalidArgument:
            raise
        except (PgpBulkError, ValueError) as exc:
            raise InvalidArgument(f"--recipient {spec}: {exc}") from None
        for cert in certs:
            out.setdefault(cert.fingerprint, cert.public().serialize())
    if not out:
        raise InvalidArgument("at least one --recipient is needed")
    return list(out.values())


__all__ = ["RecipientOptions", "lookup", "resolve"]
