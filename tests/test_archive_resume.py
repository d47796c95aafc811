"""Crash safety of the archive commands: kill -9 or Ctrl-C mid-run, then ``--resume``.

Encryption is randomized (fresh session keys), so two uninterrupted runs differ; what a resume must
guarantee is that the bytes already journaled are kept as they are (never re-encrypted), that every
message of SRC appears exactly once and in order, and that the output decrypts to exactly SRC.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.mail.crypto import KeyConfig, open_provider
from engine.mail.pgpmime import unwrap
from engine.mail.source import open_source
from engine.openpgp import message
from tests import mailgen
from tests.test_archive_cli import make_key, pgpbulk

ROOT = Path(__file__).resolve().parents[1]
COUNT = 400


def _start(*argv: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine", *argv], env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _commits(journal: Path) -> list[str]:
    try:
        return [line for line in journal.read_text().splitlines() if '"k":"commit"' in line]
    except FileNotFoundError:
        return []


def _committed_items(journal: Path) -> int:
    import json

    commits = _commits(journal)
    return int(json.loads(commits[-1].split("\t")[0])["items"]) if commits else 0


def _wait_for_commits(proc: subprocess.Popen[bytes], journal: Path, items: int) -> None:
    """Until the journal has committed ``items`` messages: counted in messages, not commits, since slow
    fsyncs merge several batches into one commit."""
    deadline = time.monotonic() + 60
    while _committed_items(journal) < items:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline
        time.sleep(0.002)


def _last_offset(journal: Path) -> int:
    import json

    return int(json.loads(_commits(journal)[-1].split("\t")[0])["offset"])


def _hashes(items: list[bytes]) -> list[str]:
    return [hashlib.sha256(raw).hexdigest() for raw in items]


def _decrypted(path: Path, sec: Path) -> list[bytes]:
    provider = open_provider(KeyConfig((str(sec),)))
    out = []
    for item in open_source(path):
        try:
            out.append(unwrap(item.raw, lambda a: message.decrypt(a, provider).plaintext))
        except Exception:
            out.append(item.raw)  # passed through (already encrypted samples)
    return out


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, Path, Path]:
    sec, pub = make_key(tmp_path, "alice")
    messages = [m for i, m in enumerate(mailgen.generate(seed=5, count=COUNT * 2, attachment_size=16384))
                if mailgen.kind_of(i) not in (*mailgen.CARRIED_KINDS, "pgp_mime")][:COUNT]  # fmt: skip
    assert len(messages) == COUNT
    return mailgen.write_mbox(tmp_path / "src.mbox", messages), sec, pub


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mbox", "maildir"])
def test_kill_9_then_resume(
    tmp_path: Path, archive: tuple[Path, Path, Path], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src, sec, pub = archive
    dst = tmp_path / "enc"
    journal = tmp_path / "enc.journal"
    argv = ["encrypt", str(src), "-o", str(dst), "-r", str(pub), "--output-format", fmt, "-q"]
    proc = _start(*argv, "--workers", "2", "--batch-size", "4", "--checkpoint-seconds", "0")
    _wait_for_commits(proc, journal, 20)
    os.killpg(proc.pid, signal.SIGKILL)  # the run's own process group: CLI, forkserver and workers
    proc.wait()
    partial = tmp_path / "enc.partial"
    assert not dst.exists() and partial.exists()
    if fmt == "mbox":
        offset = _last_offset(journal)
        prefix = partial.read_bytes()[:offset]
        assert offset > 0
    else:  # only what the journal claims is kept; files written after its last commit are redone
        import json

        items = int(json.loads(_commits(journal)[-1].split("\t")[0])["items"])
        lines = (tmp_path / "enc.journal-records").read_text().splitlines()[:items]
        names = {json.loads(line)["name"] for line in lines}
        before = {p.name: p.read_bytes() for p in partial.rglob("*") if p.is_file() and p.name in names}
    code, _out, err = pgpbulk(capsys, *argv[:-1], "--resume", "--workers", "2", "--verify")
    assert code == 0, err
    if fmt == "mbox":
        assert dst.read_bytes()[: len(prefix)] == prefix  # journaled bytes untouched by the resume
    else:
        after = {p.name: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
        kept = [n for n in before if n in after]
        assert len(kept) >= 20 and all(after[n] == before[n] for n in kept)
        assert len(after) == COUNT
    originals = [m.raw for m in open_source(src)]
    assert _hashes(_decrypted(dst, sec)) == _hashes(originals)  # each message once, in order, exact
    assert not journal.exists() and not partial.exists()
    assert not list(tmp_path.glob("enc.shard-*"))  # the workers' shard files of both runs are gone


@pytest.mark.slow
def test_ctrl_c_exits_130_then_resumes(
    tmp_path: Path, archive: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, sec, pub = archive
    dst, journal = tmp_path / "enc.mbox", tmp_path / "enc.mbox.journal"
    argv = ["encrypt", str(src), "-o", str(dst), "-r", str(pub)]
    proc = _start(*argv, "--workers", "2", "--batch-size", "4", "--checkpoint-seconds", "0", "-q")
    _wait_for_commits(proc, journal, 12)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"--resume" in err and err.count(b"\n") == 1
    assert not dst.exists()
    code, _, err2 = pgpbulk(capsys, "encrypt", str(src), "-o", str(dst), "-r", str(tmp_path / "alice.sec"))
    assert code == 2 and "--resume" in err2  # a fresh run would discard the interrupted one: refused
    other = make_key(tmp_path, "bob")[1]
    code, _, err2 = pgpbulk(capsys, *argv[:-1], str(other), "--resume")
    assert code == 2 and "parameters differ" in err2
    code, _out, err2 = pgpbulk(capsys, *argv, "--resume", "--workers", "1")
    assert code == 0, err2
    originals = [m.raw for m in open_source(src)]
    assert _hashes(_decrypted(dst, sec)) == _hashes(originals)
