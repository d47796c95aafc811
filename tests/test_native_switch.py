"""The import switch between compiled kernels and their pure-Python twins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import engine
from engine import _native


def test_native_built_when_required() -> None:
    """In CI the compiled kernels must be present, or the 'native' runs would silently be pure."""
    if not os.environ.get("PGPBULK_REQUIRE_NATIVE"):
        pytest.skip("PGPBULK_REQUIRE_NATIVE not set")
    for name in _native.KERNELS:
        assert "native" in _native.implementations(name), f"engine._{name}_c is not built"
    assert engine.native_available()


def test_env_var_forces_pure_twins() -> None:
    code = "import engine, engine._native as n; print(engine.native_available(), sorted(set(n.describe().values())))"
    env = dict(os.environ, ENGINE_NO_EXTENSIONS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "['pure']"]


def test_use_switches_every_kernel(impl: str) -> None:
    assert set(_native.describe().values()) == {impl}
    assert engine.native_available() is (impl == "native")
