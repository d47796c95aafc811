"""Atomic publication: symlink switch, readers never see a half tree, incremental reuse, kill midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import InvalidArgument
from engine.openpgp.keygen import export, generate
from engine.wkd import wkd_hash
from engine.wkd.publish import LINK, _locked, build, current_version

ROOT = Path(__file__).resolve().parent.parent


def key_list(n: int, domain: str = "example.org", prefix: str = "user") -> list[bytes]:
    return [export(generate(f"U{i} <{prefix}{i}@{domain}>").public(), armor=False) for i in range(n)]


def keys(n: int, domain: str = "example.org", prefix: str = "user") -> bytes:
    return b"".join(key_list(n, domain, prefix))


def snapshot(tree: Path) -> dict[str, bytes]:
    return {str(p.relative_to(tree)): p.read_bytes() for p in sorted(tree.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ring(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ring") / "ring.gpg"
    parts = key_list(20)
    path.write_bytes(b"".join(parts))
    path.with_suffix(".19").write_bytes(b"".join(parts[:19]))
    return path


def test_symlink_to_version_keep_one_previous(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    versions = []
    for _ in range(3):
        versions.append(build(www, [str(ring)], workers=0).version)
    wk = www / ".well-known"
    link = wk / LINK
    assert link.is_symlink() and os.readlink(link) == versions[-1]
    left = sorted(p.name for p in wk.iterdir() if p.name != LINK)
    assert left == sorted(versions[-2:])
    assert current_version(www) == (wk / versions[-1]).resolve()


def test_incremental_reuses_files_and_reports_changes(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    first = current_version(www)
    assert first is not None
    extra = tmp_path / "extra.gpg"
    extra.write_bytes(
        keys(2, prefix="new") + export(generate("U0 <user0@example.org>").public(), armor=False)
    )
    smaller = ring.with_suffix(".19")  # without the last key
    report = build(www, [str(smaller), str(extra)], workers=0, incremental=True)
    assert report.diff is not None
    assert report.diff.added == ["new0@example.org", "new1@example.org"]
    assert report.diff.changed == ["user0@example.org"] and report.diff.removed == ["user19@example.org"]
    assert report.diff.unchanged == 18 and report.files_reused == 18
    new = current_version(www)
    assert new is not None and new != first
    same = first / "example.org" / "hu" / wkd_hash("user5")
    assert same.stat().st_ino == (new / "example.org" / "hu" / wkd_hash("user5")).stat().st_ino
    assert (new / "example.org" / "hu" / wkd_hash("user0")).stat().st_size > same.stat().st_size


def test_incremental_diff_reads_escaped_addresses(tmp_path: Path, ring: Path) -> None:
    """The diff takes each entry's address and SHA-256 from the entry's JSON text: an address with a
    quote, a backslash or non-ASCII letters comes out as itself, and unchanged files are seen so."""
    odd_uids = ['Q <q"uote@example.org>', "B <back\\slash@example.org>", "J <jörg@example.org>"]
    odd = tmp_path / "odd.gpg"
    odd.write_bytes(b"".join(export(generate(uid).public(), armor=False) for uid in odd_uids))
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    added = build(www, [str(ring), str(odd)], workers=0, incremental=True).diff
    again = build(www, [str(ring), str(odd)], workers=0, incremental=True)
    assert added is not None and again.diff is not None
    assert added.added == sorted(['q"uote@example.org', "back\\slash@example.org", "jörg@example.org"])
    assert added.unchanged == 20 and not added.changed and not added.removed
    assert again.diff.unchanged == again.files_reused == 23 and not again.diff.added


def test_reader_never_sees_a_half_tree(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    link = www / ".well-known" / LINK
    expected = snapshot(link)
    stop = threading.Event()
    seen: list[str] = []
    errors: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                if snapshot(link) != expected:  # one resolution of the link per file: each must be whole
                    errors.append("content differs")
                seen.append(os.readlink(link))
            except OSError as exc:
                errors.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(4):
            build(www, [str(ring)], workers=0)
    finally:
        stop.set()
        t.join()
    assert not errors and len(set(seen)) >= 2


def test_first_switch_over_a_real_directory(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    old = www / ".well-known" / LINK / "example.org" / "hu"
    old.mkdir(parents=True)
    (old / "legacy").write_bytes(b"gpg-wks-client was here")
    build(www, [str(ring)], workers=0)
    link = www / ".well-known" / LINK
    assert link.is_symlink() and not (link / "example.org" / "hu" / "legacy").exists()
    migrated = [p for p in (www / ".well-known").iterdir() if p.name.endswith("-migrated")]
    assert len(migrated) == 1 and (migrated[0] / "example.org" / "hu" / "legacy").exists()


def test_one_build_at_a_time_and_empty_build_refused(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    before = snapshot(www / ".well-known" / LINK)
    with _locked(www / ".well-known"), pytest.raises(InvalidArgument, match="another WKD build"):
        build(www, [str(ring)], workers=0)
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidArgument, match="nothing to publish"):
        build(www, [str(empty)], workers=0)
    assert snapshot(www / ".well-known" / LINK) == before
    assert not list((www / ".well-known").glob("openpgpkey.new-*"))


def test_kill_midway_leaves_old_tree(tmp_path: Path, ring: Path) -> None:
    www = tmp_path / "www"
    build(www, [str(ring)], workers=0)
    before = snapshot(www / ".well-known" / LINK)
    big = tmp_path / "big.gpg"
    big.write_bytes(ring.read_bytes() * 300)  # 6000 certificates: several seconds of work
    code = (
        "import sys; from engine.wkd.publish import build; "
        f"build({str(www)!r}, [{str(big)!r}], workers=1, incremental=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    wk = www / ".well-known"
    deadline = time.monotonic() + 30
    while not any(any(p.rglob("*/hu/*")) for p in wk.glob("openpgpkey.new-*")):
        assert proc.poll() is None and time.monotonic() < deadline, "build ended before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot(wk / LINK) == before
    assert list(wk.glob("openpgpkey.new-*"))  # the half-built tree is still there, unserved
    build(www, [str(ring)], workers=0)
    assert not list(wk.glob("openpgpkey.new-*")) and snapshot(wk / LINK) == before


def test_last_sync_sees_the_published_tree(
    tmp_path: Path, ring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The early background sync runs after the parent's own writes (two keys merged into one
    address's file: rewriting a file during a sync waits for it); the final sync, in the building
    thread, must see the tree as published."""
    from engine.wkd import publish

    seen: list[tuple[str, dict[str, bytes]]] = []
    real = publish._sync_tree

    def spy(path: Path) -> None:
        seen.append((threading.current_thread().name, snapshot(path)))
        real(path)

    monkeypatch.setattr(publish, "_sync_tree", spy)
    twin = tmp_path / "twin.gpg"  # a second key for user0's address: the parent merges the file
    twin.write_bytes(export(generate("Twin <user0@example.org>").public(), armor=False))
    www = tmp_path / "www"
    build(www, [str(ring), str(twin)], workers=0)
    assert [name for name, _ in seen] == ["wkd-early-sync", threading.current_thread().name]
    final = snapshot(current_version(www))  # type: ignore[arg-type]
    assert seen[0][1] == seen[-1][1] == final
    assert len(final) > 20 and len(final[f"example.org/hu/{wkd_hash('user0')}"]) > len(
        final[f"example.org/hu/{wkd_hash('user1')}"]
    )


def test_build_starts_the_fork_server_with_its_modules(
    tmp_path: Path, ring: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A build with a pool has the fork server load the workers' modules once, before the pool starts
    (each worker then starts with them loaded instead of importing them itself)."""
    from engine.wkd import publish

    calls: list[tuple[object, ...]] = []
    real = publish.run_ordered

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(("pool",))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(publish, "prestart", lambda *args: calls.append(args))
    monkeypatch.setattr(publish, "run_ordered", spy)
    build(tmp_path / "www", [str(ring)], workers=2)
    assert calls == [(2, None, ["engine.wkd.publish"]), ("pool",)]
