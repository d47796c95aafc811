"""gpg-agent as a private-key provider: raw RSA decryption and ECDH point multiplication over Assuan.

The agent holds soft keys and forwards card keys to scdaemon. This layer does only the private-key step
of a PKESK: ``pkdecrypt_rsa`` returns the PKCS#1 v1.5 *unpadded* block (RFC 9580 §5.1.3), and
``ecdh_shared_point`` returns the shared point; the OpenPGP layer runs the RFC 6637 KDF and AES key unwrap.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import DecryptionFailed, InvalidArgument
from engine.keys import sexp
from engine.keys.assuan import AssuanClient, Response
from engine.keys.errors import AssuanError, BadPassphrase, KeyProviderError, NoSecretKey

# libgpg-error codes (err-codes.h) that mean "the secret could not be unlocked" or "no such key".
_PASSPHRASE_ERRORS = {11, 85, 86, 87, 99, 177, 178, 198}  # BAD_PASSPHRASE, NO_PIN_ENTRY, PIN_ENTRY, BAD_PIN,
# CANCELED, NO_PASSPHRASE, NO_PIN, FULLY_CANCELED
_NO_KEY_ERRORS = {17, 9}  # NO_SECKEY, NO_PUBKEY
#: How often one operation may ask for a passphrase before we give up (loopback asks once per try).
_MAX_ASKS = 3

#: A passphrase: fixed text, or a function of the keygrip returning it (None = no passphrase / cancel).
PassphraseSource = str | bytes | Callable[[str], str | bytes | None] | None


@dataclass(frozen=True)
class AgentKey:
    """One line of ``KEYINFO --list``: a key the agent holds (``type`` D = disk, T = card)."""

    keygrip: str
    type: str
    serialno: str | None
    cached: bool
    protection: str  # "P" protected, "C" clear, "-" unknown


@dataclass(frozen=True)
class SecretKey:
    """A secret (sub)key from ``gpg -K``: fingerprint, keygrip, algorithm id, capabilities."""

    fingerprint: str
    keygrip: str
    algorithm: int
    capabilities: str
    primary_fingerprint: str
    curve: str = ""
    on_card: bool = False


def _gpgconf(gnupghome: str | None, *args: str) -> str:
    cmd = ["gpgconf"] + (["--homedir", gnupghome] if gnupghome else []) + list(args)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError as exc:
        raise KeyProviderError("gpgconf not found: install GnuPG (gnupg, gpg-agent)") from exc
    if proc.returncode != 0:
        raise KeyProviderError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def agent_socket_path(gnupghome: str | os.PathLike[str] | None = None) -> str:
    """The agent's socket for ``gnupghome`` (or ``$GNUPGHOME`` / ``~/.gnupg``), as gpgconf reports it."""
    return _gpgconf(str(gnupghome) if gnupghome else None, "--list-dirs", "agent-socket")


def launch_agent(gnupghome: str | os.PathLike[str] | None = None) -> None:
    """Start the agent of ``gnupghome`` if it is not running (``gpgconf --launch gpg-agent``)."""
    _gpgconf(str(gnupghome) if gnupghome else None, "--launch", "gpg-agent")


def list_secret_keys(gnupghome: str | os.PathLike[str] | None = None) -> list[SecretKey]:
    """Secret keys and subkeys with their keygrips (``gpg --with-colons --with-keygrip -K``)."""
    cmd = ["gpg", "--batch", "--with-colons", "--with-keygrip", "--fixed-list-mode", "-K"]
    if gnupghome:
        cmd[1:1] = ["--homedir", str(gnupghome)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode not in (0, 2):  # 2: no secret keys
        raise KeyProviderError(f"gpg -K failed: {proc.stderr.strip()}")
    return parse_colons(proc.stdout)


def parse_colons(listing: str) -> list[SecretKey]:
    """``sec``/``ssb`` records of a colon listing, each joined with the ``fpr`` and ``grp`` lines after it."""
    keys: list[SecretKey] = []
    current: list[str] | None = None
    fpr = grip = primary = ""

    def flush() -> None:
        if current is not None and fpr and grip:
            keys.append(
                SecretKey(
                    fingerprint=fpr,
                    keygrip=grip,
                    algorithm=int(current[3] or 0),
                    capabilities=current[11] if len(current) > 11 else "",
                    primary_fingerprint=primary,
                    curve=current[16] if len(current) > 16 else "",
                    on_card=len(current) > 14 and current[14] not in ("", "+", "#"),
                )
            )

    for line in listing.splitlines():
        fields = line.split(":")
        if fields[0] in ("sec", "ssb"):
            flush()
            current, fpr, grip = fields, "", ""
        elif fields[0] == "fpr" and current is not None and not fpr:
            fpr = fields[9]
            if current[0] == "sec":
                primary = fpr
        elif fields[0] == "grp" and current is not None and not grip:
            grip = fields[9]
        elif fields[0] == "pub":
            flush()
            current = None
    flush()
    return keys


def unpad_pkcs1_v15(block: bytes) -> bytes:
    """The message inside an EME-PKCS1-v1_5 block ``00 02 PS 00 M`` (the leading 00 may be missing, as when
    the agent prints the block as an integer). Any defect raises the opaque :class:`DecryptionFailed`."""
    if block[:1] == b"\0":
        block = block[1:]
    sep = block.find(b"\0", 1)
    if block[:1] != b"\x02" or sep < 9:  # RFC 8017 §7.2.2: at least 8 padding bytes
        raise DecryptionFailed("decryption failed")
    return block[sep + 1 :]


def rsa_ciphertext(c: bytes, modulus_len: int | None = None) -> bytes:
    """The ``a`` value of an RSA ``enc-val``: ``c`` left-padded with zeros to ``modulus_len`` (when given
    and longer), then a zero byte in front if the top bit is set (libgcrypt's signed ``%m``)."""
    value = c.lstrip(b"\0") or b"\0"
    if modulus_len is not None:
        if len(value) > modulus_len:
            raise DecryptionFailed("decryption failed")  # larger than the modulus: not for this key
        value = value.rjust(modulus_len, b"\0")
    return b"\0" + value if value[0] & 0x80 else value


def shared_secret_from_point(point: bytes) -> bytes:
    """The X coordinate the RFC 6637 KDF hashes: ``0x40 || X`` (Curve25519) -> X; ``04 || X || Y`` -> X."""
    if len(point) == 33 and point[0] == 0x40:
        return point[1:]
    if len(point) % 2 == 1 and point[0] == 0x04:
        return point[1 : 1 + (len(point) - 1) // 2]
    if len(point) == 32:
        return point
    raise DecryptionFailed("decryption failed")


class AgentConnection:
    """One Assuan connection to gpg-agent, with loopback pinentry so passphrases come from ``passphrase``.

    Use one per process (the object reconnects transparently after a fork) and one thread at a time.
    """

    def __init__(
        self,
        gnupghome: str | os.PathLike[str] | None = None,
        passphrase: PassphraseSource = None,
        timeout: float | None = 60.0,
        launch: bool = True,
    ) -> None:
        self.gnupghome = str(gnupghome) if gnupghome else os.environ.get("GNUPGHOME") or None
        self.timeout = timeout
        self._passphrase = passphrase
        self._launch = launch
        self._client: AssuanClient | None = None
        self._pid = -1
        self._connect()  # fail early (no agent, no loopback) rather than at the first message

    # -- connection -------------------------------------------------------------------------------
    def _connect(self) -> AssuanClient:
        if self._launch:
            launch_agent(self.gnupghome)
        client = AssuanClient(agent_socket_path(self.gnupghome), timeout=self.timeout)
        try:
            client.transact("OPTION pinentry-mode=loopback")
        except AssuanError as exc:
            client.close()
            raise KeyProviderError(
                f"gpg-agent refused loopback pinentry ({exc.text}); "
                "add allow-loopback-pinentry to gpg-agent.conf"
            ) from exc
        self._client, self._pid = client, os.getpid()
        return client

    def _conn(self) -> AssuanClient:
        client = self._client
        if client is not None and self._pid != os.getpid():
            client.abort()  # inherited over fork: the socket is the parent's; never write to it
            client = None
        if client is None or client.closed:
            client = self._connect()
        return client

    def close(self) -> None:
        """Close the connection (the agent keeps running)."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    def __getstate__(self) -> dict[str, object]:
        """Picklable for worker processes: the connection is re-opened there on first use."""
        return {**self.__dict__, "_client": None, "_pid": -1}

    def __enter__(self) -> AgentConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def passphrase(self) -> PassphraseSource:
        """Where passphrases and PINs come from (text, or a function of the keygrip)."""
        return self._passphrase

    @passphrase.setter
    def passphrase(self, source: PassphraseSource) -> None:
        self._passphrase = source

    def card_keys(self) -> dict[str, str]:
        """Keygrip -> card serial number of every key the agent reaches on a card (``KEYINFO`` type
        ``T``; a shadowed key counts even while its card is out, its serial then may be "")."""
        return {k.keygrip.upper(): k.serialno or "" for k in self.keygrips() if k.type == "T"}

    def transact(self, command: str, **kw: object) -> Response:
        """Send a raw Assuan command (for tools and tests)."""
        return self._conn().transact(command, **kw)  # type: ignore[arg-type]

    # -- key inventory ----------------------------------------------------------------------------
    def keygrips(self) -> list[AgentKey]:
        """Keys the agent holds (``KEYINFO --list``), soft keys and card stubs alike."""
        resp = self._conn().transact("KEYINFO --list")
        keys = []
        for key, args in resp.status:
            f = args.split()
            if key == "KEYINFO" and len(f) >= 6:
                keys.append(AgentKey(f[0], f[1], None if f[2] == "-" else f[2], f[4] == "1", f[5]))
        return keys

    def have_key(self, keygrip: str) -> bool:
        """Whether the agent holds the secret key ``keygrip`` (``HAVEKEY``)."""
        try:
            self._conn().transact(f"HAVEKEY {_check_grip(keygrip)}")
        except AssuanError as exc:
            if exc.code in _NO_KEY_ERRORS:
                return False
            raise
        return True

    def secret_keys(self) -> list[SecretKey]:
        """Secret (sub)keys with fingerprints, from gpg's listing of the same home."""
        return list_secret_keys(self.gnupghome)

    # -- private-key operations -------------------------------------------------------------------
    def pkdecrypt_rsa(self, keygrip: str, c: bytes, modulus_len: int | None = None) -> bytes:
        """RSA-decrypt the PKESK integer ``c`` (big-endian) and return the PKCS#1 v1.5 *unpadded* message.

        With ``modulus_len`` the integer is sent zero-padded to the modulus length: a PKESK stores it
        without leading zeros (RFC 9580 §3.2), and gnupg-pkcs11-scd hands it to C_Decrypt as is, which
        wants exactly the modulus length (RFC 8017 §7.2.2): about 1 message in 500 failed with "Card
        error". Soft keys do not mind the zeros. Soft keys return the padded block, which is checked
        and stripped here; cards signal ``S PADDING 0`` and return the message already unpadded.
        """
        cipher = sexp.encode([b"enc-val", [b"rsa", [b"a", rsa_ciphertext(c, modulus_len)]]])
        resp = self._pkdecrypt(keygrip, cipher)
        value = self._value(resp)
        if (resp.status_value("PADDING") or "").strip() == "0":
            return value
        return unpad_pkcs1_v15(value)

    def ecdh_shared_point(self, keygrip: str, ephemeral_point: bytes, wrapped: bytes = b"") -> bytes:
        """The ECDH shared point for the PKESK's ephemeral point (``0x40 || X`` for Curve25519,
        ``04 || X || Y`` for NIST curves). ``wrapped`` is the PKESK's wrapped-key field with its length
        octet, sent as gpg does; the agent does not use it. :func:`shared_secret_from_point` gives the
        KDF input."""
        if not ephemeral_point:
            raise InvalidArgument("empty ephemeral point")
        cipher = sexp.encode([b"enc-val", [b"ecdh", [b"s", wrapped or b"\0"], [b"e", ephemeral_point]]])
        return self._value(self._pkdecrypt(keygrip, cipher))

    def _value(self, resp: Response) -> bytes:
        try:
            return sexp.value_of(sexp.parse(resp.data), b"value")
        except ValueError as exc:
            raise KeyProviderError("gpg-agent returned no (value ...) for PKDECRYPT") from exc

    def _pkdecrypt(self, keygrip: str, cipher: bytes) -> Response:
        client = self._conn()
        grip = _check_grip(keygrip)
        asks = 0
        refused: list[str] = []  # passphrase inquiries we answered with CAN

        def inquire(keyword: str, args: str) -> bytes | None:
            nonlocal asks
            if keyword == "CIPHERTEXT":
                return cipher
            if keyword in ("PASSPHRASE", "NEEDPIN", "NEW_PASSPHRASE"):
                asks += 1
                secret = None if asks > _MAX_ASKS else self._secret_for(grip)
                if secret is None:
                    refused.append(keyword)
                return secret
            if keyword == "PINENTRY_LAUNCHED":
                return b""
            return None

        try:
            client.transact(f"SETKEY {grip}")
            return client.transact("PKDECRYPT", inquire=inquire)
        except AssuanError as exc:
            if refused:
                raise BadPassphrase(f"key {grip}: no passphrase available (gpg-agent: {exc.text})") from exc
            if exc.code in _PASSPHRASE_ERRORS:
                raise BadPassphrase(f"key {grip}: {exc.text}") from exc
            if exc.code in _NO_KEY_ERRORS:
                raise NoSecretKey(f"gpg-agent has no secret key {grip}") from exc
            raise

    def _secret_for(self, keygrip: str) -> bytes | None:
        src = self._passphrase
        value = src(keygrip) if callable(src) else src
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    def __repr__(self) -> str:
        return f"<AgentConnection gnupghome={self.gnupghome!r}>"


def _check_grip(keygrip: str) -> str:
    grip = keygrip.strip().upper()
    if len(grip) != 40 or any(ch not in "0123456789ABCDEF" for ch in grip):
        raise InvalidArgument(f"not a keygrip (40 hex digits): {keygrip!r}")
    return grip


def find_keygrip(keys: list[SecretKey], fingerprint: str) -> SecretKey:
    """The (sub)key whose fingerprint is ``fingerprint`` (or ends with a 16-hex-digit key ID)."""
    want = fingerprint.replace(" ", "").upper().removeprefix("0X")
    for key in keys:
        if key.fingerprint.upper() == want or (len(want) == 16 and key.fingerprint.upper().endswith(want)):
            return key
    raise NoSecretKey(f"no secret key with fingerprint {fingerprint}")
