"""Mail archives: streaming readers and writers (mbox, Maildir, .eml directories), classification,
PGP/MIME wrapping with RFC 9788 header protection, and the archive jobs that tie them together.

Readers, writers, classification and PGP/MIME take crypto as plain callables
(``encrypt_payload(plaintext) -> armored``, ``decrypt_payload(armored) -> plaintext``), so any peer can be
plugged in; :mod:`engine.mail.crypto` adapts the in-process OpenPGP core and the key providers to that, and
:func:`engine.mail.job.run_job` runs encrypt / decrypt / reencrypt on the process pool with a journal.
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
