"""Turn certificates into :class:`~engine.openpgp.pkesk.Recipient` values, once.

Choosing a certificate's encryption subkey verifies its self-signatures, which costs more than
encrypting a whole 8 KiB message; so the choice is cached per certificate object for
:data:`CACHE_SECONDS` (a subkey that expires or is revoked is noticed after at most that long; a
certificate changed in place should be passed anew, or resolved with :func:`resolve_recipients` by
the caller, who then owns the choice).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import InvalidArgument
from engine.openpgp.constants import Features, PublicKeyAlgorithm
from engine.openpgp.ecdh import EcdhParams
from engine.openpgp.pkesk import Recipient

CACHE_SECONDS = 60.0
_cache: weakref.WeakKeyDictionary[Any, tuple[float, Recipient]] = weakref.WeakKeyDictionary()


def recipient_of(obj: Any) -> Recipient:
    """The encryption key of a certificate (``Cert.encryption_subkey()``), a PublicKey or a Recipient.

    Certificates are resolved once per :data:`CACHE_SECONDS`; resolve explicitly with
    :func:`resolve_recipients` for full control.
    """
    if isinstance(obj, Recipient):
        return obj
    try:
        hit = _cache.get(obj)
    except TypeError:  # not weak-referenceable
        hit = None
    now = time.monotonic()
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    rcpt = _resolve(obj)
    with contextlib.suppress(TypeError):  # not weak-referenceable: resolved again next time
        _cache[obj] = (now, rcpt)
    return rcpt


def _resolve(obj: Any) -> Recipient:
    key = obj.encryption_subkey() if hasattr(obj, "encryption_subkey") else obj
    key = getattr(key, "public", key)  # a secret key exposing its public part
    if key is None:
        raise InvalidArgument("certificate has no usable encryption key")
    params = None
    if key.algorithm == PublicKeyAlgorithm.ECDH:
        params = EcdhParams(key.curve, key.kdf_hash, key.kdf_cipher)
    alg = PublicKeyAlgorithm(key.algorithm)
    return Recipient(alg, key.fingerprint, key.version, key.to_crypto(), params, supports_seipd_v2(obj))


def resolve_recipients(certs: Iterable[Any]) -> list[Recipient]:
    """Recipients ready for repeated encryption (subkey chosen, public key loaded)."""
    return [recipient_of(c) for c in certs]


def supports_seipd_v2(cert: Any) -> bool:
    """True when the certificate's Features subpacket advertises SEIPD v2."""
    features = getattr(cert, "features", None)
    if callable(features):
        features = features()
    return features is not None and bool(int(features) & Features.SEIPD_V2)


def choose_aead(recipients: Sequence[Recipient], aead: bool | None) -> bool:
    """SEIPD v2 when asked, else only when every recipient advertises it."""
    if aead is not None:
        return aead
    return bool(recipients) and all(r.seipd_v2 for r in recipients)
