"""Check what a web server really serves for WKD addresses, the way clients look keys up.

For each address: the advanced URL first (``openpgpkey.DOMAIN``), the direct one when that host does not
resolve (draft section 3.1); then status, ``Content-Type`` (``application/octet-stream``), the CORS
header (``Access-Control-Allow-Origin: *``), HEAD, the ``policy`` file, and the key itself: every
certificate must carry exactly one User ID, the looked-up address, and no User Attribute. Expected
fingerprints (from a manifest) are compared too. Stdlib only (``http.client`` + ``ssl``).

``connect`` (``HOST:PORT``) sends every connection there while keeping SNI and ``Host`` (a staging
server, a test server on 127.0.0.1). A non-ASCII domain is reached by its A-label; its path part is
the UTF-8 domain percent-encoded (what GnuPG would request; dirmngr itself cannot fetch such URLs).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.errors import InvalidArgument, PgpBulkError
from engine.openpgp.keys import read_certs
from engine.wkd.hashing import escape_local_part, wkd_hash
from engine.wkd.validate import ascii_lower, idna_alias, normalize_address

__all__ = ["CheckResult", "check_address", "fetch", "parse_connect", "ssl_context"]

MAX_BODY = 16 << 20
OCTET = "application/octet-stream"


@dataclass
class CheckResult:
    """The outcome of looking up one address; ``ok`` when ``problems`` is empty."""

    address: str
    method: str = ""
    url: str = ""
    status: int | None = None
    content_type: str = ""
    cors: str | None = None
    head_status: int | None = None
    policy_status: int | None = None
    fingerprints: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    data: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        head = (
            f"{'PASS' if self.ok else 'FAIL'} {self.address} {self.method or '-'} status={self.status} "
            f"type={self.content_type or '-'} cors={self.cors or '-'} head={self.head_status} "
            f"policy={self.policy_status} keys={','.join(self.fingerprints) or '-'}"
        )
        return head + (": " + "; ".join(self.problems) if self.problems else "")


def parse_connect(value: str | None) -> tuple[str, int] | None:
    """``HOST:PORT`` (``[v6]:PORT`` too) to a socket address; None stays None."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidArgument(f"--connect wants HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def ssl_context(cafile: str | None = None) -> ssl.SSLContext:
    """Certificate and host name verification on; ``cafile`` replaces the system's trust store."""
    return ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()


class _Connection(http.client.HTTPSConnection):
    """HTTPS to ``host`` (SNI, Host, certificate check) over a TCP connection to ``target`` if given."""

    def __init__(self, host: str, target: tuple[str, int] | None, **kw: object) -> None:
        super().__init__(host, 443, **kw)  # type: ignore[arg-type]
        self._target = target

    def connect(self) -> None:
        addr = self._target or (self.host, self.port)
        sock = socket.create_connection(addr, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _request(
    host: str, path: str, verb: str, ctx: ssl.SSLContext, target: tuple[str, int] | None, timeout: float
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = _Connection(host, target, context=ctx, timeout=timeout)
    try:
        conn.request(verb, path, headers={"User-Agent": "pgpbulk-wkd-check", "Accept": "*/*"})
        resp = conn.getresponse()
        body = resp.read(MAX_BODY + 1) if verb == "GET" else b""
        return resp.status, resp.headers, body
    finally:
        conn.close()


def _locations(address: str, method: str) -> tuple[str, str, str, str]:
    """(host, key path, policy path, display URL) for ``method``."""
    local, domain, _ = normalize_address(address)
    local = ascii_lower(local)
    hashed = wkd_hash(local)
    dom_path = urllib.parse.quote(domain, safe="")
    query = f"?l={escape_local_part(local)}"
    host = idna_alias(domain)
    if method == "advanced":
        host = f"openpgpkey.{host}"
        base = f"/.well-known/openpgpkey/{dom_path}"
    else:
        base = "/.well-known/openpgpkey"
    key = f"{base}/hu/{hashed}{query}"
    return host, key, f"{base}/policy", f"https://{host}{key}"


def _check_key(result: CheckResult, data: bytes, address: str, expected: Iterable[str] | None) -> None:
    try:
        certs = read_certs(data, result.url)
    except (PgpBulkError, ValueError) as exc:
        result.problems.append(f"not an OpenPGP key: {exc}")
        return
    if not certs:
        result.problems.append("empty key file")
    for cert in certs:
        result.fingerprints.append(cert.fingerprint_hex)
        uids = [u for u in cert.user_ids if not u.uid.attribute]
        emails = [ascii_lower(u.email or u.text) for u in uids]
        if len(cert.user_ids) != len(uids):
            result.problems.append(f"{cert.fingerprint_hex} carries a User Attribute")
        if emails != [address]:
            result.problems.append(
                f"{cert.fingerprint_hex} has User IDs {emails!r}, expected only {address!r}"
            )
    if expected is not None and set(expected) != set(result.fingerprints):
        result.problems.append(f"fingerprints differ from the manifest: expected {sorted(set(expected))}")


def _lookup(address: str, method: str, ctx: ssl.SSLContext, target: tuple[str, int] | None, timeout: float):
    host, key, policy, url = _locations(address, method)
    return host, key, policy, url, _request(host, key, "GET", ctx, target, timeout)


def check_address(
    address: str,
    *,
    cafile: str | None = None,
    connect: str | None = None,
    method: str = "auto",
    expected_fingerprints: Iterable[str] | None = None,
    timeout: float = 10.0,
    context: ssl.SSLContext | None = None,
) -> CheckResult:
    """Look ``address`` up over HTTPS like a client and report everything a client depends on."""
    if method not in ("auto", "advanced", "direct"):
        raise InvalidArgument(f"method must be auto, advanced or direct, not {method!r}")
    try:
        _, _, wanted = normalize_address(address)
    except InvalidArgument as exc:
        return CheckResult(address, problems=[f"not a WKD address: {exc}"])
    result = CheckResult(wanted)
    ctx = context or ssl_context(cafile)
    target = parse_connect(connect)
    order = ["advanced", "direct"] if method == "auto" else [method]
    for m in order:
        result.method = m
        try:
            host, key, policy, result.url, (status, headers, body) = _lookup(wanted, m, ctx, target, timeout)
        except socket.gaierror as exc:
            if m == "advanced" and method == "auto":
                continue  # no openpgpkey subdomain: clients use the direct method
            result.problems.append(f"cannot resolve: {exc}")
            return result
        except (OSError, http.client.HTTPException) as exc:
            result.problems.append(f"{m}: {type(exc).__name__}: {exc}")
            return result
        break
    else:
        return result
    result.status = status
    result.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    result.cors = headers.get("Access-Control-Allow-Origin")
    if status != 200:
        result.problems.append(f"HTTP status {status}")
    if result.content_type != OCTET:
        result.problems.append(f"Content-Type is {result.content_type or 'missing'!r}, expected {OCTET}")
    if result.cors != "*":
        result.problems.append("no 'Access-Control-Allow-Origin: *' header")
    try:
        result.head_status = _request(host, key, "HEAD", ctx, target, timeout)[0]
        result.policy_status = _request(host, policy, "GET", ctx, target, timeout)[0]
    except (OSError, http.client.HTTPException) as exc:
        result.problems.append(f"HEAD/policy request failed: {exc}")
    if result.head_status != 200:
        result.problems.append(f"HEAD answered {result.head_status}")
    if result.policy_status != 200:
        result.problems.append(f"policy file missing (HTTP {result.policy_status})")
    if len(body) > MAX_BODY:
        result.problems.append(f"key larger than {MAX_BODY} bytes")
    elif status == 200:
        result.data = body
        _check_key(result, body, wanted, expected_fingerprints)
    return result


def fetch(address: str, **kw: object) -> bytes:
    """The key a client would get for ``address`` (InvalidArgument when the lookup fails)."""
    result = check_address(address, **kw)  # type: ignore[arg-type]
    if not result.data:
        raise InvalidArgument(f"no key for {address}: {'; '.join(result.problems)}")
    return result.data
