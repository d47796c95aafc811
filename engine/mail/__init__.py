"""Mail archives: streaming readers and writers (mbox, Maildir, .eml directories), classification,
PGP/MIME wrapping with RFC 9788 header protection, and the archive jobs that tie them together.

Readers, writers, classification and PGP/MIME take crypto as plain callables
(``encrypt_payload(plaintext) -> armored``, ``decrypt_payload(armored) -> plaintext``), so any peer can be
plugged in; :mod:`engine.mail.crypto` adapts the in-process OpenPGP core and the key providers to that, and
:func:`engine.mail.job.run_job` runs encrypt / decrypt / reencrypt on the process pool with a journal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine._lazy import lazy_attributes

if TYPE_CHECKING:
    from engine.mail.classify import MailClass, classify
    from engine.mail.item import MailItem
    from engine.mail.job import Report, Result, decrypt_archive, encrypt_archive, process_one
    from engine.mail.pgpmime import NotWrappable, unwrap, wrap
    from engine.mail.source import open_sink, open_source

#: What the archive jobs' workers import: the pool's fork server loads these once (and the command line
#: starts that server before it imports them itself, so both load at once on two cores).
WORKER_MODULES = ("engine.mail.crypto", "engine.mail.job", "engine.mail.reencrypt", "engine.keys.broker_client")

# Loaded on first use (PEP 562): the command line imports ``engine.mail.cli`` to build its parser, and
# must not pay for the OpenPGP core and the jobs (about 0.3 s) before it can start the worker pool.
_WHERE = {
    "MailClass": "classify", "classify": "classify", "MailItem": "item", "Report": "job", "Result": "job",
    "decrypt_archive": "job", "encrypt_archive": "job", "process_one": "job", "NotWrappable": "pgpmime",
    "unwrap": "pgpmime", "wrap": "pgpmime", "open_sink": "source", "open_source": "source",
}  # fmt: skip


__getattr__ = lazy_attributes(__name__, _WHERE, globals())


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
