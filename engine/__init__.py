"""pgpbulk: a bulk OpenPGP engine for mail archives, Web Key Directories and throughput benchmarks."""

from __future__ import annotations

from engine._native import native_available

__version__ = "0.1.0"

__all__ = ["__version__", "native_available"]
