"""The archive step of ``pgpbulk demo``: encrypt a sample mbox (verified), decrypt it back, compare.

The key is generated in memory and never written; the sample archive, its encrypted form and the
decrypted copy live in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from engine.mail.crypto import CryptoConfig, KeyConfig
from engine.mail.job import JobOptions, run_job
from engine.mail.samples import generate, write_mbox

MESSAGES = 600


def demo_archive(out: TextIO) -> bool:
    """Run the archive round trip on generated mail; True when the result is byte-identical."""
    from engine.openpgp.keygen import export
    from engine.openpgp.keygen import generate as generate_key

    key = generate_key("Demo <demo@example.org>")
    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="pgpbulk-demo-") as tmp:
        src, enc, dec = Path(tmp) / "sample.mbox", Path(tmp) / "encrypted.mbox", Path(tmp) / "decrypted.mbox"
        write_mbox(src, generate(seed=2026, count=MESSAGES, attachment_size=32768))
        recipients = CryptoConfig(recipients=(key.public().serialize(),))
        rep = run_job(src, enc, JobOptions("encrypt", verify=True), recipients, workers=workers)
        secret = CryptoConfig(keys=KeyConfig((), secret_keys=(export(key, secret=True, armor=False),)))
        back = run_job(enc, dec, JobOptions("decrypt"), secret, workers=workers)
        identical = dec.read_bytes() == src.read_bytes()
    verified = bool(rep.verify and rep.verify["ok"])
    counts = ", ".join(f"{n} {o}" for o, n in sorted(rep.outcomes.items()))
    for name, r in (("encrypt", rep.run), ("decrypt", back.run)):
        out.write(
            f"archive: {name} {r['items']} messages ({r['bytes_in'] / 1e6:.1f} MB) on {workers} workers in "
            f"{r['elapsed_s']:.2f} s: {r['items_per_s']:.0f} messages/s, {r['mb_per_s']:.2f} MB/s\n"
        )
    out.write(
        f"archive: {counts}; verify {'passed' if verified else 'FAILED'}; decrypted archive "
        f"{'byte-identical to the original' if identical else 'DIFFERS'}\n"
    )
    return verified and identical


__all__ = ["demo_archive"]
