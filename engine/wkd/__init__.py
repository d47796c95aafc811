"""Web Key Directory (draft-koch-openpgp-webkey-service): hashed local parts, URLs, trees."""

from __future__ import annotations

from engine.wkd.hashing import escape_local_part, split_address, wkd_hash, wkd_hashes, wkd_url

__all__ = ["escape_local_part", "split_address", "wkd_hash", "wkd_hashes", "wkd_url"]
