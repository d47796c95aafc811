"""Which ``--key`` values name cards: those go through one card broker, the rest stay in each worker.

A card is a ``pkcs11:`` token, or a card that gpg-agent reaches through scdaemon (the agent's
``KEYINFO`` says type ``T`` and gives the card's serial number). Keys on the same card become one
:class:`~engine.keys.broker_card.Card` (one owner, one operation at a time); the same key on several
cards becomes several cards holding it, and the broker spreads the work over them. Soft keys (files,
and agent keys on disk) are not touched here: each worker opens them itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.keys.agent import PassphraseSource
from engine.keys.broker_card import Card
from engine.keys.providers import AgentDecryptor, RawDecryptor, agent_provider, pkcs11_provider
from engine.keys.uri import AgentKeySpec, Pkcs11KeySpec, parse_key_spec
from engine.openpgp.public_key import PublicKey


@dataclass
class CardPlan:
    """``cards`` for the broker; ``soft_agent``: whether some ``agent:`` key is a soft key (so workers
    still open the agent for those)."""

    cards: list[Card] = field(default_factory=list)
    soft_agent: bool = False


Entries = list[tuple[PublicKey, RawDecryptor]]


def _add(groups: dict[str, Entries], name: str, entries: Iterable[tuple[PublicKey, RawDecryptor]]) -> None:
    keys = groups.setdefault(name, [])
    for pub, raw in entries:
        if all(pub.fingerprint != p.fingerprint for p, _ in keys):  # one key named twice: once
            keys.append((pub, raw))


def plan_cards(
    specs: Sequence[str],
    gnupghome: str | None = None,
    passphrase: PassphraseSource = None,
    certs: Sequence[object] = (),
    extra: Sequence[Card] = (),
) -> CardPlan:
    """Open every card among the ``--key`` values ``specs`` once (here, in the parent) and group its keys
    by card.

    ``passphrase`` is the PIN (agent loopback or token login; a PIN in the URI wins for a token);
    ``certs`` the certificates that pair a token key with its OpenPGP key; ``extra`` cards are added as
    they are (library callers: a token object, a test stand-in). The sessions opened here are closed
    again: each card's owner process opens its own."""
    groups: dict[str, Entries] = {}
    plan = CardPlan()
    parsed = [(text, parse_key_spec(text, gnupghome)) for text in specs]
    for text, spec in parsed:
        if isinstance(spec, AgentKeySpec):
            provider = agent_provider(spec.gnupghome, spec.fingerprint, passphrase=passphrase)
            for pub, raw in provider.entries:
                card = raw.card if isinstance(raw, AgentDecryptor) else None
                if card is None:
                    plan.soft_agent = True
                else:
                    _add(groups, f"agent card {card or '(serial unknown)'}", [(pub, raw)])
            if isinstance(provider.entries[0][1], AgentDecryptor):
                provider.entries[0][1].agent.close()
        elif isinstance(spec, Pkcs11KeySpec):
            pin = passphrase.decode() if isinstance(passphrase, bytes) else passphrase
            provider = pkcs11_provider(text, certs, pin=pin if isinstance(pin, str) else None)
            uri = spec.uri
            _add(groups, f"token {uri.serial or uri.token or f'slot {uri.slot_id}'}", provider.entries)
    if any(isinstance(s, Pkcs11KeySpec) for _, s in parsed):
        from engine.keys.pkcs11 import close_all

        close_all()  # the token's owner process logs in on its own
    plan.cards = [Card(name, keys) for name, keys in groups.items()] + list(extra)
    return plan


__all__ = ["CardPlan", "plan_cards"]
