"""Test set-ups for private keys on "cards": SoftHSM2 tokens, reached directly over PKCS#11 or through
gnupg-pkcs11-scd behind a real gpg-agent (CARDS.md). Plain functions, so several test modules can build
the same rigs (test_keys_agent, test_keys_broker, test_reencrypt_cards).

Every key is made with ``cryptography``; tests build their ciphertexts with its public half, so the token
is checked against an independent implementation.
"""

from __future__ import annotations

import datetime
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from engine.openpgp.constants import PublicKeyAlgorithm, SymmetricAlgorithm
from engine.openpgp.pkesk import Pkesk, SessionKey
from engine.openpgp.public_key import PublicKey, RSAMaterial
from tests.conftest import require_tool

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
PIN = "123456"
SO_PIN = "12345678"
CARD_KEY_ID = b"\x42"


def require_pkcs11() -> str:
    """The SoftHSM2 module path; skip (or fail under PGPBULK_REQUIRE_PEERS) when a part is missing."""
    require_tool("softhsm2-util")
    from engine.keys import pkcs11 as p11

    if p11.pkcs11 is None:
        if os.environ.get("PGPBULK_REQUIRE_PEERS"):
            pytest.fail("python-pkcs11 is required (PGPBULK_REQUIRE_PEERS=1)")
        pytest.skip("python-pkcs11 not installed")
    module = next((m for m in MODULE_CANDIDATES if os.path.exists(m)), None)
    if module is None:
        require_tool("libsofthsm2.so")  # skips locally, fails in CI
    return str(module)


@dataclass
class SoftHsm:
    """A SoftHSM2 configuration of its own (``conf``), its token directory and the PKCS#11 module."""

    root: Path
    module: str

    @property
    def conf(self) -> Path:
        return self.root / "softhsm2.conf"

    @property
    def tokens(self) -> Path:
        return self.root / "tokens"

    def env(self) -> dict[str, str]:
        """Variables a process needs to see these tokens (and share their login lock)."""
        return {"SOFTHSM2_CONF": str(self.conf), "PGPBULK_PKCS11_LOCK": str(self.root / "lock")}

    def uri(self, label: str, pin: str = PIN, obj: str = "c") -> str:
        return f"pkcs11:token={label};object={obj}?module-path={self.module}&pin-value={pin}"


def make_softhsm(root: Path) -> SoftHsm:
    """A fresh SoftHSM2 configuration under ``root``; the caller puts :meth:`SoftHsm.env` in the environment
    before :func:`init_token` (softhsm2-util and the library read ``SOFTHSM2_CONF``)."""
    module = require_pkcs11()
    hsm = SoftHsm(root, module)
    hsm.tokens.mkdir(parents=True, exist_ok=True)
    hsm.conf.write_text(
        f"directories.tokendir = {hsm.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    return hsm


def init_token(label: str, pin: str = PIN) -> None:
    """Initialize a token ``label`` in the first free slot of the current ``SOFTHSM2_CONF``."""
    cmd = ["softhsm2-util", "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin]
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def store_rsa_key(hsm: SoftHsm, label: str, key: rsa.RSAPrivateKey, with_cert: bool = True) -> None:
    """Put ``key`` on token ``label`` (CKA_ID 0x42, label "c"), with a self-signed certificate of the same
    CKA_ID (gnupg-pkcs11-scd shows only keys that have one). Closes this process's sessions afterwards."""
    from pkcs11 import Attribute, CertificateType, ObjectClass

    from engine.keys import pkcs11 as p11
    from engine.keys.pkcs11_import import import_rsa_key

    p11.close_all()  # the library reads SOFTHSM2_CONF when it is initialized
    n = key.private_numbers()
    uri = hsm.uri(label)
    try:
        import_rsa_key(
            uri, n.public_numbers.n, n.public_numbers.e, n.d, n.p, n.q, label="c", key_id=CARD_KEY_ID
        )
        if with_cert:
            name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"bulk {label}")])
            start = datetime.datetime(2020, 1, 1)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(1)
                .not_valid_before(start)
                .not_valid_after(start + datetime.timedelta(days=36500))
                .sign(key, hashes.SHA256())
            )
            p11.open_session(p11.parse_pkcs11_uri(uri)).create_object(
                {
                    Attribute.CLASS: ObjectClass.CERTIFICATE,
                    Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                    Attribute.TOKEN: True,
                    Attribute.ID: CARD_KEY_ID,
                    Attribute.LABEL: "c",
                    Attribute.SUBJECT: name.public_bytes(),
                    Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
                }
            )
    finally:
        p11.close_all()  # whoever uses the token next (scd, a card process) owns it


def make_scd_home(home: Path, hsm: SoftHsm) -> Path:
    """A GnuPG home whose agent uses gnupg-pkcs11-scd on the SoftHSM2 tokens as its "card"."""
    require_tool("gpg-agent")
    require_tool("gnupg-pkcs11-scd")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "gpg-agent.conf").write_text(
        "allow-loopback-pinentry\nscdaemon-program /usr/bin/gnupg-pkcs11-scd\n"
    )
    (home / "gnupg-pkcs11-scd.conf").write_text(f"providers p1\nprovider-p1-library {hsm.module}\n")
    return home


def learn_card(home: Path, pin: str = PIN) -> str:
    """Let the agent learn the card (writes the shadow key); return the card key's keygrip."""
    from engine.keys.agent import AgentConnection

    with AgentConnection(home, passphrase=pin, timeout=30) as agent:
        agent.transact("LEARN")
        (grip,) = [k.keygrip for k in agent.keygrips() if k.type == "T"]
    return grip


def kill_gnupg(home: Path, component: str = "all") -> None:
    """``gpgconf --kill`` for ``home`` (best effort: teardown)."""
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", component], capture_output=True, check=False)


def scd_pids(home: Path) -> list[int]:
    """Process ids of the gnupg-pkcs11-scd serving ``home`` (it runs with ``--homedir HOME``)."""
    found = subprocess.run(
        ["pgrep", "-f", f"gnupg-pkcs11-scd --multi-server --homedir {home}$"], capture_output=True, text=True
    )
    return [int(pid) for pid in found.stdout.split()]


# -- OpenPGP side: the public key and PKESKs made independently with cryptography --------------------------
def openpgp_rsa_public(key: rsa.RSAPrivateKey, created: int = 1_600_000_000) -> PublicKey:
    """The v4 OpenPGP encryption subkey for ``key`` (what a gpg key bound to the card would carry)."""
    pub = key.public_key().public_numbers()
    return PublicKey.build(
        PublicKeyAlgorithm.RSA,
        RSAMaterial(pub.n, pub.e),
        created,
        is_subkey=True,
    )


def rsa_pkesk(public: PublicKey, key: rsa.RSAPrivateKey, session: SessionKey) -> Pkesk:
    """A v3 PKESK for ``session`` to ``public``: the RFC 9580 §5.1.3 frame (algorithm, key, 2-octet sum)
    PKCS#1 v1.5-encrypted by ``cryptography``, not by our own encryption code."""
    assert session.algorithm is not None
    checksum = (sum(session.key) % 65536).to_bytes(2, "big")
    frame = bytes((int(session.algorithm),)) + session.key + checksum
    c = key.public_key().encrypt(frame, padding.PKCS1v15())
    return Pkesk(3, PublicKeyAlgorithm.RSA, public.key_id, (c.lstrip(b"\0"),))


def random_session_key() -> SessionKey:
    return SessionKey(SymmetricAlgorithm.AES256, os.urandom(32))
