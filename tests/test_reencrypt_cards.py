"""``pgpbulk reencrypt`` with the old key on a card: the card broker inside the archive pipeline.

The old RSA-2048 key lives on SoftHSM2 tokens: "card" is reached through gnupg-pkcs11-scd behind a real
gpg-agent (``--key agent:FPR``; a gpg key whose encryption subkey is bound to the card's keygrip), "t1"
and "t2" directly over PKCS#11 (``--key pkcs11:...`` + ``--cert``). The archive holds one message whose
RSA ciphertext is a byte shorter than the modulus (the card needs it padded). The new key is a soft key;
a gpg that holds only it reads the results. Fault injection wraps the real token
(:class:`engine.keys.simulated.FlakyCard`); nothing stands in for a decryption.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.cli import main
from engine.keys.broker import Card, CardBroker
from engine.keys.pkcs11 import Pkcs11Key, close_all
from engine.keys.providers import Pkcs11Decryptor, agent_provider, pkcs11_provider
from engine.keys.simulated import FlakyCard
from engine.mail.crypto import CryptoConfig, KeyConfig, open_provider
from engine.mail.job import JobOptions, run_job
from engine.mail.pgpmime import armored_span, unwrap, wrap
from engine.mail.source import open_source
from engine.openpgp import message
from engine.openpgp.keygen import export, generate
from engine.openpgp.keys import read_certs
from engine.scheduler import Stopped
from tests import cardsetup as cs
from tests import mailgen
from tests.journalprobe import commits, committed_offset

pytestmark = pytest.mark.peer
ROOT = Path(__file__).resolve().parents[1]
COUNT = 24  # messages in the archive; message 0 has the short RSA ciphertext


@dataclass
class CardRig:
    hsm: cs.SoftHsm
    home: Path  # the old key: a gpg key whose encryption subkey is on the card
    fpr: str
    old_pub: Path
    new_sec: Path
    new_pub: Path
    new_home: Path  # a gpg that holds only the new key
    plain: list[bytes]
    archive: Path  # the plain messages encrypted to the old key (PGP/MIME)

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.hsm.env(), "PYTHONPATH": str(ROOT), "PGPBULK_PASSPHRASE": cs.PIN}

    def token(self, label: str) -> str:
        return self.hsm.uri(label)


def _bind_gpg_key(home: Path, grip: str) -> str:
    """A gpg key (ed25519 primary) whose RSA encryption subkey is the card key ``grip``; its fingerprint."""
    params = (
        "%no-protection\nKey-Type: EDDSA\nKey-Curve: ed25519\nKey-Usage: sign\nSubkey-Type: RSA\n"
        f"Subkey-Grip: {grip}\nSubkey-Usage: encrypt\nName-Real: Old Card\nName-Email: old@example.org\n"
        "Expire-Date: 0\n%commit\n"
    )
    gpg = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", cs.PIN]
    subprocess.run([*gpg, "--gen-key"], input=params.encode(), check=True, capture_output=True, timeout=60)
    listing = subprocess.run([*gpg, "--with-colons", "-K"], capture_output=True, text=True, check=True).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def _pkesk_encrypt(recipients: list[object], short: bool) -> object:
    """An encrypt function whose RSA PKESK integer is 255 bytes with its top bit clear (``short``) or the
    full 256 bytes (tried until so: a random one is short 1 time in 256, which gpg 2.2 cannot decrypt
    through gnupg-pkcs11-scd, so only message 0 may be)."""

    def encrypt(plaintext: bytes) -> bytes:
        while True:
            armored = message.encrypt(plaintext, recipients, armor=True)  # type: ignore[arg-type]
            c = message.parse_message(armored).pkesks[0].fields[0]
            if (len(c) == 255 and c[0] < 0x80) if short else len(c) == 256:
                return armored

    return encrypt


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardRig]:
    root = tmp_path_factory.mktemp("cards")
    hsm = cs.make_softhsm(root)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in hsm.env().items():
            mp.setenv(name, value)
        key = rsa.generate_private_key(65537, 2048)
        for label in ("card", "t1", "t2"):
            cs.init_token(label)
            cs.store_rsa_key(hsm, label, key, with_cert=label == "card")
        home = cs.make_scd_home(root / "gnupg", hsm)
        new_home = root / "gnupg-new"
        new_home.mkdir(mode=0o700)
        try:
            fpr = _bind_gpg_key(home, cs.learn_card(home))
            old_pub = root / "old.asc"
            export_cmd = ["gpg", "--homedir", str(home), "--export", "--armor", fpr]
            old_pub.write_bytes(subprocess.run(export_cmd, capture_output=True, check=True).stdout)
            new = generate("New Key <new@example.org>")
            new_sec, new_pub = root / "new.sec", root / "new.pub"
            new_sec.write_bytes(export(new, secret=True))
            new_pub.write_bytes(export(new.public(), armor=False))
            subprocess.run(["gpg", "--homedir", str(new_home), "--batch", "--import", str(new_sec)], check=True,
                           capture_output=True)  # fmt: skip
            plain = [m for i, m in enumerate(mailgen.generate(seed=61, count=COUNT * 3))
                     if mailgen.kind_of(i) not in (*mailgen.CARRIED_KINDS, "pgp_mime")][:COUNT]  # fmt: skip
            recipients = message.resolve_recipients(read_certs(old_pub.read_bytes(), "old.asc"))
            normal, short = _pkesk_encrypt(recipients, False), _pkesk_encrypt(recipients, True)
            encrypted = [wrap(p, short if i == 0 else normal) for i, p in enumerate(plain)]  # type: ignore[arg-type]
            archive = mailgen.write_mbox(root / "old.mbox", encrypted)
            yield CardRig(hsm, home, fpr, old_pub, new_sec, new_pub, new_home, plain, archive)
        finally:
            cs.kill_gnupg(home)
            cs.kill_gnupg(new_home)


def _pgpbulk(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _gpg_decrypt(home: Path, armored: bytes) -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--decrypt"]
    return subprocess.run(cmd, input=armored, capture_output=True, check=True, timeout=60).stdout


def _plaintexts(path: Path, sec: Path) -> list[bytes]:
    new = open_provider(KeyConfig((str(sec),)))
    return [unwrap(m.raw, lambda a: message.decrypt(a, new).plaintext) for m in open_source(path)]


def _key_args(rig: CardRig, how: str) -> list[str]:
    if how == "agent":
        return ["--key", f"agent:{rig.fpr}", "--gnupghome", str(rig.home)]
    return ["--key", rig.token("t1"), "--key", rig.token("t2"), "--cert", str(rig.old_pub)]


@pytest.mark.parametrize("how", ["agent", "pkcs11"])
def test_reencrypt_from_card_gpg_reads_with_new_key(
    rig: CardRig,
    how: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """agent: the SoftHSM card behind gnupg-pkcs11-scd; pkcs11: two tokens holding the same key (the
    broker spreads the work over both)."""
    monkeypatch.setenv("PGPBULK_PASSPHRASE", cs.PIN)
    out, report = tmp_path / "new.mbox", tmp_path / "r.json"
    code, stdout, err = _pgpbulk(capsys, "reencrypt", str(rig.archive), "-o", str(out), *_key_args(rig, how),
                                 "-r", str(rig.new_pub), "--mode", "auto", "--workers", "2", "--batch-size", "5",
                                 "--verify", "--report", str(report), "-q")  # fmt: skip
    assert code == 0, err
    assert f"({COUNT} rewrapped)" in stdout and "card broker: " in stdout
    rep = json.loads(report.read_text())
    broker = rep["broker"]
    assert (broker["ops"], broker["errors"], broker["retries"]) == (COUNT, 0, 0)
    assert all(c["alive"] and 0 < c["busy_fraction"] <= 1 for c in broker["cards"])
    if how == "pkcs11":
        assert sorted(c["name"] for c in broker["cards"]) == ["token t1", "token t2"]
        assert all(c["ops"] > 0 for c in broker["cards"])
    new = list(open_source(out))
    assert len(new) == COUNT
    for m in new:  # gpg holding only the new key reads every message, message 0 included
        assert unwrap(m.raw, lambda a: _gpg_decrypt(rig.new_home, a)) == rig.plain[m.index]
    print(f"\n{how}: {stdout.strip().splitlines()[-1]}")


def _gpg_session_keys(rig: CardRig, armored: list[bytes]) -> list[str]:
    keys = []
    for a in armored:
        proc = subprocess.run(
            ["gpg", "--homedir", str(rig.home), "--batch", "--pinentry-mode", "loopback", "--passphrase", cs.PIN,
             "--show-session-key", "--decrypt"], input=a, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        keys.append(re.search(r"session key: '([^']+)'", proc.stderr.decode()).group(1))  # type: ignore[union-attr]
    return keys


def test_every_provider_finds_gpgs_session_keys(rig: CardRig) -> None:
    """The agent card, the token (direct and through the broker) and gpg agree on every session key.

    Message 0 (the RSA integer a byte short) is one gpg 2.2 itself cannot decrypt through
    gnupg-pkcs11-scd ("Card error": it sends the integer unpadded); there the direct PKCS#11 token
    (which pads) is the reference, and every other provider must agree with it."""
    armored = []
    for m in list(open_source(rig.archive))[:7]:
        begin, end, _ = armored_span(m.raw)
        armored.append(m.raw[begin:end])
    with pytest.raises(subprocess.CalledProcessError) as gpg_failed:
        _gpg_session_keys(rig, armored[:1])
    assert b"Card error" in gpg_failed.value.stderr
    want = ["", *_gpg_session_keys(rig, armored[1:])]
    certs = read_certs(rig.old_pub.read_bytes(), "old.asc")

    def session_keys(provider: object) -> list[str]:
        out = []
        for a in armored:
            sk = message.decrypt_session_key(message.parse_message(a), provider)  # type: ignore[arg-type]
            out.append(f"{int(sk.algorithm)}:{sk.key.hex().upper()}")  # type: ignore[arg-type]
        return out

    token = pkcs11_provider(rig.token("t1"), certs)
    got = {"token": session_keys(token)}
    want[0] = got["token"][0]  # the reference for message 0 (see the docstring)
    close_all()  # the broker's card process opens the token itself
    agent = agent_provider(rig.home, rig.fpr, passphrase=cs.PIN)
    got["agent"] = session_keys(agent)
    with CardBroker([Card.of("agent card", agent), Card.of("t1", token)]) as broker:
        got["broker"] = session_keys(broker.provider())
    close_all()
    assert got == {"token": want, "agent": want, "broker": want}


def _flaky_cards(rig: CardRig, every: int) -> tuple[Card, ...]:
    certs = read_certs(rig.old_pub.read_bytes(), "old.asc")
    ((pub, _),) = pkcs11_provider(rig.token("t1"), certs).entries
    close_all()
    return (Card("flaky t1", [(pub, FlakyCard(Pkcs11Decryptor(Pkcs11Key(rig.token("t1"))), every))]),)


def test_card_failing_every_50th_operation(rig: CardRig, tmp_path: Path) -> None:
    """A token that fails every 50th operation (a wrapper around the real one): the run finishes, every
    message re-wrapped, and the report lists the retries."""
    big = mailgen.write_mbox(tmp_path / "big.mbox", [m.raw for m in open_source(rig.archive)] * 5)
    keys = KeyConfig((), cards=_flaky_cards(rig, 50))
    close_all()
    crypto = CryptoConfig(recipients=(rig.new_pub.read_bytes(),), keys=keys)
    report = tmp_path / "r.json"
    rep = run_job(big, tmp_path / "out.mbox", JobOptions("reencrypt", reencrypt_mode="rewrap"), crypto, workers=2,
                  batch_size=8, report=report)  # fmt: skip
    assert rep.outcomes == {"rewrapped": COUNT * 5}
    broker = json.loads(report.read_text())["broker"]
    assert (broker["ops"], broker["retries"], broker["errors"]) == (
        COUNT * 5,
        2,
        0,
    )  # calls 50 and 100 failed
    assert _plaintexts(tmp_path / "out.mbox", rig.new_sec) == rig.plain * 5


def test_lost_card_stops_resumably(rig: CardRig, tmp_path: Path) -> None:
    """A card that fails every operation is given up after its retries: the run stops with one message
    and writes nothing for the failed batch; a resume with a working card finishes the archive."""
    dst = tmp_path / "out.mbox"
    options = JobOptions("reencrypt", reencrypt_mode="rewrap")
    dead = CryptoConfig((rig.new_pub.read_bytes(),), KeyConfig((), cards=_flaky_cards(rig, 1)))
    with pytest.raises(Stopped) as stop:
        run_job(rig.archive, dst, options, dead, workers=2, batch_size=4)
    assert stop.value.kind == "CardUnavailable" and "gave up after 4 tries" in str(stop.value)
    assert "--resume" in str(stop.value) and stop.value.position.items == 0
    alive = CryptoConfig((rig.new_pub.read_bytes(),), KeyConfig((), cards=_flaky_cards(rig, 10**9)))
    rep = run_job(rig.archive, dst, options, alive, workers=2, batch_size=4, resume=True)
    assert rep.outcomes == {"rewrapped": COUNT}
    assert _plaintexts(dst, rig.new_sec) == rig.plain


def test_wrong_pin_exits_2_then_resumes(rig: CardRig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    cs.kill_gnupg(rig.home)  # no PIN cached by the agent or the scd
    out = tmp_path / "new.mbox"
    argv = ["reencrypt", str(rig.archive), "-o", str(out), *_key_args(rig, "agent"), "-r", str(rig.new_pub),
            "--workers", "2", "--batch-size", "4", "-q"]  # fmt: skip
    monkeypatch.setenv("PGPBULK_PASSPHRASE", "000000")
    try:
        code, _, err = _pgpbulk(capsys, *argv)
    finally:
        cs.kill_gnupg(rig.home)
    assert code == 2, err
    assert err.count("\n") == 1 and "PIN refused" in err and "--resume" in err
    monkeypatch.setenv("PGPBULK_PASSPHRASE", cs.PIN)
    code, _, err = _pgpbulk(capsys, *argv, "--resume")
    assert code == 0, err
    assert _plaintexts(out, rig.new_sec) == rig.plain


# -- kill -9 mid-run, then --resume ------------------------------------------------------------------------
def _kill_after(rig: CardRig, argv: list[str], journal: Path, delay: float) -> None:
    """Start the CLI, wait for one more journal commit, then ``delay`` seconds, then kill -9 all of it."""
    first = commits(journal) + 1
    proc = subprocess.Popen([sys.executable, "-m", "engine", *argv], env=rig.env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    try:
        while commits(journal) < first:
            assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()!r}"  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(delay)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its forkserver, workers and the card's owner
        proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.slow
def test_kill_9_three_times_then_resume(rig: CardRig, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Killed three times at random moments (a random time after a journal commit: mid-batch, mid-write
    or mid-card-operation); each resume keeps every byte journaled before, and the end is BYTE-IDENTICAL
    to an uninterrupted run (made here over PKCS#11 with the same old key: the new PKESKs are derived
    from the session keys, so the provider does not matter) and holds every message once, in order."""
    copies = 24  # long enough that no run can end before its kill, even with the card primed early
    src = mailgen.write_mbox(tmp_path / "src.mbox", [m.raw for m in open_source(rig.archive)] * copies)
    out, journal = tmp_path / "new.mbox", tmp_path / "new.mbox.journal"
    argv = ["reencrypt", str(src), "-o", str(out), *_key_args(rig, "agent"), "-r", str(rig.new_pub),
            "--workers", "2", "--batch-size", "3", "-q"]  # fmt: skip
    points = [round(random.Random(7 + n).uniform(0.0, 0.5), 3) for n in range(3)]
    prefixes = []
    for n, point in enumerate(points):
        _kill_after(rig, argv + (["--resume"] if n else []), journal, point)
        offset = committed_offset(journal)
        prefixes.append((tmp_path / "new.mbox.partial").read_bytes()[:offset])
        assert offset > 0 and not out.exists()
    monkeypatch.setenv("PGPBULK_PASSPHRASE", cs.PIN)
    code, _, err = _pgpbulk(capsys, *argv, "--resume", "--verify")
    assert code == 0, err
    final = out.read_bytes()
    assert all(final.startswith(p) for p in prefixes)  # journaled bytes are never rewritten
    ref = tmp_path / "ref.mbox"
    code, _, err = _pgpbulk(capsys, "reencrypt", str(src), "-o", str(ref), *_key_args(rig, "pkcs11"), "-r",
                            str(rig.new_pub), "--workers", "2", "-q")  # fmt: skip
    assert code == 0, err
    assert final == ref.read_bytes()  # byte-identical to an uninterrupted run
    assert _plaintexts(out, rig.new_sec) == rig.plain * copies  # each message once, in order
    assert not journal.exists()
    kept = [len(p) for p in prefixes]
    print(f"\nkilled {points} s after a commit; journaled prefixes {kept} bytes kept; {COUNT * copies} messages")
