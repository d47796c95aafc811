"""Shared fixtures: implementation switch (native / pure twin) and real peer programs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import _native
from tests.cardemu.fixtures import emulated_card  # noqa: F401 - session fixture for the emulated card

REQUIRE_PEERS = bool(os.environ.get("PGPBULK_REQUIRE_PEERS"))
REQUIRE_NATIVE = bool(os.environ.get("PGPBULK_REQUIRE_NATIVE"))


def require_tool(name: str) -> str:
    """Path of a peer program (PATH, then GnuPG's libexec dirs); skip if missing, fail when CI demands it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/lib/gnupg:/usr/libexec")
    if path is None:
        if REQUIRE_PEERS:
            pytest.fail(f"peer program {name!r} is required (PGPBULK_REQUIRE_PEERS=1) but not installed")
        pytest.skip(f"{name} not installed")
    return path


def _impl_params() -> list[str]:
    impls = ["pure"]
    if "native" in _native.implementations("armor") or REQUIRE_NATIVE:
        impls.insert(0, "native")
    return impls


@pytest.fixture(params=_impl_params())
def impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test once on the native kernels and once on the pure-Python twins."""
    with _native.use(request.param):
        yield request.param


@pytest.fixture
def gnupghome(tmp_path: Path) -> Iterator[Path]:
    """A throwaway GnuPG home; its agent is killed afterwards."""
    require_tool("gpg")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    yield home
    if shutil.which("gpgconf"):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)
