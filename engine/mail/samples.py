"""Deterministic sample mail archives (for ``pgpbulk demo``, tests and benchmarks).

Every archive is a pure function of its seed. Messages cover the cases that break naive tools: CRLF and
LF, 8-bit and binary bodies, ``From `` / ``>From `` lines in bodies, no final newline, folded and 8-bit
headers, malformed MIME, empty messages, already encrypted (PGP/MIME, inline, S/MIME) and signed mail.
The mbox and Maildir writers here are deliberately independent of the readers and writers of
``engine.mail``, so tests built on them check those rather than repeat them.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Iterator
from pathlib import Path

KINDS = (
    "plain",
    "eightbit",
    "binary",
    "from_lines",
    "no_final_newline",
    "no_content_type",
    "folded",
    "attachment",
    "malformed_mime",
    "malformed_header",
    "empty",
    "pgp_mime",
    "inline_pgp",
    "smime",
    "signed",
)
WORDS = ["alpha", "beta", "gamma", "From", "from", ">From", "epsilon", "zeta", "theta", "kappa", "lambda"]
ENCRYPTED_KINDS = ("pgp_mime", "inline_pgp", "smime")
CARRIED_KINDS = ("malformed_header", "empty")
PGP_MIME_CT = b'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="e1"'
SIGNED_CT = b'multipart/signed; protocol="application/pgp-signature"; boundary="s1"'
SMIME_CT = b'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _text(rng: random.Random, lines: int) -> list[bytes]:
    return [_words(rng, rng.randint(1, 12)).encode() for _ in range(lines)]


def _head(i: int, subject: str, extra: list[bytes] | None = None) -> list[bytes]:
    return [
        b"Return-Path: <alice@example.org>",
        b"From: Alice <alice@example.org>",
        b"To: Bob <bob@example.org>",
        b"Cc: carol@example.org",
        f"Subject: {subject} #{i}".encode(),
        b"Date: Tue, 14 Nov 2023 22:13:20 +0000",
        f"Message-ID: <msg{i}@example.org>".encode(),
        b"X-Mailer: mailgen",
        *(extra or []),
    ]


def _armor_like(rng: random.Random, kind: bytes = b"PGP MESSAGE") -> list[bytes]:
    data = base64.b64encode(rng.randbytes(120)).decode()
    lines = [chunk.encode() for chunk in re.findall(".{1,64}", data)]
    return [b"-----BEGIN " + kind + b"-----", b"", *lines, b"=abcd", b"-----END " + kind + b"-----"]


def _mime(i: int, subject: str, ctype: bytes, body: list[bytes], *extra: bytes) -> list[bytes]:
    return [*_head(i, subject, [b"MIME-Version: 1.0", b"Content-Type: " + ctype, *extra]), b"", *body]


def _b64_lines(data: bytes) -> list[bytes]:
    return base64.encodebytes(data).rstrip(b"\n").split(b"\n")


def _lines(rng: random.Random, kind: str, i: int, attachment_size: int) -> list[bytes]:
    if kind == "plain":
        return _mime(i, "Plain", b"text/plain; charset=us-ascii", _text(rng, rng.randint(1, 30)))
    if kind == "eightbit":
        body = ["Grüße aus Köln — ça va? ½".encode(), "Ärger über Öl".encode("latin-1"), *_text(rng, 3)]
        lines = _mime(i, "x", b"text/plain; charset=utf-8", body, b"Content-Transfer-Encoding: 8bit")
        lines[4] = f"Subject: Grüße #{i}".encode()  # raw 8-bit header (RFC 6532)
        return lines
    if kind == "binary":
        blob = rng.randbytes(rng.randint(200, 2000)) + b"\nFrom binary\r\n>From x\r\rtail"
        return _mime(i, "Binary", b"application/octet-stream", [blob], b"Content-Transfer-Encoding: binary")
    if kind == "from_lines":
        body = [b"From the start", b">From quoted once", b">>From quoted twice", b"From", b" From not"]
        return _mime(i, "From lines", b"text/plain", [*_text(rng, 2), *body, b"From end"])
    if kind == "no_final_newline":
        return _mime(i, "No newline", b"text/plain", _text(rng, 3))
    if kind == "no_content_type":
        return [*_head(i, "Old style"), b"", *_text(rng, 5)]
    if kind == "folded":
        refs = [f"<ref{j}.{i}@example.org>".encode() for j in range(4)]
        extra = [b"In-Reply-To: " + refs[-1], b"References: " + refs[0], *(b"\t" + r for r in refs[1:])]
        lines = _mime(i, "x", b'text/plain;\n charset="utf-8"; format=flowed', _text(rng, 4), *extra)
        lines[4] = f"Subject: A long folded subject line for message {i}\n  that continues here".encode()
        return lines
    if kind == "attachment":
        att = [b'Content-Type: application/octet-stream; name="a.bin"', b"Content-Transfer-Encoding: base64"]
        data = _b64_lines(rng.randbytes(attachment_size))
        body = [
            b"--b1",
            b"Content-Type: text/plain",
            b"",
            *_text(rng, 3),
            b"--b1",
            *att,
            b"",
            *data,
            b"--b1--",
        ]
        return _mime(i, "Attachment", b'multipart/mixed; boundary="b1"', body)
    if kind == "malformed_mime":
        body = [b"--nope", b"Content-Type: text/plain", b"", *_text(rng, 2), b"(no closing boundary)"]
        return _mime(i, "Broken MIME", b"multipart/mixed; boundary=", body)
    if kind == "malformed_header":
        return [b"this is not a header line", b"From: x@example.org", b"", b"body"]
    if kind == "pgp_mime":
        part1 = [b"--e1", b"Content-Type: application/pgp-encrypted", b"", b"Version: 1", b""]
        part2 = [b"--e1", b"Content-Type: application/octet-stream", b"", *_armor_like(rng), b"", b"--e1--"]
        return _mime(i, "Encrypted", PGP_MIME_CT, [*part1, *part2])
    if kind == "inline_pgp":
        return _mime(i, "Inline", b"text/plain", _armor_like(rng))
    if kind == "smime":
        data = _b64_lines(rng.randbytes(300))
        return _mime(i, "S/MIME", SMIME_CT, data, b"Content-Transfer-Encoding: base64")
    if kind == "signed":
        sig = [b"Content-Type: application/pgp-signature", b"", *_armor_like(rng, b"PGP SIGNATURE")]
        body = [b"--s1", b"Content-Type: text/plain", b"", *_text(rng, 2), b"--s1", *sig, b"--s1--"]
        return _mime(i, "Signed", SIGNED_CT, body)
    raise ValueError(kind)


def message(rng: random.Random, kind: str, i: int, crlf: bool = False, attachment_size: int = 4096) -> bytes:
    """One message of ``kind`` (see KINDS), LF or CRLF; deterministic for a given ``rng`` state."""
    if kind == "empty":
        return b""
    raw = b"\n".join(_lines(rng, kind, i, attachment_size))
    if kind != "no_final_newline":
        raw += b"\n"
    if crlf and kind != "binary":
        raw = raw.replace(b"\n", b"\r\n")
    return raw


def generate(seed: int = 0, count: int = 45, crlf_every: int = 3, attachment_size: int = 4096) -> list[bytes]:
    """``count`` messages cycling through KINDS; every ``crlf_every``-th uses CRLF. Pure function of seed."""
    rng = random.Random(seed)
    return [
        message(
            rng,
            KINDS[i % len(KINDS)],
            i,
            crlf_every > 0 and i % crlf_every == crlf_every - 1,
            attachment_size,
        )
        for i in range(count)
    ]


def kind_of(i: int) -> str:
    """The kind of message ``i`` in a ``generate`` archive."""
    return KINDS[i % len(KINDS)]


def mbox_bytes(messages: list[bytes]) -> bytes:
    """An mboxrd file: separator, ``>``-quoted ``From `` lines, and one line ending after each message."""
    out = []
    for i, raw in enumerate(messages):
        crlf = raw.endswith(b"\r") or (b"\n" in raw and raw[raw.index(b"\n") - 1 : raw.index(b"\n")] == b"\r")
        eol = b"\r\n" if crlf else b"\n"
        out += [b"From alice@example.org Tue Nov 14 22:13:%02d 2023" % (i % 60) + eol,
                re.sub(rb"(?m)^(>*From )", rb">\1", raw), eol]  # fmt: skip
    return b"".join(out)


def write_mbox(path: str | Path, messages: list[bytes]) -> Path:
    """Write ``messages`` as an mboxrd file."""
    Path(path).write_bytes(mbox_bytes(messages))
    return Path(path)


def dovecot_name(i: int, raw: bytes, flags: str | None = "S") -> str:
    """A Dovecot-style Maildir file name with ``,S=`` and ``,W=`` sizes (and ``:2,`` flags unless None)."""
    w = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
    name = f"{1700000000 + i}.M{i}P2.host,S={len(raw)},W={w}"
    return name if flags is None else f"{name}:2,{flags}"


def write_maildir(path: str | Path, messages: list[bytes]) -> list[Path]:
    """A Maildir with Dovecot names: every 4th message in ``new/`` (no flags), the rest in ``cur/``."""
    root = Path(path)
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    files = []
    for i, raw in enumerate(messages):
        sub, flags = ("new", None) if i % 4 == 3 else ("cur", ["S", "RS", "", "FS"][i % 4])
        files.append(root / sub / dovecot_name(i, raw, flags))
        files[-1].write_bytes(raw)
    return files


def write_emldir(path: str | Path, messages: list[bytes]) -> list[Path]:
    """A folder of ``NNNN.eml`` files."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    files = [root / f"{i:04d}.eml" for i in range(len(messages))]
    for f, raw in zip(files, messages, strict=True):
        f.write_bytes(raw)
    return files


# --- large archives for benchmarks and memory tests -------------------------------------------------------

MEDIAN_SIZE = 8 << 10
# Carried over unchanged by every tool, or (the fake PGP/MIME) by decrypt: left out so runs end with 0.
_NOT_IN_ARCHIVE = (*CARRIED_KINDS, "pgp_mime")
_POOL_SIZE = 1 << 20


def _text_pool(rng: random.Random) -> bytes:
    """About 1 MiB of word lines (``From `` lines included) that message bodies are cut from."""
    lines, size = [], 0
    while size < _POOL_SIZE:
        line = _words(rng, rng.randint(3, 14)).encode()
        lines.append(line)
        size += len(line) + 1
    return b"\n".join(lines) + b"\n"


def _body(rng: random.Random, pool: bytes, size: int) -> bytes:
    start = rng.randrange(0, len(pool) - size - 256)
    start = pool.index(b"\n", start) + 1
    end = pool.index(b"\n", start + size) + 1
    return pool[start:end]


def _attachment(rng: random.Random, i: int, size: int) -> bytes:
    head = b"\n".join([*_head(i, "Large attachment", [b"MIME-Version: 1.0",
                       b'Content-Type: multipart/mixed; boundary="b1"']), b"", b"--b1",
                       b"Content-Type: text/plain", b"", b"see attachment", b"--b1",
                       b'Content-Type: application/octet-stream; name="a.bin"',
                       b"Content-Transfer-Encoding: base64", b""])  # fmt: skip
    data = base64.encodebytes(rng.randbytes(size * 3 // 4))
    return head + b"\n" + data + b"--b1--\n"


def iter_archive(count: int, total_bytes: int, seed: int = 0, large_size: int = 2 << 20) -> Iterator[bytes]:
    """``count`` messages of about ``total_bytes`` in all: text messages of median 8 KiB (log-normal,
    capped at 256 KiB), every 40th one of the edge-case KINDS (none that a run must carry over
    unchanged), and a tail of messages with large base64 attachments (0.5-1.5x the rest's
    average, about ``large_size``) spread evenly to make up the rest. Pure function of the seed.
    """
    rng = random.Random(seed)
    pool = _text_pool(rng)
    sizes = [min(256 << 10, int(rng.lognormvariate(0, 0.6) * MEDIAN_SIZE)) for _ in range(count)]
    rest = max(0, total_bytes - sum(sizes) - 600 * count)
    n_large = min(count, round(rest / large_size))
    every = count // n_large if n_large else 0
    for i, size in enumerate(sizes):
        if every and i % every == every // 2 and i // every < n_large:
            yield _attachment(rng, i, int(rest / n_large * rng.uniform(0.5, 1.5)))
        elif i % 40 == 39:  # the edge cases, but none that is carried over (runs end with status 0)
            kind = KINDS[(i // 40) % len(KINDS)]
            yield message(rng, "plain" if kind in _NOT_IN_ARCHIVE else kind, i, crlf=i % 3 == 0)
        else:
            raw = b"\n".join(_mime(i, "Text", b"text/plain; charset=us-ascii", [_body(rng, pool, size)]))
            yield raw.replace(b"\n", b"\r\n") if i % 7 == 0 else raw


def write_archive(path: str | Path, count: int, total_bytes: int, seed: int = 0) -> Path:
    """Write :func:`iter_archive` as an mboxrd file, streaming (memory: one message at a time)."""
    path = Path(path)
    with open(path, "wb") as f:
        for raw in iter_archive(count, total_bytes, seed):
            f.write(mbox_bytes([raw]))
    return path
