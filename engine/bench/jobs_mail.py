"""Bench jobs for whole archives (issue 5 Speed): ``archive-encrypt`` and ``archive-decrypt``.

The data is a generated mbox (:func:`engine.mail.samples.write_archive`, deterministic, cached): median
8 KiB messages and a tail of large attachments; 20,000 messages and about 500 MB in full, 2,000 and
about 20 MB with ``--quick``. One Cv25519 (X25519) recipient.

**Us**: the ``pgpbulk encrypt`` / ``decrypt`` command, i.e. :func:`engine.mail.job.run_job` (journal,
fsync, PGP/MIME with header protection), as a subprocess, so the wall time includes our interpreter
start-up and the pool's, and the process tree's peak memory (``VmHWM`` of the command and of each
worker, polled) can be read; both are printed and kept in :data:`MEMORY`. With ``workers=1`` and with
one worker per core.

**Peer**: the loop people run today: one ``gpg --encrypt`` (``--decrypt``) per message, with the same
number of workers (a pool of threads, each running one gpg at a time), on an evenly spread sample of
the messages, scaled to the whole archive. ``python -m engine.bench.jobs_mail [--quick]`` prints the
table with MB/s and peak memory.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.bench import peers
from engine.bench.registry import Dataset, DataSpec, Impl, Job, Sweep, cache_dir, warm_page_cache

CORES = os.cpu_count() or 1
SAMPLE, QUICK_SAMPLE = 400, 100  # messages run through the gpg loop
MEMORY: dict[str, dict[str, float]] = {}  # "encrypt w=2" -> peak RSS in MiB (command, largest worker)
_CLI = "import sys; from engine.cli import main; sys.exit(main())"  # as the pgpbulk script (argv from sys.argv)


def total_bytes(count: int) -> int:
    """About 10 kB a message for the first 2,000, 26.7 kB for the rest: 20 MB at 2,000, 500 MB at 20,000."""
    return count * 10_000 + max(0, count - 2_000) * 16_700


def _manifest(count: int, seed: int) -> bytes:
    return json.dumps({"count": count, "bytes": total_bytes(count), "seed": seed}).encode()


ARCHIVE = DataSpec("mail-archive", _manifest, json.loads, version=1)


def archive(data: Dataset) -> Path:
    """The mbox of ``data`` in the bench cache (written once, streaming)."""
    from engine.mail.samples import write_archive

    m = data.value
    path = cache_dir() / f"mail-archive-{m['count']}-s{m['seed']}-v{ARCHIVE.version}.mbox"
    if not path.exists():
        tmp = path.with_name(f"{path.name}.partial-{os.getpid()}")
        write_archive(tmp, m["count"], m["bytes"], m["seed"])
        os.replace(tmp, path)
    return path


# --- keys and scratch space of this bench process ---------------------------------------------------------

_state: dict[str, Any] = {}


def _scratch() -> Path:
    if "scratch" not in _state:
        _state["scratch"] = Path(tempfile.mkdtemp(prefix="pgpbulk-bench-mail-"))
        atexit.register(shutil.rmtree, _state["scratch"], True)
    return _state["scratch"]


def _keys() -> dict[str, Any]:
    """A Cv25519 key made once per process: files for us, imported into the throwaway gpg home."""
    if "cert" not in _state:
        from engine.openpgp import keygen

        key = keygen.generate("Archive Bench <archive@example.org>", "ed25519")
        home = peers.gnupg_home()
        cert, secret = home / "archive-cert.pgp", home / "archive-key.pgp"
        cert.write_bytes(keygen.export(key, armor=False))
        secret.write_bytes(keygen.export(key, secret=True, armor=False))
        if peers.which("gpg"):
            subprocess.run(peers.gpg_argv("--import", str(secret)), env=peers.gnupg_env(),
                           capture_output=True, check=True)  # fmt: skip
        _state.update(cert=cert, key=secret, fpr=key.encryption_subkey().fingerprint.hex().upper())
    return _state


# --- our run: the command in a subprocess, peak memory of its process tree -------------------------------


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    ppid = int(f.read().rpartition(b")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def run_measured(argv: list[str], interval: float = 0.05) -> tuple[float, int, int]:
    """Run ``argv``; ``(wall seconds, peak RSS KiB of the process, largest peak RSS KiB of a descendant)``.

    Descendants (pool workers, the fork server) are polled every ``interval`` s for ``VmHWM``, a high
    water mark, so only a peak in a worker's last ``interval`` before it exits can be missed.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = {"self": 0, "child": 0}
    done = threading.Event()

    def poll() -> None:
        while not done.wait(interval):
            peak["self"] = max(peak["self"], _hwm_kib(proc.pid))
            for pid in _descendants(proc.pid):
                peak["child"] = max(peak["child"], _hwm_kib(pid))

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _, status, _usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = (proc.stderr.read() if proc.stderr else b"").decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"exit {proc.returncode}: {err[-1] if err else 'no message'}")
    # Not usage.ru_maxrss: Linux keeps the high-water mark across fork + exec, so a child of a big process
    # (a long pytest run) would report its parent's size. VmHWM belongs to the exec'd image alone.
    return wall, peak["self"], peak["child"]


def run_ours(mode: str, src: Path, dst: Path, workers: int, *extra: str) -> float:
    """``pgpbulk MODE SRC -o DST --workers N`` timed in a subprocess; peak memory into :data:`MEMORY`."""
    k = _keys()
    who = ["-r", str(k["cert"])] if mode == "encrypt" else ["--key", str(k["key"])]
    for p in (dst, *(dst.with_name(dst.name + s) for s in (".partial", ".journal", ".journal-records"))):
        p.unlink(missing_ok=True)
    argv = [sys.executable, "-c", _CLI, mode, str(src), "-o", str(dst), *who, "--workers", str(workers), "-q"]
    warm_page_cache(src)
    wall, parent, worker = run_measured([*argv, *extra])
    MEMORY[f"{mode} {src.stat().st_size // 1_000_000} MB w={workers}"] = {
        "command_MiB": round(parent / 1024, 1), "worker_MiB": round(worker / 1024, 1)}  # fmt: skip
    return wall


_timed: dict[tuple[str, int, int, int], float] = {}


def _ours(mode: str, workers: int | None = None) -> Callable[[Dataset], float]:
    """Seconds of our run on the job's archive (one run per process and setting: the sweep reuses it)."""

    def measure(data: Dataset) -> float:
        n = int(data.params.get("workers", workers or CORES))  # a sweep point sets "workers"
        key = (mode, n, data.size, data.seed)
        if key not in _timed:
            src = archive(data) if mode == "encrypt" else _encrypted(data)
            _timed[key] = run_ours(mode, src, _scratch() / f"{mode}-{data.size}-w{n}.mbox", n)
        return _timed[key]

    return measure


def _encrypted(data: Dataset) -> Path:
    """Our encryption of the job's archive to this process's key (an encrypt run's output, or made)."""
    path = _scratch() / f"encrypt-{data.size}-w{CORES}.mbox"
    if not path.exists():
        _ours("encrypt", CORES)(data)
    return path


# --- the gpg loop -----------------------------------------------------------------------------------------


def _sample(data: Dataset, mode: str) -> list[bytes]:
    """An evenly spread sample of the archive's messages (decrypt: their armored OpenPGP blocks)."""
    key = f"sample-{mode}"
    if key not in data.params:
        from engine.mail.classify import MailClass, classify
        from engine.mail.mbox import read_mbox
        from engine.mail.pgpmime import armored_span

        want = min(data.size, QUICK_SAMPLE if data.params.get("quick") else SAMPLE)
        picks = {i * data.size // want for i in range(want)}
        src = archive(data) if mode == "encrypt" else _encrypted(data)
        out = []
        for item in read_mbox(src):
            if item.index in picks:
                if mode == "decrypt" and classify(item.raw) is MailClass.PGP_MIME:
                    begin, end, _ = armored_span(item.raw)
                    out.append(item.raw[begin:end] + b"\n")
                elif mode == "encrypt":
                    out.append(item.raw)
        data.params[key] = out
    return data.params[key]


def _gpg_loop(
    mode: str, *options: str, workers: int | None = None, own_homes: bool = False
) -> Callable[[Dataset], float]:
    """One gpg per message on the sample, ``workers`` at a time; seconds scaled to the whole archive.

    ``own_homes``: each worker runs its gpg on its own copy of the home (:func:`peers.worker_homes`), so
    the parallel gpg processes never wait on each other's keyring lock."""

    def measure(data: Dataset) -> float:
        k, msgs = _keys(), _sample(data, mode)
        n = int(data.params.get("workers", workers or CORES))
        if mode == "encrypt":
            args = ("--trust-model", "always", "--armor", *options, "-r", k["fpr"], "--encrypt")
        else:
            args = ("--decrypt",)
        homes = queue.SimpleQueue()
        for home in peers.worker_homes(n) if own_homes else [peers.gnupg_home()] * n:
            homes.put(home)

        def one(msg: bytes) -> None:
            home = homes.get()
            try:
                argv = peers.gpg_argv(*args)
                argv[argv.index("--homedir") + 1] = str(home)
                proc = subprocess.run(argv, input=msg, capture_output=True, env={**peers.gnupg_env(),
                                      "GNUPGHOME": str(home)}, check=False)  # fmt: skip
            finally:
                homes.put(home)
            if proc.returncode != 0:
                raise RuntimeError(f"gpg exited with {proc.returncode}: {proc.stderr[-200:]!r}")

        # Not timed: each agent running and its key loaded before gpg processes race to use them (two
        # gpg 2.2 processes that find no agent at once may both fail to reach one).
        for _ in range(n if own_homes else 1):
            home = homes.get()
            peers.launch_agent(home)
            homes.put(home)
            if msgs:
                one(msgs[0])
        start = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(one, msgs))
        return (time.perf_counter() - start) * data.size / len(msgs)

    return measure


GPG = (peers.tool("gpg"),)
_LOOP = "one gpg per message, {n} at a time, on {s} evenly spread messages, scaled"
_NOTE = "pgpbulk {m} as a subprocess: start-up, journal, fsync included"


def _job(mode: str) -> Job:
    ours = [Impl(f"pgpbulk --workers {CORES}", _ours(mode, CORES), "us", note=_NOTE.format(m=mode))]
    if CORES > 1:
        ours.append(Impl("pgpbulk --workers 1", _ours(mode, 1), "us", note=_NOTE.format(m=mode)))
    loop = _LOOP.format(n=CORES, s=f"{SAMPLE} (quick {QUICK_SAMPLE})")
    if mode == "encrypt":
        gpg = [
            Impl(f"gpg --encrypt loop x{CORES}", _gpg_loop(mode, workers=CORES), requires=GPG,
                 note=loop + "; --armor, gpg's default compression"),
            Impl(f"gpg --encrypt -z 0 loop x{CORES}", _gpg_loop(mode, "-z", "0", workers=CORES),
                 requires=GPG, note=loop + "; --armor, no compression"),
        ]  # fmt: skip
    else:
        gpg = [Impl(f"gpg --decrypt loop x{CORES}", _gpg_loop(mode, workers=CORES), requires=GPG, note=loop)]
    if CORES > 1:  # the same loop without the keyring lock shared between the gpg processes
        gpg.append(Impl(f"{gpg[0].name}, a home each", _gpg_loop(mode, workers=CORES, own_homes=True),
                        requires=GPG, quick=False, note=gpg[0].note + "; each worker on its own copy of the GnuPG home"))  # fmt: skip
    sweep = Sweep("workers", "worker processes", (1, 2, 4), (1, 2), [ours[0].name, gpg[0].name])
    return Job(
        name=f"archive-{mode}",
        unit="items/s",
        data=ARCHIVE,
        size=20_000,
        quick_size=2_000,
        description=f"{mode} a generated mbox (median 8 KiB, large-attachment tail; 20,000 messages "
        f"~500 MB, quick 2,000 ~20 MB) to/with one Cv25519 key; MB/s = messages/s x mean size",
        impls=(*ours, *gpg),
        sweep=sweep,
        quick_budget=15.0 if mode == "encrypt" else 10.0,
        family="archive",
        # Our workers run under the pool's fork server, outside this process's children: their CPU
        # seconds would be missing from ours, so a CPU ratio would flatter us. Wall clock only.
        parallel=True,
    )


def jobs() -> list[Job]:
    """The archive jobs."""
    return [_job("encrypt"), _job("decrypt")]


def main(argv: list[str] | None = None) -> None:
    """Print messages/s, MB/s, the ratio to the gpg loop and peak memory, for each job and worker count."""
    import argparse

    from engine.bench.registry import DEFAULT_SEED

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--count", type=int, help="messages (default 20,000; --quick 2,000)")
    args = ap.parse_args(argv)
    count = args.count or (2_000 if args.quick else 20_000)
    data = ARCHIVE.dataset(count, DEFAULT_SEED)
    data.params["quick"] = args.quick
    mb = archive(data).stat().st_size / 1e6
    print(f"archive: {count} messages, {mb:.1f} MB, {CORES} cores")
    try:
        for job in jobs():
            rates = {}
            for impl in job.impls:
                if impl.missing_reason():
                    print(f"  {job.name:16s} {impl.name:28s} missing: {impl.missing_reason()}")
                    continue
                seconds = impl.measure(data)
                rates[impl.name] = count / seconds
                print(f"  {job.name:16s} {impl.name:28s} {count / seconds:9.1f} msg/s {mb / seconds:8.2f} MB/s"
                      f"  x{rates[impl.name] / rates[job.impls[0].name]:.3f} of {job.impls[0].name}")  # fmt: skip
        for name, mem in MEMORY.items():
            print(
                f"  peak RSS {name}: command {mem['command_MiB']} MiB, largest worker {mem['worker_MiB']} MiB"
            )
    finally:
        peers.cleanup()


if __name__ == "__main__":
    main()
