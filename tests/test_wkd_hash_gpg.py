"""Our WKD hashes and URLs against GnuPG itself: gpg-wks-client and dirmngr.

* ``gpg-wks-client --print-wkd-hash`` / ``--print-wkd-url`` with no arguments read one user id per
  line on stdin (trimmed; lines up to 2 KiB) and print ``HASH ADDRSPEC`` / the advanced URL, so
  one process run covers 1,000 addresses.
* dirmngr's ``WKD_GET`` logs the direct URL it fetches ("error connecting to '<url>'") when the
  host does not resolve; ``.invalid`` names never do (RFC 6761), so that log is the peer's answer
  for the percent-escaping of ``?l=``.
"""

from __future__ import annotations

import random
import re
import subprocess
from urllib.parse import unquote

import pytest

from engine import wkd
from tests.conftest import require_tool

pytestmark = pytest.mark.peer

# Local-part characters GnuPG accepts (common/mbox-util.c), plus non-ASCII letters of several scripts.
_ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOCAL_PUNCT = "_-!#$%&'*/=?^`{|}~"
_NON_ASCII = "äöüÄÖÜßéÉèçÇñÑøØåÅœŒжЖдДλΛΣσ日本語한"
_DOMAIN_NON_ASCII = "äöüÄÖÜéñ"


def _local_part(rng: random.Random) -> str:
    segments = []
    for _ in range(rng.randint(1, 3)):
        chars = []
        for _ in range(rng.randint(1, 8)):
            pool = rng.choices(
                [_ASCII_LETTERS, "0123456789", _LOCAL_PUNCT, _NON_ASCII], weights=[60, 15, 10, 15]
            )[0]
            chars.append(rng.choice(pool))
        segments.append("".join(chars))
    local = ".".join(segments)  # dots only between segments: GnuPG refuses ".."
    if rng.random() < 0.3:
        local += "+" + "".join(rng.choices(_ASCII_LETTERS + "0123456789", k=rng.randint(1, 6)))
    return local


def _domain(rng: random.Random, non_ascii: bool) -> str:
    labels = []
    for _ in range(rng.randint(1, 3)):
        pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        if non_ascii:
            pool += _DOMAIN_NON_ASCII
        label = "".join(rng.choices(pool, k=rng.randint(1, 10)))
        if len(label) > 2 and rng.random() < 0.2:
            label = label[0] + "-" + label[2:]
        labels.append(label)
    return ".".join([*labels, rng.choice(["org", "DE", "example", "Com", "net"])])


def _addresses(seed: int, count: int, non_ascii_domains: bool) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{_local_part(rng)}@{_domain(rng, non_ascii_domains and rng.random() < 0.2)}" for _ in range(count)
    ]


def _ascii_lower(text: str) -> str:
    return text.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def _wks_client(mode: str, addresses: list[str]) -> list[str]:
    """Run ``gpg-wks-client MODE`` once with ADDRESSES on stdin; its output lines."""
    tool = require_tool("gpg-wks-client")
    proc = subprocess.run(
        [tool, mode],
        input="".join(f"{a}\n" for a in addresses).encode("utf-8"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    lines = proc.stdout.decode("utf-8").splitlines()
    assert len(lines) == len(addresses)
    return lines


@pytest.fixture(scope="module")
def hash_lines() -> tuple[list[str], list[str]]:
    addresses = _addresses(seed=20241, count=1000, non_ascii_domains=True)
    return addresses, _wks_client("--print-wkd-hash", addresses)


@pytest.fixture(scope="module")
def url_lines() -> tuple[list[str], list[str]]:
    addresses = _addresses(seed=20242, count=300, non_ascii_domains=True)
    return addresses, _wks_client("--print-wkd-url", addresses)


def test_generated_addresses_cover_the_hard_cases() -> None:
    addresses = _addresses(seed=20241, count=1000, non_ascii_domains=True)
    locals_ = [a.rpartition("@")[0] for a in addresses]
    assert sum(any(ord(c) > 127 for c in x) for x in locals_) > 100
    assert sum(any(c.isupper() and c.isascii() for c in x) for x in locals_) > 500
    assert sum("+" in x for x in locals_) > 200
    assert sum("." in x for x in locals_) > 300
    assert sum(any(c.isdigit() for c in x) for x in locals_) > 300


def test_hashes_match_gpg_wks_client(impl: str, hash_lines: tuple[list[str], list[str]]) -> None:
    addresses, lines = hash_lines
    locals_ = [wkd.split_address(a)[0] for a in addresses]
    ours = wkd.wkd_hashes(locals_)
    for address, line, mine in zip(addresses, lines, ours, strict=True):
        theirs, _, addrspec = line.partition(" ")
        assert (mine, _ascii_lower(address)) == (theirs, addrspec), address
        assert wkd.wkd_hash(wkd.split_address(address)[0]) == theirs


def test_urls_match_gpg_wks_client(impl: str, url_lines: tuple[list[str], list[str]]) -> None:
    """gpg-wks-client prints ?l= unescaped; ours, percent-decoded, must equal it byte for byte."""
    addresses, lines = url_lines
    for address, line in zip(addresses, lines, strict=True):
        mine = wkd.wkd_url(address)
        base, _, query = mine.partition("?l=")
        their_base, _, their_query = line.partition("?l=")
        assert (base, unquote(query, errors="strict")) == (their_base, their_query), address


@pytest.fixture(scope="module")
def dirmngr_urls(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str]]:
    """Addresses at unique ``.invalid`` hosts and the URL dirmngr tried for each (by host)."""
    tool = require_tool("gpg-connect-agent")
    require_tool("dirmngr")
    gpgconf = require_tool("gpgconf")
    rng = random.Random(20243)
    # One host per address: dirmngr remembers a name that does not resolve and skips it later.
    addresses = [f"{_local_part(rng)}@Host{i}.Example.INVALID" for i in range(12)]
    addresses += ["a+b%20c?d@plus.invalid", "x=y#w&v?u@specials.invalid", "Ärger@umlaut.invalid"]
    home = tmp_path_factory.mktemp("dirmngr")
    home.chmod(0o700)
    log = home / "dirmngr.log"
    # Its own resolver with a 1 s timeout: the system resolver here sometimes stalls for 5 s.
    (home / "dirmngr.conf").write_text(f"log-file {log}\nverbose\nresolver-timeout 1\n")
    found: dict[str, str] = {}
    missing = list(addresses)
    try:
        # A DNS timeout (not "no name") on the SRV lookup makes dirmngr give up before it builds
        # the URL; ask again for those.
        for _ in range(4):
            subprocess.run(
                [
                    tool,
                    "--homedir",
                    str(home),
                    "--dirmngr",
                    *(f"WKD_GET --quick {a}" for a in missing),
                    "/bye",
                ],
                capture_output=True,
                timeout=120,
                check=False,
            )
            for line in log.read_text("utf-8").splitlines():
                match = re.search(r"error connecting to '(https://(.*?)/\.well-known/.*)': ", line)
                if match:
                    found[match.group(2)] = match.group(1)
            missing = [a for a in addresses if _ascii_lower(a.rpartition("@")[2]) not in found]
            if not missing:
                break
    finally:
        subprocess.run(
            [gpgconf, "--homedir", str(home), "--kill", "dirmngr"], capture_output=True, check=False
        )
    if missing:
        pytest.skip(f"dirmngr could not look up {len(missing)} of {len(addresses)} hosts (DNS timeouts)")
    return addresses, found


def test_direct_urls_match_dirmngr(impl: str, dirmngr_urls: tuple[list[str], dict[str, str]]) -> None:
    addresses, urls = dirmngr_urls
    for address in addresses:
        host = _ascii_lower(address.rpartition("@")[2])
        assert wkd.wkd_url(address, method="direct") == urls.get(host), address
