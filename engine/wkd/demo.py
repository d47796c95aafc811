"""``pgpbulk demo`` step for WKD: build and publish a tree for generated keys in a temporary directory."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

DEMO_KEYS = 200
DEMO_SEED = 20261128


def demo_wkd_build(out: TextIO, count: int = DEMO_KEYS) -> bool:
    """Build a WKD tree for ``count`` generated Ed25519 keys (all cores), then read one published file
    back with our own parser: it must hold exactly one key with exactly the looked-up User ID."""
    from engine.openpgp.keys import read_certs
    from engine.wkd import manifest as mf
    from engine.wkd.publish import build
    from engine.wkd.sample import DOMAIN, sample_keyring

    with tempfile.TemporaryDirectory(prefix="pgpbulk-demo-wkd-") as tmp:
        ring = Path(tmp) / "ring.gpg"
        ring.write_bytes(sample_keyring(count, DEMO_SEED))
        report = build(Path(tmp) / "www", [str(ring)], domains=[DOMAIN])
        entry = next(e for e in mf.load(report.manifest_path).entries if len(e["fingerprints"]) == 1)
        published = Path(tmp) / "www" / ".well-known" / "openpgpkey" / entry["paths"]["advanced"]
        certs = read_certs(published.read_bytes())
        uids = [u.email for c in certs for u in c.user_ids]
        ok = len(certs) == 1 and len(uids) == 1 and (uids[0] or "").lower() == entry["address"]
        out.write(
            f"wkd:     {report.keys} keys -> {report.addresses} addresses published in {report.seconds:.2f} s "
            f"({report.keys_per_second:.0f} keys/s, atomic switch); {entry['paths']['advanced']} holds "
            f"{'only ' + entry['address'] if ok else 'WRONG User IDs: ' + repr(uids)}\n"
        )
    return ok
