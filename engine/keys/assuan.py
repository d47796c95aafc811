"""A small Assuan client (the line protocol of gpg-agent, scdaemon, dirmngr) over a Unix socket.

Lines are at most 1000 bytes including the LF. The server answers a command with any number of ``S``
(status), ``D`` (data, percent-escaped), ``#`` (comment) and ``INQUIRE`` lines, and ends with ``OK`` or
``ERR <code> <text>``. An ``INQUIRE`` is answered with ``D`` lines and ``END`` (or ``CAN``). Data may hold
secrets (passphrases, session keys): this module never logs data lines nor puts them into errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import InvalidArgument
from engine.keys.errors import AssuanError, AssuanProtocolError, AssuanTimeout

LINE_MAX = 1000
#: Raw bytes per outgoing ``D`` line: even if every byte needs ``%XX``, "D " + 3*320 + LF < 1000.
_D_CHUNK = 320
_UNESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")

#: ``inquire(keyword, args)`` returns the bytes to send, or None to cancel (``CAN``).
InquireCallback = Callable[[str, str], "bytes | None"]


@dataclass
class Response:
    """What a command returned: concatenated data, status lines in order, and the ``OK`` text."""

    data: bytes = b""
    status: list[tuple[str, str]] = field(default_factory=list)
    ok: str = ""

    def status_value(self, keyword: str) -> str | None:
        """Arguments of the last status line with ``keyword``, or None."""
        for key, args in reversed(self.status):
            if key == keyword:
                return args
        return None

    def __repr__(self) -> str:  # never show data: it may be a session key
        return f"Response(data=<{len(self.data)} bytes>, status={self.status!r}, ok={self.ok!r})"


def escape_data(raw: bytes) -> bytes:
    """Escape ``%``, CR and LF as ``%XX`` (what a ``D`` line must not hold verbatim)."""
    return raw.replace(b"%", b"%25").replace(b"\r", b"%0D").replace(b"\n", b"%0A")


def unescape(raw: bytes) -> bytes:
    """Undo percent-escaping (``%XX`` anywhere)."""
    if b"%" not in raw:
        return raw
    return _UNESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


def escape_arg(text: str) -> str:
    """Escape a command argument the gpg way: ``%XX`` for control characters, ``%`` and ``+``; ``+`` for
    spaces (as SETKEYDESC expects)."""
    out = []
    for ch in text:
        if ch == " ":
            out.append("+")
        elif ch in "%+" or ord(ch) < 0x20:
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    return "".join(out)


def resolve_socket(path: str) -> str:
    """Follow a libassuan redirect file (``%Assuan%\\nsocket=PATH``) if ``path`` is one."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    if stat.S_ISREG(st.st_mode) and st.st_size < 4096:
        with open(path, "rb") as f:
            head = f.read()
        if head.startswith(b"%Assuan%"):
            for line in head.splitlines()[1:]:
                if line.startswith(b"socket="):
                    return os.path.expandvars(line[7:].decode())
    return path


class AssuanClient:
    """One connection to an Assuan server. Not thread-safe; use one per thread or process."""

    def __init__(self, socket_path: str, timeout: float | None = 30.0) -> None:
        self.socket_path = resolve_socket(socket_path)
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(self.socket_path)
        except OSError as exc:
            self._sock.close()
            raise AssuanProtocolError(f"cannot connect to {self.socket_path}: {exc.strerror or exc}") from exc
        self._rfile = self._sock.makefile("rb")
        self._closed = False
        self.greeting = self._finish("(greeting)", None).ok

    # -- public -----------------------------------------------------------------------------------
    def transact(
        self,
        command: str | bytes,
        inquire: InquireCallback | None = None,
        on_status: Callable[[str, str], None] | None = None,
    ) -> Response:
        """Send one command line and read until ``OK``; ERR raises :class:`AssuanError`."""
        line = command.encode() if isinstance(command, str) else bytes(command)
        if b"\n" in line or b"\r" in line:
            raise InvalidArgument("an Assuan command must be one line")
        if len(line) + 1 > LINE_MAX:
            raise InvalidArgument(f"Assuan command longer than {LINE_MAX - 1} bytes")
        self._send(line + b"\n")
        verb = line.split(b" ", 1)[0].decode(errors="replace")
        return self._finish(verb, inquire, on_status)

    def close(self) -> None:
        """Say BYE (best effort) and close the socket."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.sendall(b"BYE\n")
        self._rfile.close()
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> AssuanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<AssuanClient {self.socket_path!r}{' closed' if self._closed else ''}>"

    # -- internals --------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self._closed:
            raise AssuanProtocolError("connection is closed")
        try:
            self._sock.sendall(data)
        except TimeoutError as exc:
            self.abort()
            raise AssuanTimeout(f"timed out writing to {self.socket_path}") from exc
        except OSError as exc:
            self.abort()
            raise AssuanProtocolError(f"write to {self.socket_path} failed: {exc}") from exc

    def _readline(self, verb: str) -> bytes:
        try:
            line = self._rfile.readline(LINE_MAX + 1)
        except TimeoutError as exc:
            self.abort()
            raise AssuanTimeout(f"{verb}: no answer within {self.timeout} s") from exc
        except OSError as exc:
            self.abort()
            raise AssuanProtocolError(f"{verb}: read failed: {exc}") from exc
        if not line:
            self.abort()
            raise AssuanProtocolError(f"{verb}: peer closed the connection")
        if not line.endswith(b"\n"):
            self.abort()
            raise AssuanProtocolError(f"{verb}: line longer than {LINE_MAX} bytes")
        return line[:-1].rstrip(b"\r")

    def abort(self) -> None:
        """Close without BYE: after a timeout or a broken line the stream position is unknown, and a
        connection inherited over fork belongs to the parent."""
        if not self._closed:
            self._closed = True
            self._rfile.close()
            self._sock.close()

    @staticmethod
    def data_lines(raw: bytes) -> bytes:
        """``raw`` as escaped ``D`` lines, each under the line limit."""
        step = _D_CHUNK
        return b"".join(b"D " + escape_data(raw[i : i + step]) + b"\n" for i in range(0, len(raw), step))

    def _finish(
        self,
        verb: str,
        inquire: InquireCallback | None,
        on_status: Callable[[str, str], None] | None = None,
    ) -> Response:
        resp = Response()
        data = bytearray()
        pending: BaseException | None = None
        while True:
            line = self._readline(verb)
            if line.startswith(b"D "):
                data += unescape(line[2:])
            elif line.startswith(b"S "):
                key, _, args = line[2:].decode(errors="replace").partition(" ")
                resp.status.append((key, args))
                if on_status is not None:
                    on_status(key, args)
            elif line == b"OK" or line.startswith(b"OK "):
                if pending is not None:  # the server accepted a cancelled inquiry anyway
                    raise pending
                resp.ok = line[3:].decode(errors="replace")
                resp.data = bytes(data)
                return resp
            elif line.startswith(b"ERR "):
                if pending is not None:
                    raise pending
                code, _, text = line[4:].decode(errors="replace").partition(" ")
                try:
                    raw_code = int(code)
                except ValueError:
                    raise AssuanProtocolError(f"{verb}: malformed ERR line") from None
                raise AssuanError(verb, raw_code, unescape(text.encode()).decode(errors="replace"))
            elif line.startswith(b"INQUIRE "):
                keyword, _, args = line[8:].decode(errors="replace").partition(" ")
                pending = self._answer_inquiry(keyword, args, inquire) or pending
            elif line.startswith(b"#") or line == b"END" or not line:
                continue
            else:
                self.abort()
                raise AssuanProtocolError(f"{verb}: unexpected line from server ({line[:20]!r}...)")

    def _answer_inquiry(
        self, keyword: str, args: str, inquire: InquireCallback | None
    ) -> BaseException | None:
        """Answer one INQUIRE; a callback exception is returned (raised after the server's reply)."""
        if inquire is None:
            self._send(b"CAN\n")
            return None
        try:
            answer = inquire(keyword, args)
        except Exception as exc:
            self._send(b"CAN\n")
            return exc
        if answer is None:
            self._send(b"CAN\n")
            return None
        self._send(self.data_lines(answer) + b"END\n")
        return None
