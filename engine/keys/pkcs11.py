"""PKCS#11 tokens (HSMs, PIV, SoftHSM2) as private-key providers, via python-pkcs11.

One long-lived session per token per process (SoftHSM crashes when threads open their own sessions; the
object re-initializes the library after a fork). Token lookup and login run under a file lock, because
concurrent logins from several processes corrupt SoftHSM's token state. ``rsa_decrypt`` returns the
PKCS#1 v1.5 unpadded message (the token checks the padding); ``ecdh_derive`` returns the raw shared secret
(the X coordinate, or the X25519 output) that the RFC 6637 KDF hashes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from engine.errors import DecryptionFailed, InvalidArgument, UnsupportedAlgorithm
from engine.keys.errors import BadPassphrase, NoSecretKey, TokenError
from engine.keys.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

try:
    import pkcs11
    from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass
    from pkcs11 import exceptions as p11e
except ImportError:  # pragma: no cover - reported when a pkcs11: key is used
    pkcs11 = None

__all__ = ["Pkcs11Key", "Pkcs11Uri", "close_all", "open_session", "parse_pkcs11_uri"]

#: Where modules named by ``module-name`` are looked for (p11-kit's directories and SoftHSM's).
MODULE_DIRS = (
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/lib/softhsm",
    "/usr/local/lib/softhsm",
    "/usr/lib64/pkcs11",
)
DEFAULT_MODULE_ENV = "PGPBULK_PKCS11_MODULE"
LOCK_ENV = "PGPBULK_PKCS11_LOCK"

# DER OIDs (EC_PARAMS) -> (curve name, shared-secret length).
OID_X25519 = bytes.fromhex("06032b656e")
CURVES = {
    bytes.fromhex("06082a8648ce3d030107"): ("nistp256", 32),
    bytes.fromhex("06052b81040022"): ("nistp384", 48),
    bytes.fromhex("06052b81040023"): ("nistp521", 66),
    OID_X25519: ("x25519", 32),
    bytes.fromhex("130a63757276653235353139"): ("x25519", 32),  # PrintableString "curve25519" (some HSMs)
}


@dataclass
class _Open:
    """A logged-in session on one token, valid in the process that opened it."""

    pid: int
    token: Any
    session: Any


_OPEN: dict[tuple[str, str], _Open] = {}


def _require_lib() -> None:
    if pkcs11 is None:
        raise TokenError("pkcs11: keys need python-pkcs11 (pip install python-pkcs11)")


def resolve_module(uri: Pkcs11Uri, module: str | None = None) -> str:
    """The module to load: ``module-path``, then ``module``, then ``module-name`` in :data:`MODULE_DIRS`,
    then ``$PGPBULK_PKCS11_MODULE``."""
    if uri.module_path:
        return uri.module_path
    if module:
        return module
    if uri.module_name:
        name = uri.module_name
        for d in MODULE_DIRS:
            for cand in (name, f"{name}.so", f"lib{name}.so"):
                if os.path.exists(os.path.join(d, cand)):
                    return os.path.join(d, cand)
        raise TokenError(f"PKCS#11 module {name!r} not found in {', '.join(MODULE_DIRS)}")
    env = os.environ.get(DEFAULT_MODULE_ENV)
    if env:
        return env
    raise InvalidArgument(f"no PKCS#11 module: pass module-path=, module= or ${DEFAULT_MODULE_ENV}")


@contextmanager
def token_lock(module_path: str) -> Iterator[None]:
    """An exclusive file lock shared by every process using ``module_path`` (``$PGPBULK_PKCS11_LOCK``
    overrides the lock file)."""
    path = os.environ.get(LOCK_ENV) or os.path.join(
        tempfile.gettempdir(),
        f"pgpbulk-pkcs11-{os.getuid()}-{hashlib.sha256(module_path.encode()).hexdigest()[:12]}.lock",
    )
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _lib(module_path: str) -> Any:
    try:
        return pkcs11.lib(module_path)
    except p11e.PKCS11Error as exc:
        raise TokenError(f"cannot load PKCS#11 module {module_path}: {exc}") from exc


def _find_token(lib: Any, uri: Pkcs11Uri) -> Any:
    matches = []
    for slot in lib.get_slots(token_present=True):
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        try:
            token = slot.get_token()
        except (p11e.TokenNotPresent, p11e.TokenNotRecognised):
            continue
        if all(
            want is None or want == have
            for want, have in (
                (uri.token, token.label),
                (uri.serial, _decode(token.serial)),
                (uri.manufacturer, token.manufacturer_id),
                (uri.model, token.model),
            )
        ):
            matches.append(token)
    if not matches:
        raise TokenError(f"no token matches {uri}")
    if len(matches) > 1:
        raise InvalidArgument(f"{len(matches)} tokens match {uri}; add token= or serial=")
    return matches[0]


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace").strip() if isinstance(value, bytes) else value.strip()


def open_session(uri: Pkcs11Uri, module: str | None = None, pin: str | None = None) -> Any:
    """The process's logged-in session on the token ``uri`` names (opened once, under the token lock).

    PKCS#11 login is per process: once a token is open here, later calls reuse it without a PIN check."""
    _require_lib()
    module_path = resolve_module(uri, module)
    key = (module_path, uri.serial or uri.token or f"slot-{uri.slot_id}")
    cached = _OPEN.get(key)
    if cached is not None and cached.pid == os.getpid():
        return cached.session
    with token_lock(module_path):
        lib = _lib(module_path)
        if any(o.pid != os.getpid() for o in _OPEN.values()):
            _OPEN.clear()  # inherited over fork: the library must be initialized again in this process
            lib.reinitialize()
        token = _find_token(lib, uri)
        user_pin = pin if pin is not None else uri.pin()
        if user_pin is None and token.flags & pkcs11.TokenFlag.LOGIN_REQUIRED:
            raise BadPassphrase(f"token {token.label!r} needs a PIN: pin-value=, pin-source= or pin=")
        try:
            session = token.open(rw=True, user_pin=user_pin)
        except (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange) as exc:
            raise BadPassphrase(f"wrong PIN for token {token.label!r}") from exc
        except p11e.PinLocked as exc:
            raise BadPassphrase(f"PIN of token {token.label!r} is locked") from exc
        except p11e.UserAlreadyLoggedIn:  # another session of this process logged in already
            session = token.open(rw=True)
        except p11e.PKCS11Error as exc:
            raise TokenError(f"cannot open token {token.label!r}: {type(exc).__name__} {exc}") from exc
    _OPEN[key] = _Open(os.getpid(), token, session)
    return session


def close_all() -> None:
    """Close this process's sessions and finalize the libraries (tests; a new SOFTHSM2_CONF)."""
    for opened in list(_OPEN.values()):
        if opened.pid == os.getpid():
            with contextlib.suppress(Exception):  # best effort at shutdown
                opened.session.close()
    _OPEN.clear()
    if pkcs11 is not None:
        for so in list(getattr(pkcs11, "_loaded", {})):
            pkcs11.unload(so)


class Pkcs11Key:
    """A private key on a PKCS#11 token, named by an RFC 7512 URI. Not thread-safe; one per process."""

    def __init__(self, uri: str | Pkcs11Uri, module: str | None = None, pin: str | None = None) -> None:
        _require_lib()
        self.uri = uri if isinstance(uri, Pkcs11Uri) else parse_pkcs11_uri(uri)
        if self.uri.type not in (None, "private"):
            raise InvalidArgument(f"{self.uri}: a decryption key must be type=private")
        self._module, self._pin = module, pin
        self._pid = -1
        self._key: Any = None
        self._open()

    def _open(self) -> Any:
        session = open_session(self.uri, self._module, self._pin)
        attrs: dict[Any, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY}
        if self.uri.object is not None:
            attrs[Attribute.LABEL] = self.uri.object
        if self.uri.id is not None:
            attrs[Attribute.ID] = self.uri.id
        found = list(session.get_objects(attrs))
        if not found:
            raise NoSecretKey(f"no private key matches {self.uri}")
        if len(found) > 1:
            raise InvalidArgument(f"{len(found)} private keys match {self.uri}; add id= or object=")
        key = found[0]
        self.key_type = key.key_type
        try:
            self.object_id: bytes = bytes(key[Attribute.ID])
        except p11e.PKCS11Error:
            self.object_id = b""
        self.modulus = 0
        if key.key_type == KeyType.RSA:
            self.modulus = int.from_bytes(key[Attribute.MODULUS], "big")
            self._modulus_len = (self.modulus.bit_length() + 7) // 8
            self.algorithm, self.size = "rsa", self.modulus.bit_length()
        elif key.key_type in (KeyType.EC, KeyType.EC_EDWARDS):
            params = bytes(key[Attribute.EC_PARAMS])
            if params not in CURVES:
                raise UnsupportedAlgorithm(f"{self.uri}: curve {params.hex()} is not supported")
            self.algorithm, self.size = CURVES[params]
        else:
            raise UnsupportedAlgorithm(f"{self.uri}: key type {key.key_type!r} is not supported")
        self._key, self._pid = key, os.getpid()
        return key

    def __getstate__(self) -> dict[str, object]:
        """Picklable for worker processes: the session and object are looked up again there."""
        return {**self.__dict__, "_key": None, "_pid": -1}

    def _handle(self) -> Any:
        return self._key if self._pid == os.getpid() else self._open()

    def rsa_decrypt(self, c: bytes) -> bytes:
        """RSA PKCS#1 v1.5 decryption of the integer ``c`` (big-endian, leading zeros optional)."""
        key = self._handle()
        if self.algorithm != "rsa":
            raise InvalidArgument(f"{self.uri} is a {self.algorithm} key, not RSA")
        c = c.lstrip(b"\0")
        if len(c) > self._modulus_len:
            raise DecryptionFailed("decryption failed")
        return self._call(key.decrypt, c.rjust(self._modulus_len, b"\0"), mechanism=Mechanism.RSA_PKCS)

    def ecdh_derive(self, peer_point: bytes) -> bytes:
        """The ECDH shared secret with ``peer_point``: ``04||X||Y`` on NIST curves (gives X), or the 32-byte
        u-coordinate on X25519 (OpenPGP's ``0x40`` prefix is removed here)."""
        key = self._handle()
        if self.algorithm == "rsa":
            raise InvalidArgument(f"{self.uri} is an RSA key, not ECDH")
        length = _CURVES_BY_NAME[self.algorithm]
        if self.algorithm == "x25519":
            if len(peer_point) == 33 and peer_point[0] == 0x40:
                peer_point = peer_point[1:]
            if len(peer_point) != 32:
                raise DecryptionFailed("decryption failed")
        derived = self._call(
            key.derive_key,
            KeyType.GENERIC_SECRET,
            length * 8,
            mechanism=Mechanism.ECDH1_DERIVE,
            mechanism_param=(KDF.NULL, None, bytes(peer_point)),
            template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.TOKEN: False},
        )
        try:
            secret = bytes(derived[Attribute.VALUE])
        finally:
            derived.destroy()  # session objects would pile up over a bulk run otherwise
        if not any(secret):  # RFC 7748 §6.1: an all-zero X25519 output means a low-order point
            raise DecryptionFailed("decryption failed")
        return secret

    def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (
            p11e.DeviceRemoved,
            p11e.TokenNotPresent,
            p11e.SessionClosed,
            p11e.SessionHandleInvalid,
            p11e.DeviceError,
            p11e.DeviceMemory,
            p11e.UserNotLoggedIn,
            p11e.ObjectHandleInvalid,  # the token went away under an open session (SoftHSM: its
            p11e.KeyHandleInvalid,  # directory deleted), not a bad ciphertext
        ) as exc:
            raise TokenError(f"{self.uri}: {type(exc).__name__}") from exc
        except p11e.PKCS11Error as exc:  # bad padding, bad point, ... : say nothing more
            raise DecryptionFailed("decryption failed") from exc

    def __repr__(self) -> str:
        return f"<Pkcs11Key {self.uri}>"


_CURVES_BY_NAME = {name: length for name, length in CURVES.values()}
