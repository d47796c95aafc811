"""Block ciphers by OpenPGP ID and the CFB contexts built on them (RFC 9580 section 9.3).

AES is current; Camellia, CAST5, Blowfish, TripleDES and IDEA come from `cryptography`'s decrepit module
and are read-only in practice (we never choose them when writing). Twofish is not available.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, CipherAlgorithm, CipherContext, algorithms

from engine.errors import InvalidArgument, UnsupportedAlgorithm
from engine.openpgp.constants import SymmetricAlgorithm

try:  # cryptography >= 47 keeps the legacy ciphers and CFB here
    from cryptography.hazmat.decrepit.ciphers import algorithms as _legacy
    from cryptography.hazmat.decrepit.ciphers.modes import CFB as _CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers import algorithms as _legacy  # type: ignore[no-redef]
    from cryptography.hazmat.primitives.ciphers.modes import CFB as _CFB  # type: ignore[assignment]

_FACTORIES = {
    SymmetricAlgorithm.AES128: algorithms.AES,
    SymmetricAlgorithm.AES192: algorithms.AES,
    SymmetricAlgorithm.AES256: algorithms.AES,
    SymmetricAlgorithm.CAMELLIA128: _legacy.Camellia,
    SymmetricAlgorithm.CAMELLIA192: _legacy.Camellia,
    SymmetricAlgorithm.CAMELLIA256: _legacy.Camellia,
    SymmetricAlgorithm.CAST5: _legacy.CAST5,
    SymmetricAlgorithm.BLOWFISH: _legacy.Blowfish,
    SymmetricAlgorithm.TRIPLEDES: _legacy.TripleDES,
    SymmetricAlgorithm.IDEA: _legacy.IDEA,
}


def symmetric_algorithm(value: int) -> SymmetricAlgorithm:
    """The enum member for a wire ID; UnsupportedAlgorithm for unknown IDs and plaintext (0)."""
    try:
        alg = SymmetricAlgorithm(value)
    except ValueError:
        raise UnsupportedAlgorithm(f"symmetric algorithm {value}") from None
    if alg not in _FACTORIES:
        raise UnsupportedAlgorithm(f"symmetric algorithm {alg.name}")
    return alg


def check_key(cipher: SymmetricAlgorithm, key: bytes) -> None:
    """InvalidArgument unless ``key`` has the size ``cipher`` wants."""
    if cipher not in _FACTORIES:
        raise UnsupportedAlgorithm(f"symmetric algorithm {cipher!r}")
    if len(key) != cipher.key_size:
        raise InvalidArgument(f"{cipher.name} needs a {cipher.key_size}-octet key, got {len(key)}")


def block_cipher(cipher: SymmetricAlgorithm, key: bytes) -> CipherAlgorithm:
    """A `cryptography` cipher object for ``cipher`` keyed with ``key``."""
    check_key(cipher, key)
    return _FACTORIES[cipher](key)


def cfb_encryptor(cipher: SymmetricAlgorithm, key: bytes, iv: bytes | None = None) -> CipherContext:
    """Standard CFB (zero IV unless given): OpenPGP CFB without resync is exactly this."""
    return Cipher(block_cipher(cipher, key), _CFB(iv or bytes(cipher.block_size))).encryptor()


def cfb_decryptor(cipher: SymmetricAlgorithm, key: bytes, iv: bytes | None = None) -> CipherContext:
    """The decrypting twin of :func:`cfb_encryptor`."""
    return Cipher(block_cipher(cipher, key), _CFB(iv or bytes(cipher.block_size))).decryptor()
