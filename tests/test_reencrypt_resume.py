"""``pgpbulk reencrypt`` is repeatable: killed (-9) at random points and resumed, it ends BYTE-IDENTICAL to
an uninterrupted run, in re-wrap and in full mode. Every random value of a new message is derived from
the old message's session key (``engine.openpgp.derive``); nothing is stored on disk for it.

Also, in memory: the derived PKESKs (RSA, Cv25519, X25519 v6) decrypt with their keys and with gpg, two
runs give identical bytes, and two session keys give different ephemerals.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.mail.crypto import KeyConfig, open_provider
from engine.mail.pgpmime import unwrap
from engine.mail.source import open_source
from engine.openpgp import message
from engine.openpgp.constants import SymmetricAlgorithm
from engine.openpgp.derive import full_randomness, pkesk_randomness
from engine.openpgp.keygen import export, generate
from engine.openpgp.pkesk import SessionKey
from engine.openpgp.provider import InProcessKeyProvider
from tests import mailgen
from tests.conftest import require_tool
from tests.journalprobe import commits, committed_offset
from tests.test_archive_cli import make_key, pgpbulk

ROOT = Path(__file__).resolve().parents[1]
COUNT = 360
AES256 = SymmetricAlgorithm.AES256


# --- in memory -------------------------------------------------------------------------------------------


def _keys() -> dict[str, object]:
    return {
        "cv25519": generate("Cv <cv@example.org>"),
        "rsa": generate("Rsa <rsa@example.org>", "rsa2048"),
        "x25519-v6": generate("Six <six@example.org>", version=6),
    }


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return _keys()


def _ephemeral(pkesk: object) -> bytes:
    fields = pkesk.fields  # type: ignore[attr-defined]
    return bytes(fields[0])


@pytest.mark.parametrize("kind", ["cv25519", "rsa", "x25519-v6"])
def test_derived_pkesks_repeat_and_decrypt(keys: dict[str, object], kind: str) -> None:
    key = keys[kind]
    old = generate("Old <old@example.org>")
    v6 = kind == "x25519-v6"
    plain = os.urandom(3000)
    ct = message.encrypt(plain, [old.public()], aead=v6)  # type: ignore[attr-defined]
    sk = message.decrypt_session_key(ct, InProcessKeyProvider([old]))
    one = message.rewrap(ct, sk, [key.public()], deterministic=True)  # type: ignore[attr-defined]
    two = message.rewrap(ct, sk, [key.public()], deterministic=True)  # type: ignore[attr-defined]
    assert one == two  # the same session key and recipient: the same bytes
    assert message.rewrap(ct, sk, [key.public()]) != one  # random by default  # type: ignore[attr-defined]
    assert message.decrypt(one, InProcessKeyProvider([key])).plaintext == plain  # type: ignore[list-item]
    p1 = message.parse_message(one).pkesks[0]
    assert p1.version == (6 if v6 else 3)
    ct2 = message.encrypt(plain, [old.public()], aead=v6)  # type: ignore[attr-defined]
    sk2 = message.decrypt_session_key(ct2, InProcessKeyProvider([old]))
    assert sk2.key != sk.key
    again = message.rewrap(ct2, sk2, [key.public()], deterministic=True)  # type: ignore[attr-defined]
    p2 = message.parse_message(again).pkesks[0]
    assert _ephemeral(p1) != _ephemeral(p2)  # another session key: another ephemeral / RSA ciphertext


def test_derived_sources_are_separated() -> None:
    sk = SessionKey(AES256, bytes(range(32)))
    rcpt_a = type("R", (), {"fingerprint": b"\x01" * 20})()
    rcpt_b = type("R", (), {"fingerprint": b"\x02" * 20})()
    per = pkesk_randomness(sk)
    a1, a2, b1 = per(rcpt_a), per(rcpt_a), per(rcpt_b)
    first = a1(32)
    assert first == a2(32) and first != b1(32) and a1(32) != first  # each call takes the next counter
    assert pkesk_randomness(SessionKey(AES256, bytes(32)))(rcpt_a)(32) != first
    full = full_randomness(sk, [rcpt_a], b"payload")
    assert full(32) != first and full_randomness(sk, [rcpt_a], b"other")(32) != full_randomness(
        sk, [rcpt_a], b"payload"
    )(32)


@pytest.mark.peer
def test_derived_pkesks_decrypt_with_gpg(tmp_path: Path, gnupghome: Path) -> None:
    """gpg reads the derived v3 PKESKs (RSA with our raw PKCS#1 v1.5 padding, Cv25519 ECDH)."""
    gpg = require_tool("gpg")
    home = gnupghome  # a throwaway home whose agent the fixture stops
    old = generate("Old <old@example.org>")
    plain = b"derived and repeatable\n" * 40
    ct = message.encrypt(plain, [old.public()])
    sk = message.decrypt_session_key(ct, InProcessKeyProvider([old]))
    for kind in ("rsa", "cv25519"):
        key = generate(f"{kind} <{kind}@example.org>", "rsa2048" if kind == "rsa" else "ed25519")
        (tmp_path / f"{kind}.sec").write_bytes(export(key, secret=True))
        subprocess.run([gpg, "--homedir", str(home), "--batch", "--quiet", "--import", str(tmp_path / f"{kind}.sec")],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        armored = message.rewrap(ct, sk, [key.public()], armor=True, deterministic=True)
        assert armored == message.rewrap(ct, sk, [key.public()], armor=True, deterministic=True)
        cmd = [gpg, "--homedir", str(home), "--batch", "--quiet", "--decrypt"]
        out = subprocess.run(cmd, input=armored, capture_output=True, check=True, timeout=60).stdout
        assert out == plain, kind


# --- kill -9 + --resume: byte-identical --------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, Path]:
    """An mbox encrypted to alice (with the plain kinds passed along), alice's key, bob's public key."""
    root = tmp_path_factory.mktemp("reenc-resume")
    alice_sec, alice_pub = make_key(root, "alice")
    bob_sec, bob_pub = make_key(root, "bob")
    mails = [m for i, m in enumerate(mailgen.generate(seed=9, count=COUNT * 2, attachment_size=8192))
             if mailgen.kind_of(i) not in (*mailgen.CARRIED_KINDS, "pgp_mime")][:COUNT]  # fmt: skip
    plain = mailgen.write_mbox(root / "plain.mbox", mails)
    enc = root / "old.mbox"
    code = subprocess.run([sys.executable, "-m", "engine", "encrypt", str(plain), "-o", str(enc), "-r",
                           str(alice_pub), "--workers", "2", "-q"], env=_env(), capture_output=True, timeout=300)  # fmt: skip
    assert code.returncode == 0, code.stderr
    return enc, alice_sec, bob_pub, bob_sec


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _kill_at(argv: list[str], journal: Path, more: int, delay: float) -> bool:
    """Run the CLI until ``more`` journal commits, wait ``delay`` s, kill -9 its process group.
    False when the run ended first (nothing to kill)."""
    first = commits(journal) + more
    proc = subprocess.Popen([sys.executable, "-m", "engine", *argv], env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while commits(journal) < first:
            if proc.poll() is not None:
                return False
            assert time.monotonic() < deadline
            time.sleep(0.001)
        time.sleep(delay)
        return proc.poll() is None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its forkserver and workers
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rewrap", "full"])
def test_kill_9_at_random_points_then_resume_is_byte_identical(
    tmp_path: Path, archive: tuple[Path, Path, Path, Path], mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src, alice_sec, bob_pub, bob_sec = archive
    common = ["--key", str(alice_sec), "-r", str(bob_pub), "--mode", mode, "--workers", "2", "--batch-size", "3"]
    ref = tmp_path / "ref.mbox"
    code, _, err = pgpbulk(capsys, "reencrypt", str(src), "-o", str(ref), *common)
    assert code == 0, err
    out, journal = tmp_path / "new.mbox", tmp_path / "new.mbox.journal"
    argv = ["reencrypt", str(src), "-o", str(out), *common, "--checkpoint-seconds", "0", "-q"]
    rng = random.Random(f"{mode}-kill")
    kills, prefixes = [], []
    for n in range(3):
        point = (rng.randint(1, 6), round(rng.uniform(0.0, 0.05), 4))
        if not _kill_at(argv + (["--resume"] if n else []), journal, *point):
            break  # finished before this kill: the output is complete already
        kills.append(point)
        offset = committed_offset(journal)
        prefixes.append((tmp_path / "new.mbox.partial").read_bytes()[:offset])
    assert kills, "no run could be killed"
    if not out.exists():
        code, _, err = pgpbulk(capsys, *argv[:-1], "--resume", "--verify")
        assert code == 0, err
    final = out.read_bytes()
    assert all(final.startswith(p) for p in prefixes)  # journaled bytes never rewritten
    assert final == ref.read_bytes()  # BYTE-IDENTICAL to the uninterrupted run
    assert not journal.exists()
    bob = open_provider(KeyConfig((str(bob_sec),)))
    alice = open_provider(KeyConfig((str(alice_sec),)))
    got = [m.raw for m in open_source(out)]
    want = [m.raw for m in open_source(src)]
    assert len(got) == len(want)
    for new, old in list(zip(got, want, strict=True))[::17]:  # a sample decrypts to the same mail
        try:
            before = unwrap(old, lambda a: message.decrypt(a, alice).plaintext)
        except Exception:
            assert new == old  # not ours / plain: passed unchanged
            continue
        assert unwrap(new, lambda a: message.decrypt(a, bob).plaintext) == before
    print(f"\n{mode}: killed after (commits, delay s) {kills}; journaled prefixes {[len(p) for p in prefixes]}")
