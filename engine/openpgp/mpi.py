"""Multiprecision integers (RFC 9580 section 3.2) and the fixed-length native fields of v6 algorithms."""

from __future__ import annotations

from engine.openpgp.packet import BodyReader


def read_mpi_bytes(r: BodyReader, name: str = "MPI") -> bytes:
    """The big-endian magnitude of the next MPI, as stored (leading zero bits not re-checked)."""
    start = r.pos
    bits = r.u16(f"{name} bit count")
    data = r.take((bits + 7) // 8, name)
    if data and bits and data[0] >> ((bits - 1) % 8 + 1):
        raise r.fail(f"{name} bit count {bits} smaller than its value", at=start)
    return data


def read_mpi(r: BodyReader, name: str = "MPI") -> int:
    """The next MPI as an int."""
    return int.from_bytes(read_mpi_bytes(r, name), "big")


def mpi_bytes(value: bytes) -> bytes:
    """Encode big-endian bytes as an MPI (leading zero octets stripped, exact bit count)."""
    value = value.lstrip(b"\x00")
    bits = (len(value) - 1) * 8 + value[0].bit_length() if value else 0
    return bits.to_bytes(2, "big") + value


def mpi(value: int) -> bytes:
    """Encode a non-negative int as an MPI."""
    if value < 0:
        raise ValueError("MPI cannot be negative")
    return value.bit_length().to_bytes(2, "big") + value.to_bytes((value.bit_length() + 7) // 8, "big")


def read_fixed(r: BodyReader, size: int, name: str) -> bytes:
    """A fixed-length native field (X25519, Ed25519, ... in RFC 9580 section 5.5.5)."""
    return r.take(size, name)


def read_small_field(r: BodyReader, name: str) -> bytes:
    """A one-octet length followed by that many octets (curve OIDs, KDF parameters)."""
    n = r.u8(f"{name} length")
    if n in (0, 0xFF):
        raise r.fail(f"{name} length {n} is reserved", at=r.pos - 1)
    return r.take(n, name)
