"""The archive commands start the pool's fork server from their raw arguments, before the parser is built,
when those plainly ask for a pool and name no card key; anything unclear waits for the parsed arguments."""

from __future__ import annotations

import pytest

import engine.cli
import engine.mail.cli as mail_cli
from engine.scheduler import start

BASE = ["mail.mbox", "-o", "out.mbox", "-r", "cert.pgp"]


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    calls: list[int | None] = []
    monkeypatch.setattr(start, "prestart", lambda workers, initializer, modules: calls.append(workers))
    return calls


@pytest.mark.parametrize(
    ("words", "workers"),
    [
        (BASE, None),
        ([*BASE, "--workers", "3"], 3),
        (["--workers=4", *BASE], 4),
        ([*BASE, "--workers", "1"], 1),  # prestart itself does nothing for one worker
        ([*BASE, "--wkd-connect", "localhost:1"], None),
        ([*BASE, "--keep-subject", "--key", "secret.pgp"], None),
    ],
)
def test_plain_arguments_start_the_server_early(words: list[str], workers: int | None, started: list) -> None:
    mail_cli.prestart_early(words)
    assert started == [workers]


@pytest.mark.parametrize(
    "extra",
    [
        ["--key", "agent:"],
        ["--key=PKCS11:token=x"],
        ["--work", "1"],  # an abbreviation argparse accepts: left to the parser
        ["--workers", "many"],
        ["--workers"],
        ["--help"],
        ["-h"],
    ],
)
def test_unclear_or_card_arguments_wait_for_the_parser(extra: list[str], started: list) -> None:
    mail_cli.prestart_early([*BASE, *extra])
    assert started == []


def test_the_command_line_starts_it_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(mail_cli, "prestart_early", lambda words: seen.append(list(words)))
    _parser, args = engine.cli._parse(["encrypt", *BASE, "--workers", "2"])
    assert seen == [[*BASE, "--workers", "2"]] and args.workers == 2
    engine.cli._parse(["wkd", "url", "a@example.org"])
    assert len(seen) == 1
