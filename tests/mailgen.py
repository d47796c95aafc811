"""Deterministic mail archives for tests (generators now live in ``engine.mail.samples``) and gpg-backed
payload functions: the reference loop we compare against.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from engine.mail.samples import (  # noqa: F401 - re-exported for the tests
    CARRIED_KINDS,
    ENCRYPTED_KINDS,
    KINDS,
    dovecot_name,
    generate,
    kind_of,
    mbox_bytes,
    message,
    write_emldir,
    write_maildir,
    write_mbox,
)


class Gpg:
    """gpg in a throwaway home with one Cv25519 key; ``encrypt``/``decrypt`` are payload functions.

    Picklable (it holds only paths), one gpg process per call: the reference loop we compare against.
    """

    def __init__(self, home: str | Path, uid: str = "Alice <alice@example.org>") -> None:
        self.home = str(home)
        self.uid = uid

    def run(self, *args: str, data: bytes = b"") -> bytes:
        cmd = ["gpg", "--homedir", self.home, "--batch", "--yes", "--quiet", "--no-tty", *args]
        return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout

    def generate_key(self) -> str:
        """Create the key (no passphrase) and return its fingerprint."""
        self.run("--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", self.uid,
                 "future-default", "default", "never")  # fmt: skip
        out = self.run("--with-colons", "--list-secret-keys").decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def export_secret(self, path: str | Path) -> Path:
        """Write the secret key (binary) to ``path`` for peers such as sq."""
        Path(path).write_bytes(self.run("--pinentry-mode", "loopback", "--passphrase", "",
                                        "--export-secret-keys", self.uid))  # fmt: skip
        return Path(path)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.run("--trust-model", "always", "--armor", "--encrypt", "-r", self.uid, data=plaintext)

    def decrypt(self, armored: bytes) -> bytes:
        return self.run("--decrypt", data=armored)


def environ_for(home: str | Path) -> dict[str, str]:
    """The environment for a peer that should use this GnuPG home."""
    return dict(os.environ, GNUPGHOME=str(home))
