"""Mail archives: streaming readers and writers (mbox, Maildir, .eml directories), classification,
PGP/MIME wrapping with RFC 9788 header protection, and the archive jobs that tie them together.

Crypto is injected as plain callables so this layer does not depend on the OpenPGP core:
``encrypt_payload(plaintext) -> armored`` and ``decrypt_payload(armored) -> plaintext``.
"""

from __future__ import annotations

from engine.mail.classify import MailClass, classify
from engine.mail.item import MailItem
from engine.mail.job import Report, Result, decrypt_archive, encrypt_archive, process_one
from engine.mail.pgpmime import NotWrappable, unwrap, wrap
from engine.mail.source import open_sink, open_source

__all__ = [
    "MailClass",
    "MailItem",
    "NotWrappable",
    "Report",
    "Result",
    "classify",
    "decrypt_archive",
    "encrypt_archive",
    "open_sink",
    "open_source",
    "process_one",
    "unwrap",
    "wrap",
]
