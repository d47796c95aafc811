"""What an implementation needs to run here: a program, a Python module, or our native kernels.

A :class:`Requirement` answers ``problem() -> None | reason``; the report prints the reason of a
missing peer ("sq not installed") instead of leaving the row out. Subprocess peers from GnuPG run in
one throwaway ``GNUPGHOME`` per process (:func:`gnupg_home`), so job modules may import their keys
once per process; :func:`stop_agents` ends a run's agents, the home is removed at exit
(:func:`cleanup`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

LIBEXEC_PATH = "/usr/lib/gnupg:/usr/libexec:/usr/lib/gnupg2"


@functools.cache
def which(name: str) -> str | None:
    """Path of a program on PATH or in GnuPG's libexec directories (gpg-wks-client lives there)."""
    return shutil.which(name) or shutil.which(name, path=LIBEXEC_PATH)


# Programs that print their version with another argument than ``--version``.
VERSION_ARGS = {"openssl": ("version",)}


def _first_line(argv: list[str]) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else None


@functools.cache
def tool_version(name: str) -> str | None:
    """First line of the program's version output (``NAME --version``, ``openssl version``, ...).

    ``None`` when the program is missing; ``"installed"`` when it runs but prints no version."""
    path = which(name)
    if path is None:
        return None
    args = VERSION_ARGS.get(name, ("--version",))
    return _first_line([path, *args]) or _first_line([path, "version"]) or "installed"


@functools.cache
def module_version(name: str) -> str | None:
    """Version of an importable module (``__version__``, else its distribution's version),
    ``"installed"`` when neither is known, ``None`` if it cannot be imported."""
    try:
        mod = importlib.import_module(name)
    except ImportError:
        return None
    version = getattr(mod, "__version__", None)
    if version:
        return str(version)
    from importlib import metadata

    for dist in metadata.packages_distributions().get(name, [name]):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return "installed"


@dataclass(frozen=True)
class Requirement:
    """One thing an implementation needs: ``kind`` is "tool", "module" or "native"."""

    kind: str
    name: str

    def problem(self) -> str | None:
        """``None`` when satisfied, else a short reason for the report."""
        if self.kind == "tool":
            return None if which(self.name) else f"{self.name} not installed"
        if self.kind == "module":
            return None if module_version(self.name) else f"Python module {self.name} not installed"
        if self.kind == "native":
            from engine import _native

            if os.environ.get("ENGINE_NO_EXTENSIONS"):  # measure what the product would run
                return "native kernels disabled (ENGINE_NO_EXTENSIONS=1)"
            missing = [k for k in _native.KERNELS if "native" not in _native.implementations(k)]
            return f"native kernels not built ({', '.join(missing)})" if missing else None
        raise ValueError(f"unknown requirement kind {self.kind!r}")

    def version(self) -> str | None:
        """Version string of the tool or module, for the JSON's ``peers`` map."""
        if self.kind == "tool":
            return tool_version(self.name)
        if self.kind == "module":
            return module_version(self.name)
        return None


def tool(name: str) -> Requirement:
    """Needs the program ``name`` (PATH or GnuPG libexec)."""
    return Requirement("tool", name)


def module(name: str) -> Requirement:
    """Needs the importable Python module ``name``."""
    return Requirement("module", name)


NATIVE = Requirement("native", "kernels")

_home: Path | None = None


def gnupg_home() -> Path:
    """A throwaway GnuPG home shared by this process's gpg peers (created on first use, removed at
    exit)."""
    global _home
    if _home is None:
        _home = Path(tempfile.mkdtemp(prefix="pgpbulk-bench-gnupg-"))
        _home.chmod(0o700)
        atexit.register(cleanup)
    return _home


def gnupg_env() -> dict[str, str]:
    """Environment for a GnuPG peer: our throwaway home, C locale (no translation cost)."""
    return {**os.environ, "GNUPGHOME": str(gnupg_home()), "LC_ALL": "C"}


def gpg_argv(*args: str) -> list[str]:
    """``gpg`` in batch mode on the throwaway home, ignoring any user configuration."""
    return [
        which("gpg") or "gpg",
        "--homedir",
        str(gnupg_home()),
        "--batch",
        "--no-options",
        "--quiet",
        *args,
    ]


def worker_homes(count: int) -> list[Path]:
    """``count`` fresh copies of the throwaway home (``worker-N`` inside it), one per parallel gpg.

    gpg processes that share a home take turns on its keyring lock (dotlock, which sleeps while it
    waits): two at a time ran 110-115 msg/s on one home where two homes gave 195-210 msg/s. With a
    copy each, a parallel gpg loop shows what gpg itself can do."""
    homes = []
    for i in range(count):
        home = gnupg_home() / f"worker-{i}"
        if home.exists():
            _kill_agents(home)
            shutil.rmtree(home)
        shutil.copytree(
            gnupg_home(), home, ignore=shutil.ignore_patterns("S.*", "worker-*", "*.lock", ".#lk*")
        )
        home.chmod(0o700)
        homes.append(home)
    return homes


def launch_agent(home: Path | None = None) -> None:
    """Start the gpg-agent of ``home`` (default: the throwaway home) now, not in the first timed gpg."""
    gpgconf = which("gpgconf")
    if not gpgconf:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([gpgconf, "--homedir", str(home or gnupg_home()), "--launch", "gpg-agent"],
                       capture_output=True, timeout=10)  # fmt: skip


def _kill_agents(home: Path) -> None:
    gpgconf = which("gpgconf")
    if gpgconf:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [gpgconf, "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=10
            )


def stop_agents() -> None:
    """Stop the agents started in the throwaway home and its worker copies (the end of a run); gpg
    restarts them on use."""
    if _home is None:
        return
    for home in [_home, *sorted(_home.glob("worker-*"))]:
        _kill_agents(home)


def cleanup() -> None:
    """Stop the agents and remove the throwaway home (at exit)."""
    global _home
    if _home is None:
        return
    stop_agents()
    shutil.rmtree(_home, ignore_errors=True)
    _home = None
