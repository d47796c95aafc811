"""Errors of the key providers; all derive from the project vocabulary in :mod:`engine.errors`."""

from __future__ import annotations

from engine.errors import PgpBulkError, UnusableKey


class KeyProviderError(PgpBulkError):
    """A key provider (agent, token) failed for a reason other than the key itself."""


class AssuanError(KeyProviderError):
    """The Assuan peer answered ``ERR``. ``code`` is the gpg-error code (low 16 bits), ``source`` its
    source component (bits 24-30), ``text`` the peer's description."""

    def __init__(self, command: str, raw_code: int, text: str) -> None:
        self.command = command
        self.raw_code = raw_code
        self.code = raw_code & 0xFFFF
        self.source = (raw_code >> 24) & 0x7F
        self.text = text
        super().__init__(f"{command}: {text} (gpg-error {self.code}, source {self.source})")


class AssuanProtocolError(KeyProviderError):
    """The peer broke the Assuan protocol, closed the connection, or did not answer in time."""


class AssuanTimeout(AssuanProtocolError, TimeoutError):
    """No answer from the peer within the timeout; the connection is closed."""


class BadPassphrase(UnusableKey):
    """The passphrase or PIN was wrong, missing, or the user cancelled."""


class NoSecretKey(UnusableKey):
    """The provider does not hold the requested secret key."""


class TokenError(KeyProviderError):
    """A PKCS#11 module or token failed (not found, not initialized, mechanism refused)."""


class ProviderStopped(KeyProviderError):
    """The provider cannot go on (card removed or not answering, broker gone): every further operation
    would fail the same way, so a bulk run stops (resumably) instead of skipping messages."""
