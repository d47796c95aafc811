"""An emulated OpenPGP card (jcecard in vpcd, behind a private pcscd) through the real scdaemon and
gpg-agent: gpg sees it, our agent provider and card broker decrypt with it, ``pgpbulk reencrypt`` moves an
archive off it, and pulling it out mid-run ends the run with a clear error instead of a hang.

Session keys are checked against gpg's ``--show-session-key`` and against PKESKs made with
``cryptography`` from the card key's public half; the card's own PSO:DECIPHER counter (kept by the bridge)
shows how many operations reached the card.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.cli import main
from engine.keys.agent import AgentConnection
from engine.keys.broker import BrokeredKeyProvider, Card, CardBroker
from engine.keys.providers import AgentDecryptor, agent_provider
from engine.mail.pgpmime import unwrap
from engine.mail.source import open_source
from engine.openpgp.keygen import export, generate
from engine.openpgp.keys import read_certs
from engine.openpgp.packet import iter_packets
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.public_key import PublicKey
from engine.scheduler import Failed, run_ordered
from tests import cardsetup as cs
from tests import mailgen
from tests.cardemu.rig import PIN, READER, CardRig

pytestmark = pytest.mark.peer

# -- worker side (module level: the pool pickles these by reference) -----------------------------------
_provider: BrokeredKeyProvider | None = None


def _init(provider: BrokeredKeyProvider) -> None:
    global _provider
    _provider = provider


def _decrypt(pkesk: Pkesk) -> bytes:
    assert _provider is not None
    return _provider.decrypt_session_key(pkesk).key


# -- helpers ---------------------------------------------------------------------------------------------
def _card_public(rig: CardRig) -> PublicKey:
    """The card key's OpenPGP public half, from the gpg key bound to it."""
    for cert in read_certs(rig.public_key.read_bytes(), "card key"):
        for sub in cert.subkeys:
            if sub.key.fingerprint_hex == rig.fingerprint:
                return sub.key
    raise AssertionError(f"no subkey {rig.fingerprint} in {rig.public_key}")


def _pkesks(public: PublicKey, n: int, short: int = 0) -> tuple[list[Pkesk], list[bytes]]:
    """``n`` PKESKs to the card key with random AES-256 session keys, made by ``cryptography``; the first
    ``short`` of them with an integer shorter than the modulus (leading zero byte dropped, as in a PKESK)."""
    key = rsa.RSAPublicNumbers(public.material.e, public.material.n).public_key()  # type: ignore[union-attr]
    pkesks: list[Pkesk] = []
    keys: list[bytes] = []
    while len(pkesks) < n:
        sk = cs.random_session_key()
        pkesk = _rsa_pkesk(public, key, sk)
        if (len(pkesk.fields[0]) < 256) == (len(pkesks) < short):
            pkesks.append(pkesk)
            keys.append(sk.key)
    return pkesks, keys


def _rsa_pkesk(public: PublicKey, key: rsa.RSAPublicKey, session: SessionKey) -> Pkesk:
    from cryptography.hazmat.primitives.asymmetric import padding

    assert session.algorithm is not None
    frame = bytes((int(session.algorithm),)) + session.key + (sum(session.key) % 65536).to_bytes(2, "big")
    c = key.encrypt(frame, padding.PKCS1v15())
    return Pkesk(3, public.algorithm, public.key_id, (c.lstrip(b"\0"),))


def _soft_key(tmp: Path) -> tuple[Path, Path]:
    """A new soft key (our own key generation): armored secret file, binary public file."""
    key = generate("New Key <new@example.org>")
    sec, pub = tmp / "new.sec", tmp / "new.pub"
    sec.write_bytes(export(key, secret=True))
    pub.write_bytes(export(key.public(), armor=False))
    return sec, pub


def _gpg_plain(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    cmd = ["gpg", "--homedir", str(home), "--batch", "--quiet", *args]
    return subprocess.run(cmd, input=stdin, capture_output=True, check=True, timeout=60).stdout


def _agent_card(rig: CardRig, timeout: float = 30.0) -> Card:
    agent = AgentConnection(rig.home, passphrase=PIN, timeout=timeout)
    return Card("emulated", [(_card_public(rig), AgentDecryptor(agent, rig.keygrip))])


def _gpg_session_key(rig: CardRig, plaintext: bytes) -> tuple[Pkesk, str]:
    """gpg encrypts to the card key; gpg decrypts on the card and says the session key ("ALGO:HEX")."""
    msg = rig.gpg("--trust-model", "always", "-e", "-r", rig.fingerprint + "!", stdin=plaintext).stdout
    out = rig.gpg("--passphrase", PIN, "--show-session-key", "-d", stdin=msg)
    assert out.stdout == plaintext
    found = re.search(rb"session key: '(\d+):([0-9A-F]+)'", out.stderr)
    assert found, out.stderr
    (pkesk,) = [Pkesk.parse(p) for p in iter_packets(msg) if p.tag == 1]
    return pkesk, f"{found.group(1).decode()}:{found.group(2).decode()}"


# -- 1: gpg sees the card ---------------------------------------------------------------------------------
def test_gpg_card_status_sees_the_emulated_card(emulated_card: CardRig) -> None:
    status = emulated_card.card_status()
    assert f"Reader ...........: {READER}" in status
    assert "Application type .: OpenPGP" in status
    assert "Key attributes ...: rsa2048" in status
    (line,) = [x for x in status.splitlines() if x.startswith("Encryption key")]
    assert line.split(":", 1)[1].replace(" ", "") == emulated_card.fingerprint, status
    print(f"\nemulated card set up in {emulated_card.setup_seconds:.1f} s")


# -- 2: our agent: provider, same session key as gpg ----------------------------------------------------------
def test_agent_provider_matches_gpg_show_session_key(emulated_card: CardRig) -> None:
    rig = emulated_card
    pkesk, want = _gpg_session_key(rig, b"hello card\n")
    provider = agent_provider(rig.home, fingerprint=rig.fingerprint, passphrase=PIN)
    assert provider.fingerprints() == {bytes.fromhex(rig.fingerprint)}
    before = rig.card_decipher_count()
    t0 = time.perf_counter()
    got = provider.decrypt_session_key(pkesk)
    first = time.perf_counter() - t0
    assert f"{int(got.algorithm)}:{got.key.hex().upper()}" == want  # type: ignore[arg-type]
    pkesks, keys = _pkesks(_card_public(rig), 12, short=2)  # short integers: scdaemon must pad them
    t0 = time.perf_counter()
    assert [provider.decrypt_session_key(p).key for p in pkesks] == keys
    rate = len(pkesks) / (time.perf_counter() - t0)
    assert rig.card_decipher_count() - before == 1 + len(pkesks)  # one card operation each, no retries
    print(f"\nemulated card rsa2048 via gpg-agent: first op {first:.2f} s, then {rate:.1f} ops/s")


# -- 3: the card broker, two workers ---------------------------------------------------------------------------
@pytest.mark.slow
def test_broker_two_workers_on_the_card(emulated_card: CardRig) -> None:
    """10 messages from 2 worker processes through one broker: every session key right, every message one
    card operation, and the broker had requests from both workers waiting (it serialized them)."""
    rig = emulated_card
    pkesks, want = _pkesks(_card_public(rig), 10)
    before = rig.card_decipher_count()
    with CardBroker([_agent_card(rig)], env=rig.env()) as broker:
        t0 = time.perf_counter()
        results = list(
            run_ordered(
                pkesks, _decrypt, workers=2, batch_size=1, initializer=_init, initargs=(broker.provider(),)
            )
        )
        elapsed = time.perf_counter() - t0
        (m,) = broker.metrics()
    assert not [r for r in results if isinstance(r, Failed)], results
    assert results == want
    assert (m.ops, m.errors, m.retries, m.alive) == (10, 0, 0, True)
    assert rig.card_decipher_count() - before == 10
    assert m.queue_high_water >= 2  # both workers had an operation waiting while the card was busy
    assert 0 < m.busy_fraction <= 1
    print(
        f"\nbroker on the emulated card: {len(pkesks) / elapsed:.1f} msgs/s incl. pool start; "
        f"busy fraction {m.busy_fraction:.2f}, queue high-water {m.queue_high_water}, PIN asked {m.pin_asks}x"
    )


# -- 4: pgpbulk reencrypt off the card -------------------------------------------------------------------------
@pytest.mark.slow
def test_reencrypt_cli_from_card_to_new_soft_key(
    emulated_card: CardRig, tmp_path: Path, gnupghome: Path
) -> None:
    """``pgpbulk reencrypt --key agent:FPR`` (2 workers, each with its own agent connection) re-wraps 5
    messages off the card to a new soft key; a gpg holding only the new key reads the originals."""
    rig = emulated_card
    kinds = [
        i
        for i in range(len(mailgen.KINDS))
        if mailgen.kind_of(i) not in (*mailgen.ENCRYPTED_KINDS, *mailgen.CARRIED_KINDS)
    ]
    everything = mailgen.generate(seed=6, count=len(mailgen.KINDS))
    plain = [everything[i] for i in kinds[:5]]
    src = mailgen.write_mbox(tmp_path / "plain.mbox", plain)
    enc, out, report = tmp_path / "card.mbox", tmp_path / "new.mbox", tmp_path / "report.json"
    assert main(["encrypt", str(src), "-o", str(enc), "-r", str(rig.public_key), "--workers", "1", "-q"]) == 0
    sec_new, pub_new = _soft_key(tmp_path)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    before = rig.card_decipher_count()
    code = main(["reencrypt", str(enc), "-o", str(out), "--key", f"agent:{rig.fingerprint}", "--gnupghome",
                 str(rig.home), "--passphrase-file", str(pin_file), "-r", str(pub_new), "--mode", "rewrap",
                 "--workers", "2", "--batch-size", "2", "--report", str(report), "-q"])  # fmt: skip
    assert code == 0, report.read_text() if report.exists() else "no report"
    assert json.loads(report.read_text())["outcomes"] == {"rewrapped": 5}
    assert rig.card_decipher_count() - before == 5
    _gpg_plain(gnupghome, "--import", str(sec_new))  # a gpg that holds only the new key
    new = list(open_source(out))
    assert len(new) == 5
    assert [unwrap(m.raw, lambda a: _gpg_plain(gnupghome, "--decrypt", stdin=a)) for m in new] == plain


# -- 5: the card pulled out mid-run ---------------------------------------------------------------------------
@pytest.mark.slow
def test_card_removed_mid_run_fails_fast(emulated_card: CardRig) -> None:
    """The bridge stops after a few operations (the card leaves the reader): the operations still waiting
    end with CardUnavailable naming the card, within a bounded time; then the card goes back in and works."""
    rig = emulated_card
    pkesks, want = _pkesks(_card_public(rig), 30)
    start = rig.card_decipher_count()
    removed_at: list[float] = []

    def pull_after(n: int) -> None:
        deadline = time.monotonic() + 60
        while rig.card_decipher_count() - start < n and time.monotonic() < deadline:
            time.sleep(0.01)
        rig.remove()
        removed_at.append(time.monotonic())

    try:
        with CardBroker(
            [_agent_card(rig, timeout=10.0)], retries=2, backoff=0.1, op_timeout=20.0, env=rig.env()
        ) as broker:
            puller = threading.Thread(target=pull_after, args=(4,), daemon=True)
            puller.start()
            results = list(
                run_ordered(
                    pkesks,
                    _decrypt,
                    workers=2,
                    batch_size=1,
                    initializer=_init,
                    initargs=(broker.provider(),),
                )
            )
            ended = time.monotonic()
            puller.join(10)
            (m,) = broker.metrics()
        assert removed_at, "the card was never pulled"
        ok = [i for i, r in enumerate(results) if not isinstance(r, Failed)]
        failed = [r for r in results if isinstance(r, Failed)]
        # pulled once the card has done 4 decryptions: the 4th answer may be lost with the card
        assert len(ok) >= 3 and all(results[i] == want[i] for i in ok)
        assert failed and all("card emulated" in r.reason for r in failed), failed[:3]
        # Even the operation in flight when the card went (scdaemon may answer "General error") ends as
        # CardUnavailable after the broker's retries.
        assert all(r.kind == "CardUnavailable" for r in failed), failed[:3]
        assert not m.alive
        assert ended - removed_at[0] < 30, "a removed card must end the run promptly"
        print(
            f"\ncard removed after {len(ok)} ops: {len(failed)} failed within {ended - removed_at[0]:.1f} s; "
            f"retries {m.retries}; reason: {failed[0].reason}"
        )
    finally:
        rig.insert()
        rig.wait_card()
    provider = agent_provider(rig.home, fingerprint=rig.fingerprint, passphrase=PIN)
    assert provider.decrypt_session_key(pkesks[0]).key == want[0]  # back in service (the next test's card)
