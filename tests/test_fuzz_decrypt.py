"""Decrypt-side fuzzing over real messages and certificates made by gpg (in a throwaway home).

Three layers are mutated: the outer message (PKESK and SEIPD framing, what an attacker controls before
any integrity check), the inner packet stream re-sealed under the real session key (so the literal and
compressed-data parsers see the mutation after the MDC passes), and certificates through ``read_certs``.
Whatever happens, only ``engine.errors`` types come out, a structural error carries its byte offset,
a compression bomb stops at ``max_output``, and each example finishes within the hypothesis deadline.
"""

from __future__ import annotations

import io
import subprocess
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ArmorError, PgpBulkError, StructuralError
from engine.openpgp import message, seipd, streaming
from engine.openpgp.compressed import DecompressionLimit, compress
from engine.openpgp.constants import CompressionAlgorithm, PacketTag
from engine.openpgp.keys import read_certs
from engine.openpgp.literal import LiteralData
from engine.openpgp.packet import packet_header
from engine.openpgp.provider import InProcessKeyProvider
from tests.conftest import require_tool

pytestmark = pytest.mark.peer

MAX_OUTPUT = 1 << 16  # decompression limit during the fuzz: bombs must stop here
DEADLINE_MS = 5000  # generous: two shared cores; a hang or quadratic blow-up still trips it
FUZZ = settings(
    max_examples=120, deadline=DEADLINE_MS, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PLAINTEXT = b"Subject: fuzz\r\n\r\n" + b"line of mail text\n" * 200


@dataclass
class Corpus:
    """gpg-made messages (compressed with ZIP/ZLIB/BZip2 and not, signed and not), the keys, certs."""

    messages: list[bytes]
    provider: InProcessKeyProvider
    certs: list[bytes]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Corpus]:
    require_tool("gpg")
    home = tmp_path_factory.mktemp("fuzz") / "gnupg"
    home.mkdir(mode=0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--yes", "--trust-model", "always"]

    def gpg(*args: str, stdin: bytes = b"") -> bytes:
        proc = subprocess.run([*base, *args], input=stdin, capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
        return proc.stdout

    for name, primary, sub in (("cv", "ed25519", "cv25519"), ("rsa", "rsa2048", "rsa2048")):
        uid = f"{name}@example.org"
        gpg("--passphrase", "", "--quick-gen-key", uid, primary, "cert,sign", "never")
        fpr = next(
            line.split(":")[9]
            for line in gpg("--with-colons", "--list-keys", uid).decode().splitlines()
            if line.startswith("fpr")
        )
        gpg("--passphrase", "", "--quick-add-key", fpr, sub, "encr", "never")
    messages = []
    for rcpt in ("cv", "rsa"):
        for extra in (["-z", "0"], ["--compress-algo", "zip"], ["--compress-algo", "zlib"]):
            messages.append(gpg(*extra, "--encrypt", "-r", f"{rcpt}@example.org", stdin=PLAINTEXT))
    messages.append(gpg("--compress-algo", "bzip2", "--encrypt", "-r", "cv@example.org", stdin=PLAINTEXT))
    messages.append(
        gpg("--sign", "-u", "cv@example.org", "--encrypt", "-r", "cv@example.org", stdin=PLAINTEXT)
    )
    messages.append(
        gpg("--armor", "--encrypt", "-r", "cv@example.org", "-r", "rsa@example.org", stdin=PLAINTEXT)
    )
    secrets = gpg("--export-secret-keys")
    provider = InProcessKeyProvider(read_certs(secrets))
    for ct in messages:  # the corpus itself is sound
        assert message.decrypt(ct, provider).plaintext == PLAINTEXT
    certs = [gpg("--export", "cv@example.org"), gpg("--export", "rsa@example.org"), secrets]
    yield Corpus(messages, provider, certs)
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, check=False)


def _mutate(data: st.DataObject, blob: bytes) -> bytes:
    """A few byte flips, an optional inserted or deleted run, an optional truncation."""
    out = bytearray(blob)
    for _ in range(data.draw(st.integers(0, 4), label="flips")):
        if out:
            out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
    if out and data.draw(st.booleans(), label="splice"):
        at = data.draw(st.integers(0, len(out)))
        if data.draw(st.booleans(), label="insert"):
            out[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            del out[at : at + data.draw(st.integers(1, 64))]
    if data.draw(st.booleans(), label="truncate"):
        out = out[: data.draw(st.integers(0, len(out)))]
    return bytes(out)


def _check_typed(blob: bytes, run: Callable[[], object]) -> object | None:
    """Run ``run``; allow only pgpbulk errors, and structural ones must say where (an offset)."""
    try:
        return run()
    except ArmorError as exc:  # armor errors say where by line (the offset is in the base64 text)
        assert exc.line is not None or exc.offset is not None, f"ArmorError without a place: {exc}"
    except StructuralError as exc:
        assert exc.offset is not None, f"{type(exc).__name__} without an offset: {exc}"
        # Without a source the offset counts in the input; with one, in the decrypted or
        # decompressed stream the source names (at most the input or the output limit long).
        bound = len(blob) if exc.source is None else max(len(blob), MAX_OUTPUT)
        assert 0 <= exc.offset <= bound + 64, f"offset {exc.offset} outside its stream: {exc}"
    except PgpBulkError:
        pass
    return None


def _bounded_decrypt(blob: bytes, provider: InProcessKeyProvider) -> message.DecryptResult | None:
    """message.decrypt under tracemalloc: the peak stays within a few times input plus limit."""
    tracemalloc.start()
    try:
        result = _check_typed(blob, lambda: message.decrypt(blob, provider, max_output=MAX_OUTPUT))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * (len(blob) + MAX_OUTPUT) + (1 << 20), f"peak {peak} bytes for {len(blob)} in"
    return result  # type: ignore[return-value]


@FUZZ
@pytest.mark.filterwarnings("ignore::engine.armor.format.ArmorWarning")  # mutated armor: CRC mismatches
@given(data=st.data())
def test_mutated_gpg_messages(corpus: Corpus, data: st.DataObject) -> None:
    """Mutations of whole gpg messages: PKESK parsing, key lookup and decryption, SEIPD framing."""
    blob = _mutate(data, data.draw(st.sampled_from(corpus.messages), label="message"))
    result = _bounded_decrypt(blob, corpus.provider)
    if result is not None:  # integrity protection: anything that decrypts is the original
        assert result.plaintext == PLAINTEXT
    sink = io.BytesIO()
    done = _check_typed(
        blob,
        lambda: streaming.decrypt_stream(
            io.BytesIO(blob), sink, corpus.provider, memory_limit=4096, max_output=MAX_OUTPUT
        ),
    )
    assert sink.getvalue() in (b"", PLAINTEXT) and (done is not None or sink.getvalue() == b"")


def _reseal(ct: bytes, provider: InProcessKeyProvider, inner: bytes) -> bytes:
    """``ct`` with its SEIPD v1 body replaced by ``inner`` sealed under the same session key."""
    parsed = message.parse_message(ct)
    sk = message.decrypt_session_key(parsed, provider)
    assert sk.algorithm is not None
    body = seipd.seal_v1(sk.key, sk.algorithm, inner)
    return (
        b"".join(bytes(p.raw) for p in parsed.others)
        + b"".join(p.serialize() for p in parsed.pkesks)
        + packet_header(PacketTag.SEIPD, len(body))
        + body
    )


def _inner(corpus: Corpus, ct: bytes) -> bytes:
    parsed = message.parse_message(ct)
    return message.open_data(parsed, message.decrypt_session_key(parsed, corpus.provider))


@FUZZ
@given(data=st.data())
def test_mutated_inner_packets_behind_a_valid_mdc(corpus: Corpus, data: st.DataObject) -> None:
    """Mutations of the decrypted packet stream (compressed, literal, signature packets), re-sealed so
    the MDC passes: the literal and decompression parsers get the mutated bytes."""
    ct = data.draw(st.sampled_from(corpus.messages[:-1]), label="message")  # binary ones
    blob = _reseal(ct, corpus.provider, _mutate(data, _inner(corpus, ct)))
    result = _bounded_decrypt(blob, corpus.provider)
    if result is not None:
        assert len(result.plaintext) <= MAX_OUTPUT


def test_compression_bomb_behind_a_valid_mdc(corpus: Corpus) -> None:
    """A ZLIB bomb (16 MiB of zeros in a few KiB) under a gpg message's real session key: stops at the
    limit with an offset, memory stays near the limit."""
    bomb = compress(LiteralData(bytes(16 << 20)).serialize(), CompressionAlgorithm.ZLIB, level=9)
    blob = _reseal(corpus.messages[0], corpus.provider, bomb)
    assert len(blob) < 100_000
    with pytest.raises(DecompressionLimit) as info:
        _bounded_decrypt_raising(blob, corpus.provider)
    assert info.value.offset is not None


def _bounded_decrypt_raising(blob: bytes, provider: InProcessKeyProvider) -> None:
    tracemalloc.start()
    try:
        message.decrypt(blob, provider, max_output=MAX_OUTPUT)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 8 * (len(blob) + MAX_OUTPUT) + (1 << 20), f"peak {peak} bytes"


@FUZZ
@given(data=st.data())
def test_mutated_gpg_certificates(corpus: Corpus, data: st.DataObject) -> None:
    """Mutations of gpg-exported certificates and secret keys through read_certs and key selection."""
    blob = _mutate(data, data.draw(st.sampled_from(corpus.certs), label="cert"))

    def use() -> int:
        certs = read_certs(blob)
        for cert in certs:
            cert.valid_at()
            cert.encryption_subkey()
        return len(certs)

    _check_typed(blob, use)
