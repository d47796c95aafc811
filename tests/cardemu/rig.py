"""An emulated OpenPGP card behind the real pcscd and scdaemon (CARDS.md, "An emulated OpenPGP smart card").

Parts, each started here and stopped by :meth:`CardRig.close` even when the set-up fails half-way:

- **pcscd** in the foreground, in a mount namespace of its own (``unshare --mount``) where a private
  directory is bind-mounted on ``/run/pcscd``: pcscd 1.9.9 has its socket and pid file compiled in, so a
  private instance cannot otherwise run next to (or after) another one. Clients reach it through
  ``PCSCLITE_CSOCK_NAME`` (read by libpcsclite, so by scdaemon), which must be in gpg-agent's environment.
  Its reader list is a private ``reader.conf.d`` (``-c``) with one vpcd entry on a free TCP port pair
  (vpcd opens two readers, "Virtual PCD 00 00" on PORT and "... 00 01" on PORT+1).
- **the card**: :mod:`tests.cardemu.bridge` running jcecard's ``OpenPGPCard``, connected to vpcd's port.
  Stopping it is pulling the card out; :meth:`CardRig.insert` puts it back with the same keys.
- **a throwaway GnuPG home**: ``disable-ccid`` (scdaemon must use PC/SC), loopback pinentry; an RSA-2048
  key generated *on the card* (``SCD GENKEY --force 2``, admin PIN by loopback), ``LEARN --force`` for the
  agent's shadow key, and a gpg key (soft Ed25519 primary) whose encryption subkey is the card key
  (``Subkey-Grip``), created at the card key's time so its fingerprint is the one the card stores.

jcecard's default key attribute is RSA-2048 already, so the ``gpg --card-edit`` key-attr step of CARDS.md
(which set RSA-4096 there) is not needed.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PIN = "123456"  # jcecard's defaults
ADMIN_PIN = "12345678"
READER = "Virtual PCD 00 00"
VPCD_DRIVER = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so"
BRIDGE = Path(__file__).with_name("bridge.py")
TOOLS = ("pcscd", "unshare", "mount", "gpg", "gpg-agent", "gpgconf", "scdaemon")


class CardRigError(RuntimeError):
    """A part of the emulated card could not be started."""


def _free_port_pair() -> int:
    """A port P with P and P+1 free on all interfaces (vpcd listens on 0.0.0.0, two slots)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("0.0.0.0", p))
        except OSError:
            continue
        return port
    raise CardRigError("no free TCP port pair for vpcd")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, so pcscd and the bridge never
    outlive a killed test run (Linux ``PR_SET_PDEATHSIG``; kept across exec)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _wait_for(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise CardRigError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


@dataclass
class CardRig:
    """pcscd + vpcd + the bridge + a GnuPG home with a card key; see the module docstring."""

    root: Path
    port: int = 0
    pcscd: subprocess.Popen[bytes] | None = None
    bridge: subprocess.Popen[bytes] | None = None
    keygrip: str = ""
    fingerprint: str = ""  # the card key = the gpg encryption subkey
    primary_fingerprint: str = ""
    key_time: int = 0
    setup_seconds: float = 0.0
    _bridges: int = field(default=0, repr=False)

    # -- paths ------------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.root / "gnupg"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def socket(self) -> Path:
        return self.run_dir / "pcscd.comm"

    @property
    def state(self) -> Path:
        return self.root / "card"

    @property
    def public_key(self) -> Path:
        """The gpg key (binary) whose encryption subkey lives on the card."""
        return self.root / "card.pub"

    def env(self) -> dict[str, str]:
        """What a process needs to reach this card through gpg: the GnuPG home and pcscd's socket."""
        return {"GNUPGHOME": str(self.home), "PCSCLITE_CSOCK_NAME": str(self.socket)}

    # -- start / stop ---------------------------------------------------------------------------------
    def start(self) -> CardRig:
        """Start pcscd and the card, make the GnuPG home and the card key; on failure stop what started."""
        try:
            self._start_pcscd()
            self.insert()
            self._make_home()
            self._wait_card_visible(20.0)
            self._generate_key()
        except BaseException:
            self.close()
            raise
        return self

    def _start_pcscd(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        conf = self.root / "reader.conf.d"
        conf.mkdir(exist_ok=True)
        self.port = _free_port_pair()
        (conf / "vpcd").write_text(
            f'FRIENDLYNAME "Virtual PCD"\nDEVICENAME /dev/null:{self.port}\n'
            f"LIBPATH {VPCD_DRIVER}\nCHANNELID {self.port}\n"
        )
        os.makedirs("/run/pcscd", exist_ok=True)  # the mount point inside the namespace
        script = f'mount --bind "{self.run_dir}" /run/pcscd && exec pcscd --foreground -c "{conf}"'
        log = (self.root / "pcscd.log").open("wb")
        self.pcscd = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the test run does not reach it before teardown
            preexec_fn=_die_with_parent,
        )
        log.close()

        def up() -> bool:
            if self.pcscd is not None and self.pcscd.poll() is not None:
                raise CardRigError(f"pcscd exited ({self.pcscd.returncode}): {self._log('pcscd.log')}")
            return self.socket.exists()

        _wait_for(up, 10.0, "pcscd's socket")

    def insert(self, timeout: float = 20.0, decipher_delay: float = 0.0) -> None:
        """Start the bridge: the card goes into the reader (its state file keeps the keys).
        ``decipher_delay``: extra seconds per decryption (a slower card)."""
        if self.bridge is not None and self.bridge.poll() is None:
            return
        self._bridges += 1
        log = (self.root / f"bridge-{self._bridges}.log").open("wb")
        self.bridge = subprocess.Popen(
            [
                sys.executable,
                str(BRIDGE),
                "--port",
                str(self.port),
                "--state",
                str(self.state),
                "--decipher-delay",
                str(decipher_delay),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        assert self.bridge.stdout is not None
        ready, _, _ = select.select([self.bridge.stdout], [], [], timeout)
        line = self.bridge.stdout.readline() if ready else b""
        if line.strip() != b"connected":
            self.remove()
            raise CardRigError(
                f"card bridge did not connect to vpcd: {self._log(f'bridge-{self._bridges}.log')}"
            )

    def remove(self) -> None:
        """Stop the bridge: the card leaves the reader."""
        proc, self.bridge = self.bridge, None
        if proc is None:
            return
        _stop(proc, signal.SIGTERM)
        if proc.stdout is not None:
            proc.stdout.close()

    @property
    def inserted(self) -> bool:
        return self.bridge is not None and self.bridge.poll() is None

    def close(self) -> None:
        """Stop gpg's daemons for the home, the card and pcscd (best effort; safe to call twice)."""
        if self.home.exists():
            subprocess.run(
                ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                capture_output=True,
                check=False,
                timeout=30,
                env=self._environ(),
            )
        self.remove()
        proc, self.pcscd = self.pcscd, None
        if proc is not None:
            _stop(proc, signal.SIGTERM)

    def __enter__(self) -> CardRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- gpg ------------------------------------------------------------------------------------------
    def _environ(self) -> dict[str, str]:
        return dict(os.environ, **self.env())

    def gpg(
        self, *args: str, stdin: bytes | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[bytes]:
        """Run gpg on the card's home with loopback pinentry (``--passphrase`` answers PIN prompts);
        raises :class:`CardRigError` when it fails."""
        cmd = ["gpg", "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback", *args]
        proc = subprocess.run(
            cmd, input=stdin, capture_output=True, timeout=timeout, check=False, env=self._environ()
        )
        if proc.returncode != 0:
            raise CardRigError(f"{' '.join(cmd)}: {proc.stderr.decode(errors='replace').strip()}")
        return proc

    def card_status(self) -> str:
        """``gpg --card-status`` (raises :class:`CardRigError` when gpg sees no card)."""
        return self.gpg("--card-status", timeout=30).stdout.decode(errors="replace")

    def _make_home(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
        (self.home / "scdaemon.conf").write_text(f"disable-ccid\nreader-port {READER}\n")
        # The agent (and the scdaemon it starts) must see PCSCLITE_CSOCK_NAME: start it with our env.
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--launch", "gpg-agent"],
            check=True,
            capture_output=True,
            timeout=30,
            env=self._environ(),
        )

    def _wait_card_visible(self, timeout: float) -> None:
        last = ""

        def seen() -> bool:
            nonlocal last
            try:
                last = self.card_status()
            except CardRigError as exc:
                last = str(exc)
                return False
            return READER in last

        try:
            _wait_for(seen, timeout, "gpg --card-status to show the card", interval=0.3)
        except CardRigError as exc:
            raise CardRigError(f"{exc}; last answer: {last}; pcscd: {self._log('pcscd.log')}") from None

    def wait_card(self, timeout: float = 20.0) -> None:
        """Until gpg sees the card again (after :meth:`insert`)."""
        self._wait_card_visible(timeout)

    def _generate_key(self) -> None:
        from engine.keys.agent import AgentConnection

        def admin_pin(keyword: str, args: str) -> bytes | None:
            return ADMIN_PIN.encode() if keyword in ("PASSPHRASE", "NEEDPIN") else None

        old = os.environ.get("PCSCLITE_CSOCK_NAME")
        os.environ["PCSCLITE_CSOCK_NAME"] = str(self.socket)  # in case the agent must be (re)started
        try:
            with AgentConnection(self.home, passphrase=PIN, timeout=120) as agent:
                created = agent.transact("SCD GENKEY --force 2", inquire=admin_pin)
                if created.status_value("KEY-FPR") is None:
                    raise CardRigError(f"SCD GENKEY gave no key: {created.status}")
                learned = agent.transact("LEARN --force")  # writes the shadow key (card stub)
                grips = [k.keygrip for k in agent.keygrips() if k.type == "T"]
        finally:
            if old is None:
                os.environ.pop("PCSCLITE_CSOCK_NAME", None)
            else:
                os.environ["PCSCLITE_CSOCK_NAME"] = old
        if len(grips) != 1:
            raise CardRigError(f"expected one card key after LEARN, agent lists {grips}")
        self.keygrip = grips[0]
        times = dict(v.split(" ", 1) for k, v in learned.status if k == "KEY-TIME")
        fprs = dict(v.split(" ", 1) for k, v in learned.status if k == "KEY-FPR")
        self.key_time = int(times.get("2", "0")) or int(time.time())
        created_at = time.strftime("%Y%m%dT%H%M%S", time.gmtime(self.key_time))
        params = (
            "%no-protection\nKey-Type: eddsa\nKey-Curve: ed25519\nKey-Usage: cert\n"
            f"Subkey-Type: RSA\nSubkey-Grip: {self.keygrip}\nSubkey-Usage: encrypt\n"
            "Name-Real: Emulated Card\nName-Email: card@example.org\nExpire-Date: 0\n"
            f"Creation-Date: {created_at}\n%commit\n"
        )
        self.gpg("--gen-key", stdin=params.encode())
        listing = self.gpg("--with-colons", "--with-keygrip", "-K").stdout.decode()
        self.primary_fingerprint, self.fingerprint = _fingerprints(listing, self.keygrip)
        if fprs.get("2") and fprs["2"].upper() != self.fingerprint:
            raise CardRigError(f"gpg subkey {self.fingerprint} is not the card's key {fprs['2']}")
        self.public_key.write_bytes(self.gpg("--export", self.primary_fingerprint).stdout)

    def _log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.root / name).read_text(errors="replace")[-2000:]
        return "(no log)"

    # -- the card's own counters ----------------------------------------------------------------------
    def card_decipher_count(self) -> int:
        """PSO:DECIPHER commands the card has answered over its whole life (from the bridge's counter)."""
        try:
            return int((self.state / "decipher-count").read_text())
        except (OSError, ValueError):
            return 0


def _fingerprints(listing: str, keygrip: str) -> tuple[str, str]:
    """(primary fingerprint, subkey fingerprint) of the subkey with ``keygrip`` in a colon listing."""
    primary = current = ""
    kind = ""
    for line in listing.splitlines():
        f = line.split(":")
        if f[0] in ("sec", "ssb"):
            kind = f[0]
        elif f[0] == "fpr":
            current = f[9]
            if kind == "sec":
                primary = current
        elif f[0] == "grp" and kind == "ssb" and f[9] == keygrip:
            return primary, current
    raise CardRigError(f"no subkey with keygrip {keygrip} in gpg -K: {listing}")


def _stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
