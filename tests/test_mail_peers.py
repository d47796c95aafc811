"""Real mail and OpenPGP peers read what we write: notmuch shows it decrypted, sq decrypts it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from engine.mail.job import encrypt_archive
from engine.mail.pgpmime import restore
from engine.mail.source import open_source
from tests import mailgen
from tests.conftest import require_tool

pytestmark = pytest.mark.peer


@pytest.fixture
def gpg(gnupghome: Path) -> mailgen.Gpg:
    g = mailgen.Gpg(gnupghome)
    g.generate_key()
    return g


def _notmuch(cfg: Path, home: str, *args: str) -> str:
    """Run notmuch with a throwaway config and the GnuPG home that holds the secret key."""
    env = dict(mailgen.environ_for(home), NOTMUCH_CONFIG=str(cfg))
    return subprocess.run(["notmuch", *args], env=env, capture_output=True, text=True, check=True).stdout


def test_notmuch_shows_decrypted_body_and_protected_subject(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    require_tool("notmuch")
    messages = mailgen.generate(seed=41, count=8)
    mailgen.write_maildir(tmp_path / "src", messages)
    rep = encrypt_archive(tmp_path / "src", tmp_path / "mail", gpg.encrypt)
    assert rep.outcomes["encrypted"] == 8
    cfg = tmp_path / "notmuch-config"
    cfg.write_text(
        f"[database]\npath={tmp_path / 'mail'}\n[user]\nname=Bob\nprimary_email=bob@example.org\n"
        "[new]\ntags=inbox\n[search]\nexclude_tags=\n"
    )
    _notmuch(cfg, gpg.home, "new")
    assert _notmuch(cfg, gpg.home, "count", "tag:encrypted").strip() == "8"
    # the index sees only the obscured Subject: nothing protected leaked outside
    assert _notmuch(cfg, gpg.home, "count", "subject:Plain").strip() == "0"
    for i in (0, 3, 6):  # plain, from_lines, folded
        shown = json.loads(
            _notmuch(cfg, gpg.home, "show", "--format=json", "--decrypt=true", f"id:msg{i}@example.org")
        )
        msg = shown[0][0][0]
        assert msg["crypto"]["decrypted"]["status"] == "full"
        subject = messages[i].split(b"Subject: ")[1].split(b"\nDate")[0].decode()
        assert msg["headers"]["Subject"] == subject.replace("\n", "")  # unfolded (RFC 5322 §2.2.3)
        body = json.dumps(msg["body"])
        last_line = messages[i].rstrip(b"\n").rsplit(b"\n", 1)[1].decode()
        assert json.dumps(last_line)[1:-1] in body
    hidden = json.loads(
        _notmuch(cfg, gpg.home, "show", "--format=json", "--decrypt=false", "id:msg0@example.org")
    )
    assert hidden[0][0][0]["headers"]["Subject"] == "[...]"


def test_sq_decrypts_a_sample(tmp_path: Path, gpg: mailgen.Gpg) -> None:
    require_tool("sq")
    messages = mailgen.generate(seed=42, count=8)
    src = mailgen.write_mbox(tmp_path / "src.mbox", messages)
    encrypt_archive(src, tmp_path / "enc.mbox", gpg.encrypt)
    key = gpg.export_secret(tmp_path / "alice.key")
    checked = 0
    for item, raw in zip(open_source(tmp_path / "enc.mbox"), messages, strict=True):
        if item.raw == raw:
            continue
        part = item.raw[item.raw.index(b"-----BEGIN PGP MESSAGE-----") :]
        armored = part[: part.index(b"-----END PGP MESSAGE-----") + 25] + b"\n"
        cmd = ["sq", "decrypt", "--recipient-key", str(key)]
        env = dict(os.environ, HOME=str(tmp_path))
        out = subprocess.run(cmd, input=armored, capture_output=True, check=True, env=env)
        assert restore(out.stdout) == raw
        checked += 1
    assert checked == 8
