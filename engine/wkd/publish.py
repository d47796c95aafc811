"""Atomic publication of a WKD tree under ``WEBROOT/.well-known/openpgpkey``.

Layout: ``.well-known/openpgpkey`` is a symlink to a versioned directory ``openpgpkey.v-STAMP-ID`` beside
it. A build writes into ``openpgpkey.new-XXXX`` (a fresh directory the web server never sees), syncs it,
renames it to its version name, then replaces the symlink with ``rename(2)`` of a new symlink over it:
a path lookup resolves either the old or the new complete tree, never a mix. A first run over a real
directory (from gpg-wks-client, say) swaps it with ``renameat2(RENAME_EXCHANGE)``, also atomic. Old
versions beyond ``keep`` are removed after the switch; a killed build leaves only an ``openpgpkey.new-*``
directory that the next build removes. One build at a time (``flock`` on ``.well-known``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from operator import itemgetter
from pathlib import Path
from typing import Any

from engine.errors import InvalidArgument
from engine.scheduler import Failed, WorkerCrashed, run_ordered
from engine.scheduler.start import prestart
from engine.wkd import manifest as mf
from engine.wkd.build import OTHER_DOMAIN, BuildOptions, Packed, select_work
from engine.wkd.policy import policy_bytes
from engine.wkd.sources import CertBlob, CertRun, SourceProblem, iter_cert_blobs
from engine.wkd.tree import INDEX_PREFIX, TreeWriter
from engine.wkd.validate import normalize_domain

__all__ = ["BuildReport", "build", "current_version", "switch_symlink"]

LINK = "openpgpkey"
VERSION_PREFIX = "openpgpkey.v-"
STAGING_PREFIX = "openpgpkey.new-"
_EXAMPLES = 3
_TASK_CERTS = 128  # certificates per worker task (at least; a run is not cut)
_TASK_BYTES = 4 << 20


@dataclass
class BuildReport:
    """What a build did: counts, reasons for what was left out, timings, the difference to before."""

    keys: int = 0
    addresses: int = 0
    files_written: int = 0
    files_reused: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    problems: list[SourceProblem] = field(default_factory=list)
    seconds: float = 0.0
    seconds_parse: float = 0.0  # worker CPU, summed over workers
    seconds_verify: float = 0.0  # worker CPU
    seconds_select: float = 0.0  # worker CPU: filter and build the minimal keys
    seconds_write: float = 0.0  # worker file writes plus the parent's merge, sync and switch
    seconds_sync: float = 0.0
    version: str = ""
    manifest_path: str = ""
    diff: mf.Diff | None = None

    def skip(self, reason: str, what: str) -> None:
        self.skipped[reason] += 1
        self._example(reason, what)

    def _example(self, reason: str, what: str) -> None:
        ex = self.examples.setdefault(reason, [])
        if len(ex) < _EXAMPLES:
            ex.append(what)

    def skip_all(self, skipped: Sequence[tuple[str, str]]) -> None:
        """:meth:`skip` each ``(reason, what)`` in order: counted at once, the examples taken only while
        one of these reasons still lacks some (a worker's batch skips thousands in another domain)."""
        reasons = list(map(itemgetter(0), skipped))
        self.skipped.update(reasons)
        if all(len(self.examples.get(reason, ())) >= _EXAMPLES for reason in set(reasons)):
            return
        for reason, what in skipped:
            self._example(reason, what)

    @property
    def keys_per_second(self) -> float:
        return self.keys / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line: keys read, addresses published, skipped with reasons, time, keys/s."""
        shown = {r: n for r, n in self.skipped.items() if r != OTHER_DOMAIN}
        skipped = ", ".join(f"{n} {r}" for r, n in sorted(shown.items(), key=lambda x: -x[1])) or "none"
        if self.skipped.get(OTHER_DOMAIN):
            skipped += f" (+{self.skipped[OTHER_DOMAIN]} in other domains)"
        return (
            f"wkd build: {self.keys} keys read, {self.addresses} addresses published, skipped: {skipped}; "
            f"{self.seconds:.2f} s, {self.keys_per_second:.0f} keys/s"
        )


# -- the switch ----------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: file system or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def switch_symlink(link: Path, target: str) -> Path | None:
    """Point ``link`` at ``target`` (a name beside it) atomically. When ``link`` was a real directory,
    it is swapped out and its new path returned (so the caller can keep or remove it)."""
    tmp = link.with_name(f".{link.name}.switch-{os.getpid()}-{secrets.token_hex(4)}")
    os.symlink(target, tmp)
    if link.is_symlink() or not os.path.lexists(link):
        os.replace(tmp, link)
        return None
    if not link.is_dir():
        os.unlink(tmp)
        raise InvalidArgument(f"{link} exists and is neither a directory nor a symlink")
    moved = link.with_name(f"{VERSION_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-migrated")
    if _exchange(tmp, link):
        os.rename(tmp, moved)
    else:  # no atomic exchange here: a brief moment without a tree
        os.rename(link, moved)
        os.replace(tmp, link)
    return moved


def _sync_tree(path: Path) -> None:
    """Make everything under ``path`` durable: one ``syncfs(2)`` of its file system (``sync`` where
    missing) instead of an fsync per file and directory. Crash safety rests on this ordering: the new
    version is renamed and the symlink switched only after this returns, so after a crash the link
    points either at the old tree or at a complete new one."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if getattr(libc, "syncfs", None) is None or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _start_sync(path: Path) -> threading.Thread:
    """Begin :func:`_sync_tree` of ``path`` in a thread (the call waits in the kernel, without the GIL):
    the workers' files and the merged ones go to disk while the parent writes the manifest. It does not
    replace the final :func:`_sync_tree`, which covers the files written after it started; that one
    finds little left to write. (Syncing during the run too, every half second, halved this tail but
    made the build slower here: the write-out's CPU then competes with the workers.)"""
    early = threading.Thread(target=_sync_tree, args=(path,), name="wkd-early-sync", daemon=True)
    early.start()
    return early


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_version(webroot: str | os.PathLike[str]) -> Path | None:
    """The directory ``.well-known/openpgpkey`` resolves to now, or None."""
    link = Path(webroot) / ".well-known" / LINK
    return link.resolve() if link.exists() else None


@contextlib.contextmanager
def _locked(wellknown: Path) -> Iterator[None]:
    fd = os.open(wellknown, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InvalidArgument(f"another WKD build is running in {wellknown}") from None
        yield
    finally:
        os.close(fd)


def _cleanup(wellknown: Path, current: str, keep: int) -> None:
    """Remove stale staging directories and versions beyond the current one and ``keep`` previous."""
    versions = sorted(
        (
            p
            for p in wellknown.iterdir()
            if p.name.startswith(VERSION_PREFIX) and p.is_dir() and not p.is_symlink()
        ),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    old = [p for p in versions if p.name != current]
    for p in old[keep:]:
        shutil.rmtree(p, ignore_errors=True)


# -- the previous version, for --incremental -------------------------------------------------------
def _previous_files(old: Path | None, manifest: mf.Manifest | None) -> dict[str, tuple[str, Path]]:
    """Relative path -> (SHA-256, absolute path) of the live tree (from its manifest, else by hashing)."""
    if old is None:
        return {}
    if manifest is not None and manifest.version == old.name:
        return {rel: (e["sha256"], old / rel) for e in manifest.entries for rel in e["paths"].values()}
    out = {}
    for path in old.rglob("*"):
        if path.is_file() and path.parent.name == "hu":
            out[str(path.relative_to(old))] = (hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return out


# -- the build -------------------------------------------------------------------------------------
def _blobs(
    items: Iterable[CertBlob | CertRun | SourceProblem], report: BuildReport
) -> Iterator[CertBlob | CertRun]:
    for item in items:
        if isinstance(item, SourceProblem):
            report.problems.append(item)
            report.skip(item.reason.split(":")[0], f"{item.source} byte {item.offset}")
        else:
            yield item


def _tasks(items: Iterable[CertBlob | CertRun], counts: deque[int]) -> Iterator[list[CertBlob | CertRun]]:
    """The workers' tasks: lists of about :data:`_TASK_CERTS` certificates (fewer once
    :data:`_TASK_BYTES` are reached), each one's certificate count appended to ``counts`` as it goes.
    Larger tasks than the pool's batches of 64 and runs instead of one object per certificate: the
    parent's CPU goes per object cut and pickled and per task (its pool threads)."""
    task: list[CertBlob | CertRun] = []
    certs = size = 0
    for item in items:
        task.append(item)
        certs += len(item.ends) if isinstance(item, CertRun) else 1
        size += len(item.data)
        if certs >= _TASK_CERTS or size >= _TASK_BYTES:
            counts.append(certs)
            yield task
            task, certs, size = [], 0, 0
    if task:
        counts.append(certs)
        yield task


def build(
    out: str | os.PathLike[str],
    sources: Sequence[str],
    *,
    gnupghome: str | None = None,
    domains: Sequence[str] | None = None,
    method: str = "advanced",
    include_expired: bool = False,
    include_revoked: bool = False,
    submission_address: str | None = None,
    protocol_version: int | None = None,
    workers: int | None = None,
    incremental: bool = False,
    manifest_path: str | os.PathLike[str] | None = None,
    keep: int = 1,
    now: int | None = None,
    progress: Any = None,
    lean: bool = True,
) -> BuildReport:
    """Build the WKD tree of ``sources`` and publish it atomically under ``out/.well-known/openpgpkey``.

    ``lean=False`` selects with the reference path only (full :class:`Cert` per key; tests compare).
    """
    t0 = time.perf_counter()
    prestart(workers, None, [__name__])  # the pool's fork server loads the workers' modules once, now
    if not sources and not gnupghome:
        raise InvalidArgument("no keyring given: name files, directories, '-' or --gnupghome")
    chosen = sorted({normalize_domain(d) for d in domains}) if domains else None
    if method != "advanced" and chosen is not None and len(chosen) > 1:
        raise InvalidArgument("the direct method serves one domain per web root: name exactly one --domain")
    policy = policy_bytes(submission_address, protocol_version)
    opts = BuildOptions(
        frozenset(chosen) if chosen else None, include_expired, include_revoked, now, None, method, lean
    )
    report = BuildReport()
    wellknown = Path(out) / ".well-known"
    wellknown.mkdir(parents=True, exist_ok=True)
    manifest_file = Path(manifest_path) if manifest_path else mf.default_path(out)
    report.manifest_path = str(manifest_file)
    with _locked(wellknown):
        for stale in wellknown.glob(f"{STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in wellknown.glob(f"{INDEX_PREFIX}*"):
            stale.unlink(missing_ok=True)  # the index of a killed build
        old = current_version(out)
        old_manifest = mf.load(manifest_file) if manifest_file.exists() else None
        previous = _previous_files(old, old_manifest) if incremental else {}
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=wellknown))
        name = f"{VERSION_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
        writer: TreeWriter | None = None
        manifest: mf.ManifestWriter | None = None
        early: threading.Thread | None = None
        try:
            staging.chmod(0o755)
            writer = TreeWriter(staging, method, policy, chosen or (), previous)
            _run(sources, gnupghome, replace(opts, root=str(staging)), workers, writer, report, progress)
            t_finish = time.perf_counter()
            writer.merge(report.skip)  # before the sync starts: a file replaced during one waited here
            early = _start_sync(staging)  # the workers' files, while the parent finishes the tree
            manifest = mf.ManifestWriter(manifest_file, name, method, hashlib.sha256(policy).hexdigest())
            changes = mf.DiffBuilder(old_manifest) if incremental else None
            see = changes.see_file if changes is not None else None
            for texts in writer.finish_entries(report.skip, see):
                manifest.add_json(texts)
            manifest.close(sorted(writer.domains))
            writer.close()
            report.seconds_write += time.perf_counter() - t_finish
            if not writer.addresses and not chosen and old is not None:
                raise InvalidArgument("nothing to publish; the published tree was left as it is")
            t_write = time.perf_counter()
            early.join()
            _sync_tree(staging)  # every file durable before the switch makes it visible
            report.seconds_sync = time.perf_counter() - t_write
            os.rename(staging, wellknown / name)
        except BaseException:
            if early is not None:
                early.join()
            if writer is not None:
                writer.close()
            if manifest is not None:
                manifest.abort()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        switch_symlink(wellknown / LINK, name)
        _fsync_dir(wellknown)
        manifest.commit()
        report.seconds_write += time.perf_counter() - t_write
        if changes is not None:
            report.diff = changes.result()
        _cleanup(wellknown, name, keep)
    report.addresses = writer.addresses
    report.files_written, report.files_reused = writer.written, writer.reused
    report.version = name
    report.seconds = time.perf_counter() - t0
    return report


def _run(
    sources: Sequence[str],
    gnupghome: str | None,
    opts: BuildOptions,
    workers: int | None,
    writer: TreeWriter,
    report: BuildReport,
    progress: Any,
) -> None:
    """Feed the certificates to the worker pool and the results to the writer, in input order."""
    counts: deque[int] = deque()  # certificates per task not yet delivered, in input order
    blobs = _blobs(iter_cert_blobs(sources, gnupghome, run_certs=_TASK_CERTS), report)
    results = run_ordered(
        _tasks(blobs, counts), functools.partial(select_work, opts), workers=workers, batch_size=1
    )
    try:
        _take(results, counts, writer, report, progress)
    except WorkerCrashed as exc:  # numbered in certificates, as when each was a pool item
        cause = exc.__cause__
        raise WorkerCrashed(report.keys, f"{type(cause).__name__}: {cause}" if cause else "") from cause


def _take(
    results: Iterable[Packed | Failed],
    counts: deque[int],
    writer: TreeWriter,
    report: BuildReport,
    progress: Any,
) -> None:
    """The workers' results, in input order, into the report and the writer."""
    for res in results:
        keys = counts.popleft()
        report.keys += keys
        if progress is not None:
            progress.update(keys)
        if isinstance(res, Failed):
            report.skip("worker error", res.reason)
            continue
        assert isinstance(res, Packed)
        report.seconds_parse += res.seconds_parse
        report.seconds_verify += res.seconds_verify
        report.seconds_select += res.seconds_select
        report.seconds_write += res.seconds_write
        t = time.perf_counter()
        report.skip_all(res.skipped)
        writer.add_packed(res)
        report.seconds_write += time.perf_counter() - t
