"""Re-encryption of one message to new recipients: re-wrap (new PKESKs, same data packet) or in full.

``rewrap`` decrypts one PKESK with the old key (the only private-key operation), writes PKESKs for the new
recipients and keeps the encrypted data packet byte for byte; only the armored block of part 2 of the
PGP/MIME message changes. ``full`` decrypts the message and encrypts it afresh as ``encrypt`` does
(header protection included). ``auto`` re-wraps unless the container is weak (no MDC, a 64-bit cipher,
X25519 with a non-AES cipher: :func:`engine.openpgp.message.needs_full_reencryption`).

Outcomes: ``rewrapped``, ``reencrypted``, ``encrypted`` (plain mail with ``encrypt_plain``), ``passed``
(not encrypted, or not OpenPGP/MIME: left as it is), ``not-ours`` (encrypted to none of the given keys:
copied unchanged, reported), ``copied`` (could not be processed: copied unchanged with the reason).
The recorded hash is that of the input message (a re-wrap never sees the plaintext).

Repeatable: every random value of a re-wrapped or re-encrypted message (new PKESKs; in full, also the new
session key and the SEIPD prefix/salt) is derived from the message's own session key
(:mod:`engine.openpgp.derive`), so a run killed and resumed ends byte-identical to an uninterrupted
one, with nothing secret stored. Plain mail encrypted with ``encrypt_plain`` has no secret to derive
from and stays random: its bytes differ between runs (it decrypts to the same mail).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from engine.errors import NoMatchingKey
from engine.mail.classify import MailClass
from engine.mail.crypto import STOP_ERRORS, CheckedEncrypt
from engine.mail.item import MailItem
from engine.mail.pgpmime import NotWrappable, armored_span, replace_armored, unwrap, wrap
from engine.mail.report import Result
from engine.openpgp import message
from engine.openpgp.pkesk import SessionKey

if TYPE_CHECKING:
    from engine.mail.crypto import WorkerState
    from engine.mail.job import JobOptions

REENCRYPT_MODES = ("rewrap", "full", "auto")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plaintext(raw: bytes, sk: SessionKey) -> bytes:
    """The message PGP/MIME ``raw`` decrypts to with the session key ``sk`` (exact for our own)."""
    return unwrap(raw, lambda armored: message.decrypt(armored, session_key=sk).plaintext)


def _rewrap(
    raw: bytes, parsed: message.ParsedMessage, sk: SessionKey, st: WorkerState, verify: bool
) -> bytes:
    """New PKESKs whose random values are derived from the session key: the same bytes on every run."""
    new = replace_armored(
        raw, lambda _: message.rewrap(parsed, sk, st.recipients, armor=True, deterministic=True)
    )
    if verify and _plaintext(new, sk) != _plaintext(raw, sk):
        raise NotWrappable("self-check failed: the re-wrapped message does not decrypt to the original")
    return new


def _full(raw: bytes, sk: SessionKey, st: WorkerState, keep_subject: bool, verify: bool) -> bytes:
    """Decrypt and encrypt afresh, with header protection as ``encrypt`` does."""
    plain = _plaintext(raw, sk)
    encrypt = CheckedEncrypt(st.recipients, st.aead, derive_from=sk)  # repeatable: derived from sk
    new = wrap(plain, encrypt, keep_subject=keep_subject)
    if verify and _sha(unwrap(new, encrypt.open)) != _sha(plain):
        raise NotWrappable("self-check failed: the re-encrypted message does not decrypt to the original")
    return new


def reencrypt_one(item: MailItem, cls: MailClass, opts: JobOptions, st: WorkerState) -> Result:
    """Re-encrypt one message for ``st.recipients`` with the keys of ``st.provider``; never raises for
    a problem of the message itself."""
    raw, i, c = item.raw, item.index, cls.value
    if item.truncated or cls in (MailClass.EMPTY, MailClass.MALFORMED):
        return Result(i, c, "copied", raw, _sha(raw), "truncated" if item.truncated else f"{c} message")
    if cls is not MailClass.PGP_MIME:
        if opts.encrypt_plain and not cls.encrypted:
            from engine.mail.job import encrypt_checked

            return encrypt_checked(item, cls, opts)
        reason = None if not cls.encrypted else f"{c}: only PGP/MIME is re-encrypted"
        return Result(i, c, "passed", raw, _sha(raw), reason)
    try:
        begin, end, _ = armored_span(raw)
        parsed = message.parse_message(raw[begin:end])
        if st.provider is None:
            raise NoMatchingKey("no key")
        sk = message.decrypt_session_key(parsed, st.provider)
    except NoMatchingKey:
        return Result(i, c, "not-ours", raw, _sha(raw), "not encrypted to any given key")
    except STOP_ERRORS:  # a wrong PIN, a card gone: the run stops (resumable), no message is skipped
        raise
    except Exception as e:
        return Result(i, c, "copied", raw, _sha(raw), f"cannot decrypt: {e}")
    weak = message.needs_full_reencryption(parsed, sk, st.recipients)
    try:
        if opts.reencrypt_mode == "full" or (opts.reencrypt_mode == "auto" and weak):
            new = _full(raw, sk, st, opts.keep_subject, opts.verify)
            return Result(i, c, "reencrypted", new, _sha(raw), weak)
        if weak:
            return Result(i, c, "copied", raw, _sha(raw), f"weak container, not re-wrapped: {weak}")
        return Result(i, c, "rewrapped", _rewrap(raw, parsed, sk, st, opts.verify), _sha(raw))
    except Exception as e:
        return Result(i, c, "copied", raw, _sha(raw), f"re-encryption failed: {e}")


__all__ = ["REENCRYPT_MODES", "reencrypt_one"]
