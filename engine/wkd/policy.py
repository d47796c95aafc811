"""The WKD policy file (draft-koch-openpgp-webkey-service section 4.5): one per domain, may be empty."""

from __future__ import annotations

from engine.errors import InvalidArgument
from engine.wkd.validate import normalize_address

__all__ = ["policy_bytes"]


def policy_bytes(submission_address: str | None = None, protocol_version: int | None = None) -> bytes:
    """The policy file's content: empty, or ``submission-address`` / ``protocol-version`` lines.

    A Web Key Service that accepts submissions names its address here; ``protocol-version`` tells
    clients which draft revision the service speaks (gpg-wks-client reads both).
    """
    lines = []
    if protocol_version is not None:
        if not 1 <= protocol_version <= 255:
            raise InvalidArgument(f"protocol-version must be 1..255, not {protocol_version}")
        lines.append(f"protocol-version: {protocol_version}")
    if submission_address:
        normalize_address(submission_address)  # refuses what is not a plain address
        if any(c.isspace() for c in submission_address):
            raise InvalidArgument("submission address must not contain white space")
        lines.append(f"submission-address: {submission_address}")
    return "".join(f"{line}\n" for line in lines).encode("utf-8")
