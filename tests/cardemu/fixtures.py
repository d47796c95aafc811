"""The ``emulated_card`` pytest fixture; ``tests/conftest.py`` imports it so every test module can use it."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator

import pytest

from tests.cardemu.rig import TOOLS, VPCD_DRIVER, CardRig


def _require_parts() -> None:
    """Skip (or fail, under PGPBULK_REQUIRE_PEERS) when a program, vpcd or jcecard is missing."""
    from tests.conftest import REQUIRE_PEERS, require_tool

    for tool in TOOLS:
        require_tool(tool)
    missing = []
    if not os.path.exists(VPCD_DRIVER):
        missing.append(f"vpcd driver {VPCD_DRIVER} (Debian package vsmartcard-vpcd)")
    if importlib.util.find_spec("jcecard") is None:
        missing.append("the jcecard package (pip, test extra)")
    if os.geteuid() != 0:
        missing.append("root (pcscd runs in a mount namespace of its own)")
    if missing:
        message = "emulated card needs " + ", ".join(missing)
        if REQUIRE_PEERS:
            pytest.fail(message + " (PGPBULK_REQUIRE_PEERS=1)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def emulated_card(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CardRig]:
    """A card with an RSA-2048 encryption key behind pcscd, scdaemon and gpg-agent (about 1 s to set up).

    ``rig.home`` is its GnuPG home (PIN :data:`tests.cardemu.rig.PIN`), ``rig.fingerprint`` the card key
    (the gpg encryption subkey), ``rig.keygrip`` its keygrip, ``rig.public_key`` the gpg key as a file. ``PCSCLITE_CSOCK_NAME`` is set
    for the session so that a gpg-agent (re)started by any process finds the private pcscd. A test that
    calls ``rig.remove()`` must ``rig.insert()`` and ``rig.wait_card()`` before it ends.
    """
    _require_parts()
    t0 = time.monotonic()
    rig = CardRig(tmp_path_factory.mktemp("emulated-card"))
    old = os.environ.get("PCSCLITE_CSOCK_NAME")
    os.environ["PCSCLITE_CSOCK_NAME"] = str(rig.socket)
    try:
        rig.start()
        rig.setup_seconds = time.monotonic() - t0
        yield rig
    finally:
        rig.close()
        if old is None:
            os.environ.pop("PCSCLITE_CSOCK_NAME", None)
        else:
            os.environ["PCSCLITE_CSOCK_NAME"] = old
