"""Wrappers that make a real key backend behave like a slow or faulty card, for benches and tests.

They wrap a real ``RawDecryptor`` (every answer comes from a real decryption) and only add what a card
adds: a fixed latency per operation (:class:`FixedLatencyCard`) or a transient fault every n-th
operation (:class:`FlakyCard`). :class:`SoftRawDecryptor` is the real backend for a soft key (RSA via
OpenSSL, Curve25519 ECDH), picklable so a card broker can run it in its owner process. Nothing here is
used by the product's own code paths; the names say "card" because that is what they stand in for.
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, x25519

from engine.errors import DecryptionFailed, InvalidArgument
from engine.keys.errors import KeyProviderError
from engine.keys.providers import RawDecryptor
from engine.openpgp.secret_key import UnlockedKey


class SimulatedCardFault(KeyProviderError):
    """The transient error a :class:`FlakyCard` raises (a broker classifies it as retryable)."""


class SoftRawDecryptor:
    """The secret step of an in-process RSA or Curve25519 key: what a card would compute."""

    def __init__(self, key: UnlockedKey) -> None:
        if not isinstance(key.private, (rsa.RSAPrivateKey, x25519.X25519PrivateKey)):
            raise InvalidArgument(f"soft card stand-in: RSA or Curve25519 keys only, not {key.algorithm!r}")
        self._der = key.private.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._private: Any = key.private

    def __getstate__(self) -> dict[str, Any]:
        return {"_der": self._der, "_private": None}  # key objects do not pickle; DER does

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._key()  # load on arrival (a card's opening), not inside the first timed operation

    def _key(self) -> Any:
        if self._private is None:
            # Our own key, checked when it was made: skip OpenSSL's RSA key check (~45 ms for RSA-2048,
            # paid by every card owner before its first operation).
            self._private = serialization.load_der_private_key(
                self._der, None, unsafe_skip_rsa_key_validation=True
            )
        return self._private

    def rsa_decrypt(self, c: bytes) -> bytes:
        key = self._key()
        size = (key.key_size + 7) // 8
        try:
            return bytes(key.decrypt(c.lstrip(b"\0").rjust(size, b"\0"), padding.PKCS1v15()))
        except ValueError:
            raise DecryptionFailed("decryption failed") from None

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        if len(point) != 33 or point[0] != 0x40:
            raise DecryptionFailed("decryption failed")
        try:
            return bytes(self._key().exchange(x25519.X25519PublicKey.from_public_bytes(point[1:])))
        except ValueError:  # a low-order point
            raise DecryptionFailed("decryption failed") from None


class FixedLatencyCard:
    """A backend that takes exactly ``seconds`` per operation (at least what ``inner`` needs): a card's
    latency, with a real decryption inside. ``inner`` is public so the broker finds the real backend."""

    def __init__(self, inner: RawDecryptor, seconds: float = 0.05) -> None:
        self.inner, self.seconds = inner, seconds

    def _timed(self, fn: Any, *args: bytes) -> bytes:
        deadline = time.perf_counter() + self.seconds
        value: bytes = fn(*args)
        # Sleep to 2 ms before the deadline, then spin until it: a plain sleep (or a yield) overshoots by
        # 0.5-2 ms on a loaded machine, which would make the modelled card slower than it claims to be.
        while (left := deadline - time.perf_counter()) > 0.002:
            time.sleep(left - 0.002)
        while time.perf_counter() < deadline:
            pass
        return value

    def rsa_decrypt(self, c: bytes) -> bytes:
        return self._timed(self.inner.rsa_decrypt, c)

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        return self._timed(self.inner.ecdh_shared, point, wrapped)


class FlakyCard:
    """A backend whose every ``every``-th call fails with :class:`SimulatedCardFault` before reaching
    ``inner`` (as a card that glitches now and then); the other calls are real. Counts per process."""

    def __init__(self, inner: RawDecryptor, every: int = 50) -> None:
        if every < 1:
            raise InvalidArgument("every must be >= 1")
        self.inner, self.every = inner, every
        self.calls = 0

    def _count(self) -> None:
        self.calls += 1
        if self.calls % self.every == 0:
            raise SimulatedCardFault(f"simulated card fault on call {self.calls} (every {self.every}th)")

    def rsa_decrypt(self, c: bytes) -> bytes:
        self._count()
        return self.inner.rsa_decrypt(c)

    def ecdh_shared(self, point: bytes, wrapped: bytes) -> bytes:
        self._count()
        return self.inner.ecdh_shared(point, wrapped)


__all__ = ["FixedLatencyCard", "FlakyCard", "SimulatedCardFault", "SoftRawDecryptor"]
