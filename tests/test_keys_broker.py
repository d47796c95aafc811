"""The card broker with real cards: SoftHSM2 behind gnupg-pkcs11-scd behind gpg-agent (which crashes on
two concurrent decryptions, so correct answers under load from two worker processes show the broker
serializes), and SoftHSM2 tokens reached directly over PKCS#11 (two holding the same key share the work).

Ciphertexts are made by ``cryptography`` with the public key; every session key is checked.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from engine.errors import DecryptionFailed
from engine.keys.agent import AgentConnection
from engine.keys.broker import Card, CardBroker, CardUnavailable
from engine.keys.broker_card import PinGuard, RetryPolicy, classify
from engine.keys.errors import (
    AssuanError,
    AssuanTimeout,
    BadPassphrase,
    KeyProviderError,
    NoSecretKey,
    TokenError,
)
from engine.keys.providers import AgentDecryptor, Pkcs11Decryptor
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.public_key import PublicKey
from engine.scheduler import Failed, run_ordered
from tests import cardsetup as cs

TOKENS = ("t1", "t2", "t3", "t4")

# -- worker side (module level: the pool pickles these by reference) -----------------------------------
_provider = None


def _init(provider: object) -> None:
    global _provider
    _provider = provider


def _decrypt(pkesk: Pkesk) -> bytes:
    return _provider.decrypt_session_key(pkesk).key  # type: ignore[union-attr]


def _decrypt_batch(pkesks: list[Pkesk]) -> list[bytes]:
    out = []
    for result in _provider.decrypt_session_keys(pkesks):  # type: ignore[union-attr]
        if not isinstance(result, SessionKey):
            raise result
        out.append(result.key)
    return out


# -- the rig ---------------------------------------------------------------------------------------------
@dataclass
class Rig:
    hsm: cs.SoftHsm
    home: Path
    grip: str
    key: rsa.RSAPrivateKey
    public: PublicKey

    def messages(self, n: int) -> tuple[list[Pkesk], list[bytes]]:
        """``n`` PKESKs and their session keys, only ciphertexts as long as the modulus (the short ones,
        which need padding for the card, are tested apart in test_short_ciphertext_through_the_agent_card)."""
        pkesks: list[Pkesk] = []
        keys: list[bytes] = []
        while len(pkesks) < n:
            sk = cs.random_session_key()
            pkesk = cs.rsa_pkesk(self.public, self.key, sk)
            if len(pkesk.fields[0]) == 256:
                pkesks.append(pkesk)
                keys.append(sk.key)
        return pkesks, keys

    def agent_card(self, pin: str = cs.PIN, timeout: float = 30.0) -> Card:
        agent = AgentConnection(self.home, passphrase=pin, timeout=timeout)
        return Card("scd", [(self.public, AgentDecryptor(agent, self.grip, self.key.key_size // 8))])

    def token_card(self, label: str) -> Card:
        from engine.keys.pkcs11 import Pkcs11Key, close_all

        key = Pkcs11Key(self.hsm.uri(label))
        close_all()  # the card process opens its own session
        return Card(label, [(self.public, Pkcs11Decryptor(key))])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One RSA-2048 key on five SoftHSM2 tokens: "card" (with a certificate, for gnupg-pkcs11-scd behind
    a gpg-agent) and t1..t4 (direct PKCS#11)."""
    root = tmp_path_factory.mktemp("broker")
    hsm = cs.make_softhsm(root)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in hsm.env().items():
            mp.setenv(name, value)
        for label in ("card", *TOKENS):
            cs.init_token(label)
        key = rsa.generate_private_key(65537, 2048)
        cs.store_rsa_key(hsm, "card", key)
        for label in TOKENS:
            cs.store_rsa_key(hsm, label, key, with_cert=False)
        home = cs.make_scd_home(root / "gnupg", hsm)
        try:
            yield Rig(hsm, home, cs.learn_card(home), key, cs.openpgp_rsa_public(key))
        finally:
            cs.kill_gnupg(home)


def _ok(results: list[object], want: list[bytes]) -> None:
    failed = [r for r in results if isinstance(r, Failed)]
    assert not failed, failed[:3]
    assert results == want


# -- agent card: serialization, speed, busy fraction ------------------------------------------------------
def test_two_workers_through_one_agent_card(rig: Rig) -> None:
    pkesks, want = rig.messages(240)
    with AgentConnection(rig.home, passphrase=cs.PIN) as agent:  # direct, before the broker owns the card
        t0 = time.perf_counter()
        for p in pkesks[:100]:
            agent.pkdecrypt_rsa(rig.grip, p.fields[0])
        direct = 100 / (time.perf_counter() - t0)
    with CardBroker([rig.agent_card()]) as broker:
        provider = broker.provider()
        t0 = time.perf_counter()
        per_message = list(
            run_ordered(pkesks, _decrypt, workers=2, batch_size=8, initializer=_init, initargs=(provider,))
        )
        brokered = len(pkesks) / (time.perf_counter() - t0)
        pipelined = list(
            run_ordered(
                pkesks,
                _decrypt_batch,
                workers=2,
                batch_size=40,
                batched=True,
                initializer=_init,
                initargs=(provider,),
            )
        )
        (m,) = broker.metrics()
    _ok(per_message, want)
    _ok(pipelined, want)
    assert (m.ops, m.errors, m.alive) == (480, 0, True)
    assert 0 < m.busy_fraction <= 1
    assert m.queue_high_water >= 2  # both workers had a request waiting at once
    print(
        f"\nagent card rsa2048: direct {direct:.0f} ops/s, broker (2 workers, incl. pool start) {brokered:.0f} "
        f"ops/s; busy fraction {m.busy_fraction:.2f}, queue high-water {m.queue_high_water}, "
        f"idle gaps {m.idle_gaps}, PIN asked {m.pin_asks}x"
    )


def test_agent_restart_is_retried(rig: Rig) -> None:
    """gpg-agent (and with it the scd) killed while the card is idle: the next operation hits a dead
    socket, is retried on a new connection (the agent is started again) and succeeds."""
    pkesks, want = rig.messages(20)
    with CardBroker([rig.agent_card()], backoff=0.05) as broker:
        provider = broker.provider()
        first = [provider.decrypt_session_key(p).key for p in pkesks[:10]]
        cs.kill_gnupg(rig.home, "gpg-agent")
        second = [provider.decrypt_session_key(p).key for p in pkesks[10:]]
        (m,) = broker.metrics()
    assert first + second == want
    assert m.retries >= 1 and m.alive and m.ops == 20
    print(f"\nretries after agent restart: {m.retries}, PIN asked {m.pin_asks}x")


def test_wrong_pin_stops_every_worker_after_one_try(rig: Rig) -> None:
    cs.kill_gnupg(rig.home)  # no PIN cached in the agent
    pkesks, _ = rig.messages(40)
    try:
        with CardBroker([rig.agent_card(pin="000000")]) as broker:
            results = list(
                run_ordered(
                    pkesks,
                    _decrypt,
                    workers=2,
                    batch_size=4,
                    initializer=_init,
                    initargs=(broker.provider(),),
                )
            )
            (m,) = broker.metrics()
    finally:
        cs.kill_gnupg(rig.home)
    assert all(isinstance(r, Failed) and r.kind == "BadPassphrase" for r in results), results[:3]
    assert "PIN refused" in results[-1].reason and "card scd" in results[-1].reason  # type: ignore[union-attr]
    assert m.pin_asks == 1  # one PIN try spent on the card, not the agent's three
    assert not m.alive


def test_card_that_stops_answering_fails_every_worker(rig: Rig) -> None:
    """The scd process frozen (SIGSTOP) as if the card hung: each try times out, then the card is
    declared gone; every waiting request gets that error instead of a hang."""
    pkesks, want = rig.messages(30)
    with CardBroker([rig.agent_card(timeout=2.0)], retries=1, backoff=0.05) as broker:
        provider = broker.provider()
        assert [provider.decrypt_session_key(p).key for p in pkesks[:3]] == want[:3]
        pids = cs.scd_pids(rig.home)
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            results = list(
                run_ordered(
                    pkesks, _decrypt, workers=2, batch_size=4, initializer=_init, initargs=(provider,)
                )
            )
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            cs.kill_gnupg(rig.home)
        (m,) = broker.metrics()
    assert all(isinstance(r, Failed) and r.kind == "CardUnavailable" for r in results), results[:3]
    assert "card scd" in results[0].reason and "not answering" in results[0].reason  # type: ignore[union-attr]
    assert not m.alive and m.retries >= 1


# -- direct PKCS#11 tokens: spreading, removal ----------------------------------------------------------
def test_two_tokens_with_the_same_key_share_the_work(rig: Rig) -> None:
    pkesks, want = rig.messages(200)
    with CardBroker([rig.token_card("t1"), rig.token_card("t2")]) as broker:
        results = list(
            run_ordered(
                pkesks, _decrypt, workers=2, batch_size=10, initializer=_init, initargs=(broker.provider(),)
            )
        )
        metrics = broker.metrics()
    _ok(results, want)
    assert sum(m.ops for m in metrics) == 200
    assert all(m.ops > 0 and m.alive and 0 < m.busy_fraction <= 1 for m in metrics)
    print("\n" + ", ".join(f"{m.name}: {m.ops} ops, busy {m.busy_fraction:.2f}" for m in metrics))


def test_token_removed_mid_run(rig: Rig) -> None:
    """t4's token directory vanishes: its work moves to t3 and the run goes on; then t3 vanishes too and
    every request fails naming both cards."""
    pkesks, want = rig.messages(60)
    dirs = {label: _token_dir(rig.hsm, label) for label in ("t3", "t4")}
    with CardBroker([rig.token_card("t3"), rig.token_card("t4")], backoff=0.05) as broker:
        provider = broker.provider()
        assert [provider.decrypt_session_key(p).key for p in pkesks[:10]] == want[:10]
        shutil.rmtree(dirs["t4"])
        results = list(
            run_ordered(
                pkesks[10:40], _decrypt, workers=2, batch_size=5, initializer=_init, initargs=(provider,)
            )
        )
        _ok(results, want[10:40])
        shutil.rmtree(dirs["t3"])
        with pytest.raises(CardUnavailable, match=r"t3.*t4|t4.*t3"):
            provider.decrypt_session_key(pkesks[40])
        assert isinstance(provider.decrypt_session_keys(pkesks[41:])[-1], CardUnavailable)
        metrics = {m.name: m for m in broker.metrics()}
    assert not metrics["t3"].alive and not metrics["t4"].alive
    assert metrics["t3"].ops + metrics["t4"].ops == 40
    print(f"\nremoved: t4 -> {metrics['t4'].reason}")


def _token_dir(hsm: cs.SoftHsm, label: str) -> Path:
    for d in hsm.tokens.iterdir():
        if f"{label:<32}".encode() in (d / "token.object").read_bytes():
            return d
    raise AssertionError(f"no token {label}")


@pytest.mark.parametrize("where", ["t1", "scd"])
def test_bad_ciphertext_fails_only_its_request(rig: Rig, where: str) -> None:
    """A corrupt PKESK fails alone; the card stays in service (behind the agent it answers "Card error",
    retried, then the card is probed and found present)."""
    pkesks, want = rig.messages(3)
    bad = Pkesk(3, pkesks[0].algorithm, pkesks[0].key_id, (b"\x01" * 256,))
    card = rig.token_card("t1") if where == "t1" else rig.agent_card()
    with CardBroker([card], backoff=0.05) as broker:
        provider = broker.provider()
        out = provider.decrypt_session_keys([pkesks[0], bad, pkesks[1], pkesks[2]])
        (m,) = broker.metrics()
    assert isinstance(out[1], (DecryptionFailed, KeyProviderError)), out[1]
    assert [r.key for r in (out[0], out[2], out[3])] == want  # type: ignore[union-attr]
    assert m.alive and m.ops == 3 and m.errors == 1
    print(f"\n{where}: corrupt PKESK -> {type(out[1]).__name__}: {out[1]}")


def test_short_ciphertext_through_the_agent_card(rig: Rig) -> None:
    """A PKESK integer shorter than the modulus with its top bit clear (about 1 message in 500): sent as
    it is, gnupg-pkcs11-scd answers "Card error" (C_Decrypt wants the modulus length); the agent
    provider pads it to the modulus length, so the card decrypts it, like the direct PKCS#11 token."""
    while True:
        sk = cs.random_session_key()
        short = cs.rsa_pkesk(rig.public, rig.key, sk)
        if len(short.fields[0]) == 255 and short.fields[0][0] < 0x80:
            break
    pkesks, want = rig.messages(2)
    with (
        AgentConnection(rig.home, passphrase=cs.PIN) as agent,
        pytest.raises(AssuanError, match="Card error"),
    ):
        agent.pkdecrypt_rsa(rig.grip, short.fields[0])  # unpadded (no modulus length): refused
    with CardBroker([rig.agent_card()], backoff=0.05) as broker:
        out = broker.provider().decrypt_session_keys([pkesks[0], short, pkesks[1]])
        (m,) = broker.metrics()
    with CardBroker([rig.token_card("t2")]) as broker:
        assert broker.provider().decrypt_session_key(short).key == sk.key
    assert [r.key for r in out] == [want[0], sk.key, want[1]]  # type: ignore[union-attr]
    assert m.alive and m.retries == 0 and m.errors == 0


# -- policy without a card ------------------------------------------------------------------------------
def test_classification_and_pin_guard() -> None:
    assert classify(BadPassphrase("x")) == "pin"
    assert classify(AssuanError("PKDECRYPT", 87, "Bad PIN")) == "pin"
    assert classify(AssuanError("PKDECRYPT", 108, "Card error")) == "transient"
    assert classify(AssuanError("PKDECRYPT", 112, "Card not present")) == "transient"
    assert classify(AssuanError("PKDECRYPT", 152, "Decryption failed")) == "decrypt"
    assert classify(AssuanTimeout("no answer")) == "transient"
    assert classify(TokenError("DeviceRemoved")) == "transient"
    assert classify(NoSecretKey("x")) == "card"
    assert classify(DecryptionFailed("decryption failed")) == "decrypt"
    assert [RetryPolicy(5, 0.2, 1.0).delay(n) for n in range(4)] == [0.2, 0.4, 0.8, 1.0]
    guard = PinGuard(lambda grip: "1234")
    assert (guard("G"), guard("G")) == ("1234", None)  # a second ask in one operation: the PIN was refused
    guard.reset()
    assert guard("G") == "1234" and guard.total == 2
