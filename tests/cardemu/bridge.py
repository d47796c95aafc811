"""Plug jcecard's emulated OpenPGP card into vsmartcard's virtual reader (vpcd) in pcscd.

vpcd (the reader driver loaded by pcscd) listens on a TCP port; the card side connects to it. Each message
in either direction is a 2-byte big-endian length and that many bytes. A 1-byte message from the reader
is a control code (0 power off, 1 power on, 2 reset: no answer; 4 ATR: answer the ATR); anything longer
is a command APDU, answered with the response APDU (data + SW1 SW2). When this program exits, its socket
closes and the reader reports the card removed.

Run as a program (it imports nothing of ours): ``python bridge.py --port N --state DIR``. It prints
``connected`` on stdout once the reader accepted it, and stops on SIGTERM/SIGINT or when the reader hangs up.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Protocol

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


class Card(Protocol):
    """What the bridge needs of a card (jcecard's ``OpenPGPCard`` has it)."""

    def power_on(self) -> None: ...
    def power_off(self) -> None: ...
    def reset(self) -> bytes: ...
    def get_atr(self) -> bytes: ...
    def process_apdu(self, raw_apdu: bytes) -> bytes: ...


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        _quickack(sock)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _quickack(sock: socket.socket) -> None:
    """Acknowledge at once. vpcd writes the length and the body of a message with two ``send`` calls;
    with Nagle on its side and delayed ACKs on ours, every message would wait about 40 ms for an ACK.
    Linux resets the flag after each ACK, so it is set again before every read."""
    if _QUICKACK is not None:
        sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(len(data).to_bytes(2, "big") + data)


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """Connect to vpcd, retrying until ``timeout`` (pcscd may still be loading the driver)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            continue
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _count_decipher(counter: Path | None, apdu: bytes, answer: bytes) -> None:
    """Bump the card's PSO:DECIPHER counter file (tests read how many operations the card did)."""
    if counter is None or apdu[1:4] != b"\x2a\x80\x86" or apdu[0] & 0x10:  # 0x10: a chained part
        return
    if answer[-2:] != b"\x90\x00" and answer[-2:-1] != b"\x61":  # 61xx: more response data follows
        return
    try:
        n = int(counter.read_text()) + 1
    except (OSError, ValueError):
        n = 1
    tmp = counter.with_suffix(".tmp")
    tmp.write_text(str(n))
    tmp.replace(counter)


def serve(sock: socket.socket, card: Card, counter: Path | None = None, delay: float = 0.0) -> int:
    """Answer the reader until it hangs up; returns the number of APDUs handled. ``counter``: a file
    counting the successful PSO:DECIPHER commands; ``delay``: extra seconds each PSO:DECIPHER takes (a
    slower card, or time to pull the card out in the middle of an operation)."""
    apdus = 0
    while True:
        head = _read_exact(sock, 2)
        if head is None:
            return apdus
        body = _read_exact(sock, int.from_bytes(head, "big"))
        if body is None:
            return apdus
        if len(body) == 1:
            code = body[0]
            if code == CTRL_OFF:
                card.power_off()
            elif code == CTRL_ON:
                card.power_on()
            elif code == CTRL_RESET:
                card.reset()
            elif code == CTRL_ATR:
                _send(sock, card.get_atr())
            continue
        apdus += 1
        if delay and body[1:4] == b"\x2a\x80\x86":
            time.sleep(delay)
        answer = card.process_apdu(body)
        _count_decipher(counter, body, answer)  # before the answer: a reader of the count never lags
        _send(sock, answer)


def _quiet_jcecard() -> None:
    """jcecard's modules log every APDU at INFO/DEBUG (and one calls ``basicConfig(DEBUG)``): keep warnings."""
    logging.getLogger().setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("jcecard"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0x8C7B, help="vpcd's port (reader.conf DEVICENAME)")
    parser.add_argument("--state", type=Path, required=True, help="directory for the card's state file")
    parser.add_argument("--connect-timeout", type=float, default=30.0)
    parser.add_argument("--decipher-delay", type=float, default=0.0, help="extra seconds per PSO:DECIPHER")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="bridge: %(levelname)s %(name)s: %(message)s")
    from jcecard.main import OpenPGPCard  # the package's __init__ pulls in its own TCP server module too

    _quiet_jcecard()
    args.state.mkdir(parents=True, exist_ok=True)
    card = OpenPGPCard(storage_path=args.state)
    sock = connect(args.host, args.port, args.connect_timeout)

    def stop(signum: int, frame: object) -> None:
        sock.close()  # the reader sees the card removed
        card.save_state()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("connected", flush=True)
    apdus = serve(sock, card, args.state / "decipher-count", args.decipher_delay)
    card.save_state()
    print(f"reader hung up after {apdus} APDUs", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
