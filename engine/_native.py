"""The one switch between native (Cython) kernels and their pure-Python twins.

Each kernel ``NAME`` exists as ``engine._NAME_c`` (compiled from ``ext/_NAME_c.pyx``) and
``engine._NAME_py``; both expose the same functions. ``ENGINE_NO_EXTENSIONS=1`` forces the twins; a
native module that fails to import falls back to its twin. Public modules call :func:`kernel` on each
use, so tests can switch implementations with :func:`use`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from types import ModuleType

KERNELS = ("armor", "wkd", "pgpcrypto", "wkdsel", "mboxscan", "mailpass", "ed25519")

_forced_pure = bool(os.environ.get("ENGINE_NO_EXTENSIONS"))
_native: dict[str, ModuleType | None] = {}
_pure: dict[str, ModuleType] = {}
_active: dict[str, ModuleType] = {}


def _load_native(name: str) -> ModuleType | None:
    if name not in _native:
        try:
            _native[name] = importlib.import_module(f"engine._{name}_c")
        except ImportError:
            _native[name] = None
    return _native[name]


def _load_pure(name: str) -> ModuleType:
    if name not in _pure:
        _pure[name] = importlib.import_module(f"engine._{name}_py")
    return _pure[name]


def kernel(name: str) -> ModuleType:
    """Return the kernel module in use for ``name`` ("armor", "wkd")."""
    mod = _active.get(name)
    if mod is None:
        mod = (None if _forced_pure else _load_native(name)) or _load_pure(name)
        _active[name] = mod
    return mod


def implementations(name: str) -> dict[str, ModuleType]:
    """Both implementations of a kernel that can be loaded here: ``{"native": ..., "pure": ...}``."""
    found = {"pure": _load_pure(name)}
    native = _load_native(name)
    if native is not None:
        found["native"] = native
    return found


def native_available() -> bool:
    """True when every kernel in use is the compiled one (False under ``ENGINE_NO_EXTENSIONS=1``)."""
    return all(kernel(name) is _load_native(name) for name in KERNELS)


def describe() -> dict[str, str]:
    """Which implementation each kernel uses: ``{"armor": "native", "wkd": "pure", ...}``."""
    return {name: ("native" if kernel(name) is _load_native(name) else "pure") for name in KERNELS}


@contextlib.contextmanager
def use(impl: str) -> Iterator[None]:
    """Temporarily run every kernel on ``impl`` ("native" or "pure"); for tests and benchmarks."""
    saved = dict(_active)
    try:
        for name in KERNELS:
            mod = _load_native(name) if impl == "native" else _load_pure(name)
            if mod is None:
                raise RuntimeError(f"native kernel {name!r} is not built")
            _active[name] = mod
        yield
    finally:
        _active.clear()
        _active.update(saved)
