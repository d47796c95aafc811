"""Bench jobs for whole OpenPGP messages: encrypt, rewrap and decrypt 8 KiB messages to one Cv25519
recipient (certificate resolved once), and encrypt one large message against OpenSSL's own speed.

Peers: our pure-Python twin, pysequoia and PGPy in-process; ``gpg`` and ``sq`` as one process per
message (a few dozen messages measured, scaled to the job's count: process start-up is part of what
they cost per message); ``openssl enc -aes-256-cfb`` plus ``openssl sha1`` over the same file for the
large message (the bound of SEIPD v1: AES-256-CFB and SHA-1 over the data).
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.bench import peers
from engine.bench.registry import Dataset, DataSpec, Impl, Job, Sweep
from engine.bench.timing import in_process, run_process

KiB, MiB = 1 << 10, 1 << 20
MESSAGE_SIZE = 8 * KiB
PER_PROCESS = 40  # messages actually run through a one-process-per-message peer (quick: 8)


def _messages(count: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(count * MESSAGE_SIZE)


def _split(raw: bytes) -> list[bytes]:
    return [raw[i : i + MESSAGE_SIZE] for i in range(0, len(raw), MESSAGE_SIZE)]


def _large(size: int, seed: int) -> bytes:
    """Random bytes in 16 MiB pieces (``randbytes`` cannot make more than 256 MiB in one call)."""
    rng = random.Random(seed)
    return b"".join(rng.randbytes(min(16 * MiB, size - i)) for i in range(0, size, 16 * MiB))


MESSAGES = DataSpec("messages-8k", _messages, _split)
LARGE = DataSpec("random-large", _large)

# --- keys: one Cv25519 certificate per process, exported once for every peer -------------------------

_keys: dict[str, Any] = {}


def _key(name: str) -> Any:
    """Our cert, its Recipient, provider, files and peer objects, made on first use."""
    if not _keys:
        from engine.openpgp import keygen
        from engine.openpgp.message import resolve_recipients
        from engine.openpgp.provider import InProcessKeyProvider

        cert = keygen.generate("Bench <bench@example.org>", "ed25519")
        _keys.update(
            cert=cert,
            recipients=resolve_recipients([cert.public()]),
            provider=InProcessKeyProvider([cert]),
            public=keygen.export(cert, armor=False),
            secret=keygen.export(cert, secret=True, armor=False),
        )
    if name.startswith("pysequoia") and name not in _keys:
        import pysequoia

        _keys["pysequoia"] = pysequoia.Cert.from_bytes(_keys["public"])
        secret = pysequoia.Cert.from_bytes(_keys["secret"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _keys["pysequoia-decryptor"] = secret.secrets.decryptor()
    if name.startswith("pgpy") and name not in _keys:
        import pgpy  # type: ignore[import-not-found]

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _keys["pgpy"] = pgpy.PGPKey.from_blob(_keys["public"])[0]
            _keys["pgpy-secret"] = pgpy.PGPKey.from_blob(_keys["secret"])[0]
    return _keys[name]


def _home_files() -> dict[str, Path]:
    """Key files in this run's throwaway GnuPG home, the keys imported into gpg (once per home)."""
    home = peers.gnupg_home()
    files = {"cert": home / "bench-cert.pgp", "key": home / "bench-key.pgp"}
    if not files["key"].exists():
        files["cert"].write_bytes(_key("public"))
        files["key"].write_bytes(_key("secret"))
        if peers.which("gpg"):
            run_process(peers.gpg_argv("--import"), files["key"], env=peers.gnupg_env())
    return files


def _fingerprint() -> str:
    return _key("cert").encryption_subkey().fingerprint.hex().upper()


# --- in-process implementations --------------------------------------------------------------------------


def _native_timed(impl: str, fn: Callable[[Any], Any]) -> Callable[[Dataset], float]:
    """Time ``fn(data)`` with every kernel on ``impl`` ("native" or "pure")."""
    timed = in_process(fn)

    def measure(data: Dataset) -> float:
        from engine import _native

        with _native.use(impl):
            return timed(data)

    return measure


def _encrypt_us(data: Dataset) -> None:
    from engine.openpgp.message import encrypt

    rcpts = _key("recipients")
    for msg in data.value:
        encrypt(msg, rcpts)


def _ciphertexts(data: Dataset) -> list[bytes]:
    """The job's messages encrypted to our key by us (kept on the dataset)."""
    if "ciphertexts" not in data.params:
        from engine.openpgp.message import encrypt

        data.params["ciphertexts"] = [encrypt(m, _key("recipients")) for m in data.value]
    return data.params["ciphertexts"]


def _rewrap_us(data: Dataset) -> None:
    from engine.openpgp.message import decrypt_session_key, parse_message, rewrap

    rcpts, provider = _key("recipients"), _key("provider")
    for ct in _ciphertexts(data):
        parsed = parse_message(ct)
        rewrap(parsed, decrypt_session_key(parsed, provider), rcpts)


def _decrypt_us(data: Dataset) -> None:
    from engine.openpgp.message import decrypt

    provider = _key("provider")
    for ct in _ciphertexts(data):
        decrypt(ct, provider)


def _encrypt_pysequoia(data: Dataset) -> None:
    import pysequoia

    cert = _key("pysequoia")
    for msg in data.value:
        pysequoia.encrypt(msg, [cert], armor=False)


def _decrypt_pysequoia(data: Dataset) -> None:
    import pysequoia

    decryptor = _key("pysequoia-decryptor")
    for ct in _ciphertexts(data):
        pysequoia.decrypt(ct, decryptor)


def _encrypt_pgpy(data: Dataset) -> None:
    import pgpy
    from pgpy.constants import CompressionAlgorithm  # type: ignore[import-not-found]

    key = _key("pgpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for msg in data.value:
            bytes(key.encrypt(pgpy.PGPMessage.new(msg, compression=CompressionAlgorithm.Uncompressed)))


def _plain(fn: Callable[[Dataset], Any]) -> Callable[[Dataset], float]:
    timed = in_process(fn)
    return lambda data: timed(data)


# --- one process per message --------------------------------------------------------------------------


def _per_process(argv: Callable[[], list[str]], decrypt: bool = False) -> Callable[[Dataset], float]:
    """Run ``argv`` once per message on a few messages; seconds scaled to the job's message count."""

    def measure(data: Dataset) -> float:
        files = _home_files()
        count = min(data.size, 8 if data.params.get("quick") else PER_PROCESS)
        items = _ciphertexts(data)[:count] if decrypt else data.value[:count]
        inputs = []
        for i, item in enumerate(items):
            path = files["cert"].with_name(f"bench-msg-{'ct' if decrypt else 'pt'}-{i}")
            if not path.exists():
                path.write_bytes(item)
            inputs.append(path)
        cmd, env = argv(), peers.gnupg_env()
        start = time.perf_counter()
        for path in inputs:
            run_process(cmd, path, env=env)
        return (time.perf_counter() - start) * data.size / count

    return measure


def _gpg_encrypt() -> list[str]:
    _home_files()  # the key must be in gpg's keyring
    return peers.gpg_argv("--trust-model", "always", "-z", "0", "-r", _fingerprint(), "--encrypt")


def _sq_encrypt() -> list[str]:
    return [peers.which("sq") or "sq", "encrypt", "--binary", "--recipient-cert", str(_home_files()["cert"])]


# --- one large message ----------------------------------------------------------------------------------


def _stream_us(impl: str, fraction: int = 1) -> Callable[[Dataset], float]:
    """encrypt_stream from the data file to /dev/null; ``fraction > 1`` encrypts a smaller file."""

    def measure(data: Dataset) -> float:
        from engine import _native
        from engine.openpgp.streaming import encrypt_stream

        part = data.resized(max(1, data.size // fraction)) if fraction > 1 else data
        with _native.use(impl), open(part.path, "rb") as src, open(os.devnull, "wb") as dst:
            start = time.perf_counter()
            encrypt_stream(src, dst, _key("recipients"))
            return (time.perf_counter() - start) * data.size / part.size

    return measure


def _openssl_cfb_sha1(data: Dataset) -> float:
    openssl = peers.which("openssl") or "openssl"
    enc = [openssl, "enc", "-aes-256-cfb", "-K", os.urandom(32).hex(), "-iv", os.urandom(16).hex()]
    return run_process(enc, data.path) + run_process([openssl, "sha1"], data.path)


def _one_process(argv: Callable[[], list[str]]) -> Callable[[Dataset], float]:
    return lambda data: run_process(argv(), data.path, env=peers.gnupg_env())


NATIVE = (peers.NATIVE,)
PYSEQUOIA, PGPY = (peers.module("pysequoia"),), (peers.module("pgpy"),)
GPG, SQ, OPENSSL = (peers.tool("gpg"),), (peers.tool("sq"),), (peers.tool("openssl"),)
_PER_MSG = "one process per message, measured on a few and scaled"


def jobs() -> list[Job]:
    """The message jobs."""
    return [
        Job(
            name="encrypt",
            unit="items/s",
            data=MESSAGES,
            size=2000,
            quick_size=200,
            quick_budget=3.0,
            description="encrypt 8 KiB messages to one Cv25519 recipient (certificate resolved once)",
            impls=(
                Impl("native", _native_timed("native", _encrypt_us), "us", NATIVE),
                Impl("pure twin", _native_timed("pure", _encrypt_us), "twin", gated=True),
                Impl("pysequoia", _plain(_encrypt_pysequoia), requires=PYSEQUOIA),
                Impl("PGPy", _plain(_encrypt_pgpy), requires=PGPY, note="uncompressed"),
                Impl("gpg --encrypt", _per_process(_gpg_encrypt), requires=GPG, note=_PER_MSG + "; -z 0"),
                Impl("sq encrypt", _per_process(_sq_encrypt), requires=SQ, note=_PER_MSG),
            ),
        ),
        Job(
            name="rewrap",
            unit="items/s",
            data=MESSAGES,
            size=2000,
            quick_size=200,
            quick_budget=1.5,
            description="re-wrap 8 KiB messages: decrypt the PKESK (X25519), write a new one, keep the data",
            impls=(
                Impl("native", _native_timed("native", _rewrap_us), "us", NATIVE),
                Impl("pure twin", _native_timed("pure", _rewrap_us), "twin", gated=True),
            ),
        ),
        Job(
            name="decrypt",
            unit="items/s",
            data=MESSAGES,
            size=2000,
            quick_size=200,
            quick_budget=2.0,
            description="decrypt 8 KiB messages with an in-process Cv25519 key",
            impls=(
                Impl("native", _native_timed("native", _decrypt_us), "us", NATIVE),
                Impl("pure twin", _native_timed("pure", _decrypt_us), "twin", gated=True),
                Impl("pysequoia", _plain(_decrypt_pysequoia), requires=PYSEQUOIA),
                Impl(
                    "gpg --decrypt",
                    _per_process(lambda: peers.gpg_argv("--decrypt"), decrypt=True),
                    requires=GPG,
                    note=_PER_MSG,
                ),
            ),
        ),
        Job(
            name="encrypt-large",
            unit="MB/s",
            data=LARGE,
            size=256 * MiB,
            quick_size=32 * MiB,
            quick_budget=3.0,
            description="encrypt one large file (encrypt_stream to /dev/null) against AES-256-CFB + SHA-1",
            sweep=Sweep(
                "size",
                "message size (bytes)",
                (16 * KiB, 256 * KiB, 4 * MiB, 64 * MiB),
                (16 * KiB, 256 * KiB, 4 * MiB),
                ("native", "pure twin"),
            ),
            impls=(
                Impl("native", _stream_us("native"), "us", NATIVE),
                Impl("pure twin", _stream_us("pure", fraction=4), "twin", note="on 1/4 of the data"),
                Impl(
                    "openssl enc + sha1",
                    _openssl_cfb_sha1,
                    "bound",
                    OPENSSL,
                    gated=True,
                    note="enc -aes-256-cfb, then sha1, two processes",
                ),
                Impl(
                    "gpg --encrypt",
                    _one_process(_gpg_encrypt),
                    requires=GPG,
                    note="one process, -z 0",
                ),
                Impl(
                    "sq encrypt",
                    _one_process(_sq_encrypt),
                    requires=SQ,
                    quick=False,
                    note="one process",
                ),
            ),
        ),
    ]
