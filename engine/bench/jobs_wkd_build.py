"""Bench job ``wkd-build``: a whole WKD tree (advanced method, one domain) from one generated keyring.

The keyring (:mod:`engine.wkd.sample`): Ed25519/X25519 keys derived from the seed and, every fourth
key, an RSA-3072 key taken from a pool of four key pairs made once and cached as PEM beside the data
(RSA key generation costs about a second a key; creation times and User IDs make each key distinct).
1-3 User IDs per key, about 1 % of addresses held by two keys, some User IDs in another domain.

Implementations, all writing into fresh directories of the bench cache (the same file system):
``pgpbulk wkd build`` on all cores (the library call ``engine.wkd.publish.build``, atomic switch and
manifest included); ``sq wkd generate WEBROOT DOMAIN KEYRING`` (one process, all keys); and
``gpg-wks-client --install-key`` one process per address as its manual says, run on the first
:data:`PER_PROCESS` keys and scaled to the job's count. Throughput is keys per second.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.bench import peers
from engine.bench.registry import Dataset, DataSpec, Impl, Job, cache_dir, warm_page_cache

DOMAIN = "example.org"
RSA_POOL, RSA_EVERY = 4, 4
PER_PROCESS = 30  # keys run through gpg-wks-client (quick: 8)


def _pool() -> list[Any]:
    """The cached RSA-3072 pool (made on first use)."""
    from cryptography.hazmat.primitives import serialization

    path = cache_dir() / f"wkd-rsa3072-pool-{RSA_POOL}.pem"
    if not path.exists():
        from engine.wkd.sample import rsa_pool

        pem = b"".join(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            for k in rsa_pool(RSA_POOL)
        )
        tmp = path.with_suffix(".partial")
        tmp.write_bytes(pem)
        tmp.replace(path)
    marker = b"-----END PRIVATE KEY-----\n"
    pems = [p + marker for p in path.read_bytes().split(marker) if p.strip()]
    return [serialization.load_pem_private_key(p, None) for p in pems]


def _keyring(count: int, seed: int) -> bytes:
    from engine.wkd.sample import sample_keyring

    return sample_keyring(count, seed, _pool() if count >= RSA_EVERY else [], RSA_EVERY)


KEYRING = DataSpec("wkd-keyring", _keyring)


_TRASH: list[Path] = []


def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="wkd-build-", dir=cache_dir()))


def _discard(work: Path) -> None:
    """Remove ``work`` when the process exits, not now: on ext4 without a journal (this VM's root file
    system) the inode allocator skips inodes freed in the last 1-5 minutes one by one
    (``recently_deleted``), so deleting a 30,000-file tree makes file creation in the next run, ours or
    a peer's, up to 20x slower in the kernel and the ratios would depend on the order of the runs.
    With ``PGPBULK_BENCH_KEEP_TREES=1`` the trees stay (for bench runs back to back; remove the
    ``wkd-build-*`` folders of the bench cache yourself later)."""
    if os.environ.get("PGPBULK_BENCH_KEEP_TREES") == "1":
        return
    if not _TRASH:
        atexit.register(_empty_trash)
    _TRASH.append(work)


def _empty_trash() -> None:
    while _TRASH:
        shutil.rmtree(_TRASH.pop(), ignore_errors=True)


_SPLIT: dict[str, float] = {}  # the last build's time split (its report's seconds) and key count


def _ours(data: Dataset) -> float:
    from engine.wkd.publish import build

    work = _workdir()
    warm_page_cache(data.path)
    try:
        start = time.perf_counter()
        report = build(work / "www", [str(data.path)], domains=[DOMAIN], workers=data.params.get("workers"))
        elapsed = time.perf_counter() - start
    finally:
        _discard(work)
    _SPLIT.update(keys=data.size, parse=report.seconds_parse, verify=report.seconds_verify,
                  filter=report.seconds_select, write=report.seconds_write, sync=report.seconds_sync)  # fmt: skip
    return elapsed


def time_split() -> str:
    """How the last build's time split, per key: worker CPU for parse, verify and filter; write is the
    workers' file writes plus the parent's merge, sync and switch."""
    if not _SPLIT:
        return ""
    us = {k: v / _SPLIT["keys"] * 1e6 for k, v in _SPLIT.items() if k != "keys"}
    return (f"per key: parse {us['parse']:.0f} µs, verify {us['verify']:.0f} µs, filter {us['filter']:.0f} µs "
            f"(worker CPU), write {us['write']:.0f} µs (sync {us['sync']:.0f} µs)")  # fmt: skip


def _sq(data: Dataset) -> float:
    work = _workdir()
    try:
        argv = [peers.which("sq") or "sq", "wkd", "generate", str(work / "www"), DOMAIN, str(data.path)]
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(
                f"sq exited with {proc.returncode}: {proc.stderr.decode(errors='replace')[-200:]}"
            )
        return elapsed
    finally:
        _discard(work)


def _wks_client(data: Dataset) -> float:
    """One ``gpg-wks-client --install-key`` per address of the first keys, scaled to all keys."""
    from engine.wkd.build import BuildOptions, select_one
    from engine.wkd.sources import CertBlob, iter_cert_blobs

    count = 8 if data.params.get("quick") else PER_PROCESS
    wks = peers.which("gpg-wks-client") or "gpg-wks-client"
    work = _workdir()
    try:
        (work / "out").mkdir()
        calls = []
        opts = BuildOptions(frozenset([DOMAIN]))
        for i, blob in enumerate(iter_cert_blobs([str(data.path)])):
            if i == count:
                break
            assert isinstance(blob, CertBlob)
            (work / f"k{i}.gpg").write_bytes(blob.data)
            calls += [(f"./k{i}.gpg", rec.address) for rec in select_one(opts, blob).records]
        start = time.perf_counter()
        for key, address in calls:
            subprocess.run(
                [wks, "-C", str(work / "out"), "--install-key", key, address],
                cwd=work,
                env=peers.gnupg_env(),
                capture_output=True,
                check=True,
            )
        return (time.perf_counter() - start) * data.size / min(count, data.size)
    finally:
        _discard(work)


def jobs() -> list[Job]:
    """The WKD tree build job."""
    return [
        Job(
            name="wkd-build",
            unit="items/s",
            data=KEYRING,
            size=20_000,
            quick_size=1_000,
            quick_budget=15.0,
            # Our workers run under the pool's fork server, which outlives the build: their CPU seconds
            # never reach this process's counters, so a CPU ratio would flatter us. Wall clock only.
            parallel=True,
            description="WKD tree (advanced, one domain) of a keyring: keys/s, 3/4 Ed25519 1/4 RSA-3072",
            impls=(
                Impl(
                    "pgpbulk wkd build",
                    _ours,
                    "us",
                    note="all cores, atomic publish and manifest",
                    details=time_split,
                ),
                Impl(
                    "sq wkd generate",
                    _sq,
                    requires=(peers.tool("sq"),),
                    note="one process; publishes every User ID of a key",
                ),
                Impl(
                    "gpg-wks-client --install-key",
                    _wks_client,
                    requires=(peers.tool("gpg-wks-client"),),
                    note=f"one process per address, first {PER_PROCESS} keys (quick: 8), scaled",
                ),
            ),
        ),
    ]
