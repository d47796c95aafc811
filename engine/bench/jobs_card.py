"""Bench jobs for private keys that are slow to use: a card, a passphrase-protected file key.

- ``card-reencrypt``: N messages through the whole ``reencrypt`` pipeline (pool of ``cores`` workers,
  journal, sink) with the old key on a card that takes a fixed 50 ms per operation, modelled by
  :class:`engine.keys.simulated.FixedLatencyCard` around a real soft RSA-2048 decryption, served by the
  card broker. The bound is the card itself: N x 50 ms. The ratio us/bound is (N x 50 ms) / wall, so
  the issue's "wall <= 1.05 x N x 50 ms" reads as a ratio >= 0.952.
- ``file-key-rsa3072``: decrypt 8 KiB messages with a passphrase-protected RSA-3072 ``file:`` key,
  unlocked once, against ``gpg --decrypt`` once per message on the same key (gpg-agent re-runs the S2K
  of the protected key on every decryption).

The in-process X25519 re-wrap rate per core is the ``rewrap`` job of :mod:`engine.bench.jobs_message`.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.bench import peers
from engine.bench.jobs_message import MESSAGES  # the same 8 KiB messages as encrypt/decrypt/rewrap
from engine.bench.registry import Dataset, DataSpec, Impl, Job
from engine.bench.timing import run_process

CARD_SECONDS = 0.05  # per operation, a mid-range card (CARDS.md: YubiKey ~0.1 s, Nitrokey up to 1 s)
PASSPHRASE = "bench passphrase"
PER_PROCESS = 10  # messages run through gpg, one process each (quick: 3); scaled to the job's count


def _mbox(count: int, seed: int) -> bytes:
    """``count`` small plain messages as an mbox (no body line starts with "From ")."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "card", "key", "mail", "rotate"]
    out = []
    for i in range(count):
        body = "\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(20))
        out.append(
            f"From bench@example.org Sat Nov 28 12:00:00 2026\nFrom: bench@example.org\nTo: old@example.org\n"
            f"Subject: message {i}\nMessage-ID: <{i}.{seed}@bench.example.org>\n\n{body}\n\n"
        )
    return "".join(out).encode()


CARD_MBOX = DataSpec("card-mbox", _mbox)

# --- card-reencrypt -------------------------------------------------------------------------------------


def _card_setup(data: Dataset) -> dict[str, Any]:
    """Keys, the archive encrypted to the old key, and the config of the re-encryption (kept on the data)."""
    if "card" not in data.params:
        from engine.keys.broker import Card
        from engine.keys.simulated import FixedLatencyCard, SoftRawDecryptor
        from engine.mail.crypto import CryptoConfig, KeyConfig
        from engine.mail.job import JobOptions, run_job
        from engine.openpgp.keygen import export, generate

        old, new = generate("Old <old@example.org>", "rsa2048"), generate("New <new@example.org>")
        work = Path(tempfile.mkdtemp(prefix="pgpbulk-bench-card-"))
        enc = work / "old.mbox"
        plain = CryptoConfig(recipients=(export(old.public(), armor=False),))
        run_job(data.path, enc, JobOptions("encrypt"), plain, fmt="mbox", workers=1)
        fpr = old.encryption_subkey().fingerprint
        unlocked = next(k for k in old.secret_keys() if k.public.fingerprint == fpr).unlock(None)
        card = Card(
            "card 50 ms", [(unlocked.public, FixedLatencyCard(SoftRawDecryptor(unlocked), CARD_SECONDS))]
        )
        keys = KeyConfig((), cards=(card,))
        data.params["card"] = {
            "work": work,
            "src": enc,
            "crypto": CryptoConfig(recipients=(export(new.public(), armor=False),), keys=keys),
            "options": JobOptions("reencrypt", reencrypt_mode="rewrap"),
        }
    return data.params["card"]  # type: ignore[no-any-return]


def _card_reencrypt(data: Dataset) -> float:
    """Wall seconds of one ``reencrypt`` run (broker and pool start-up included), workers = cores."""
    from engine.mail.job import run_job

    setup = _card_setup(data)
    dst = setup["work"] / "new.mbox"
    start = time.perf_counter()
    rep = run_job(
        setup["src"], dst, setup["options"], setup["crypto"], workers=os.cpu_count(), overwrite=True
    )
    seconds = time.perf_counter() - start
    if rep.outcomes.get("rewrapped") != data.size:
        raise RuntimeError(f"expected {data.size} re-wrapped messages, got {dict(rep.outcomes)}")
    return seconds


def _card_bound(data: Dataset) -> float:
    return data.size * CARD_SECONDS


# --- file-key-rsa3072 -----------------------------------------------------------------------------------

_rsa: dict[str, Any] = {}


def _rsa_key() -> dict[str, Any]:
    """A protected RSA-3072 key: the cert, its export, our provider (unlocked once), gpg's copy."""
    if not _rsa:
        from engine.openpgp.keygen import export, generate
        from engine.openpgp.message import resolve_recipients
        from engine.openpgp.provider import InProcessKeyProvider

        cert = generate("File <file@example.org>", "rsa3072", passphrase=PASSPHRASE)
        _rsa.update(
            recipients=resolve_recipients([cert.public()]),
            provider=InProcessKeyProvider([cert], PASSPHRASE),
            secret=export(cert, secret=True, armor=False),
        )
    return _rsa


def _ciphertexts(data: Dataset) -> list[bytes]:
    if "rsa3072" not in data.params:
        from engine.openpgp.message import encrypt

        data.params["rsa3072"] = [encrypt(m, _rsa_key()["recipients"]) for m in data.value]
    return data.params["rsa3072"]  # type: ignore[no-any-return]


def _decrypt_us(data: Dataset) -> float:
    """Seconds to decrypt every message in-process (key made, unlocked and messages encrypted before)."""
    from engine.openpgp.message import decrypt

    provider, cts = _rsa_key()["provider"], _ciphertexts(data)
    start = time.perf_counter()
    for ct in cts:
        decrypt(ct, provider)
    return time.perf_counter() - start


def _gpg_loopback(*args: str) -> list[str]:
    return peers.gpg_argv("--pinentry-mode", "loopback", "--passphrase", PASSPHRASE, *args)


def _gpg_decrypt(data: Dataset) -> float:
    """``gpg --decrypt`` once per message on a few messages, scaled to the job's count."""
    home = peers.gnupg_home()
    key = home / "bench-rsa3072-key.pgp"
    if not key.exists():
        key.write_bytes(_rsa_key()["secret"])
        run_process(_gpg_loopback("--import"), key, env=peers.gnupg_env())
    count = min(data.size, 3 if data.params.get("quick") else PER_PROCESS)
    inputs = []
    for i, ct in enumerate(_ciphertexts(data)[:count]):
        path = home / f"bench-rsa3072-ct-{i}"
        path.write_bytes(ct)
        inputs.append(path)
    cmd, env = _gpg_loopback("--decrypt"), peers.gnupg_env()
    start = time.perf_counter()
    for path in inputs:
        run_process(cmd, path, env=env)
    return (time.perf_counter() - start) * data.size / count


def jobs() -> list[Job]:
    """The card and file-key jobs."""
    return [
        Job(
            name="card-reencrypt",
            unit="items/s",
            data=CARD_MBOX,
            size=600,
            # quick: 60 x 50 ms = 3 s on the card, plus key, archive and start-up, within the ~5.6 s
            # a full --quick run can give this job (the whole run's 50 s shared by every job)
            quick_size=60,
            quick_budget=6.0,
            description="reencrypt (rewrap) N messages, old key on a card modelled at a fixed 50 ms/operation "
            "(a real RSA-2048 decryption inside), workers = cores; ratio to the bound = N x 50 ms / wall",
            impls=(
                Impl(
                    "pipeline + broker", _card_reencrypt, "us", note="whole run: broker, pool, journal, sink"
                ),
                Impl("card bound", _card_bound, "bound", note="N x 50 ms: the card never idle"),
            ),
        ),
        Job(
            name="file-key-rsa3072",
            unit="items/s",
            data=MESSAGES,
            size=400,
            quick_size=100,
            quick_budget=12.0,
            description="decrypt 8 KiB messages with a passphrase-protected RSA-3072 key, unlocked once",
            impls=(
                Impl("file: key", _decrypt_us, "us", note="in-process, one core, unlocked once"),
                Impl(
                    "gpg --decrypt",
                    _gpg_decrypt,
                    requires=(peers.tool("gpg"),),
                    note="one process per message, loopback passphrase; measured on a few and scaled",
                ),
            ),
        ),
    ]
