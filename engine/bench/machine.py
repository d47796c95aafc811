"""What the bench ran on: CPU model and flags, kernel features, the native/pure choice, peer versions."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from typing import Any

from engine.bench import peers
from engine.bench.registry import Job

# /proc/cpuinfo flag names of the features the kernels can use.
CPU_FLAGS = {"avx2": "avx2", "pclmul": "pclmulqdq", "sha_ni": "sha_ni"}


def cpu_info() -> tuple[str, dict[str, bool]]:
    """CPU model name and which of AVX2, PCLMUL, SHA-NI ``/proc/cpuinfo`` reports (all False elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, {name: flag in flags for name, flag in CPU_FLAGS.items()}


def kernel_features() -> dict[str, dict[str, Any]]:
    """``features()`` of every kernel implementation that can be loaded, keyed "armor/native" etc."""
    from engine import _native

    found: dict[str, dict[str, Any]] = {}
    for name in _native.KERNELS:
        try:
            impls = _native.implementations(name)
        except ImportError as exc:
            found[name] = {"error": str(exc)}
            continue
        for impl, mod in impls.items():
            features = getattr(mod, "features", None)
            found[f"{name}/{impl}"] = dict(features()) if callable(features) else {}
    return found


def machine_info() -> dict[str, Any]:
    """Platform, CPU flags, kernel features and the native/pure choice in use."""
    from engine import _native

    model, flags = cpu_info()
    try:
        kernels = _native.describe()
    except ImportError:
        kernels = {}
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": model,
        "cores": os.cpu_count() or 1,
        "cpu_flags": flags,
        "kernel_features": kernel_features(),
        "kernels": kernels,
        "native_built": peers.NATIVE.problem() is None,
        "forced_pure": bool(os.environ.get("ENGINE_NO_EXTENSIONS")),
    }


def peer_versions(jobs: Sequence[Job]) -> dict[str, str | None]:
    """Version (or ``None`` = missing) of every tool and module the selected jobs' peers need."""
    versions: dict[str, str | None] = {}
    for job in jobs:
        for impl in job.impls:
            for req in impl.requires:
                if req.kind in ("tool", "module"):
                    versions[req.name] = req.version()
    return versions
