"""Build the Cython hot paths in ``ext/`` into ``engine`` extension modules.

Every extension has a pure-Python twin in ``engine/``; ``ENGINE_NO_EXTENSIONS=1`` at build time skips the
compile (the package then runs on the twins), and a failed compile is an error unless
``ENGINE_OPTIONAL_EXTENSIONS=1`` says the twins are acceptable.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
EXT_DIR = Path("ext")
C_DIR = EXT_DIR / "csrc"

# (module name inside engine, pyx file, extra C sources)
NATIVE_MODULES: list[tuple[str, str, list[str]]] = [
    ("_armor_c", "_armor_c.pyx", ["base64_simd.c", "crc24.c", "cpu.c"]),
    ("_wkd_c", "_wkd_c.pyx", ["sha1.c", "zbase32.c", "cpu.c"]),
    ("_pgpcrypto_c", "_pgpcrypto_c.pyx", ["pgpcrypto.c", "cfbmb.c", "shamb.c", "cpu.c", "x25519fb.c"]),
    ("_wkdsel_c", "_wkdsel_c.pyx", ["wkdsel.c"]),
    ("_mboxscan_c", "_mboxscan_c.pyx", []),
    ("_mailpass_c", "_mailpass_c.pyx", []),
    ("_ed25519_c", "_ed25519_c.pyx", ["ed25519.c"]),
]
# Libraries a module links against (OpenSSL's libcrypto: package libssl-dev on Debian).
LIBRARIES: dict[str, list[str]] = {
    "_pgpcrypto_c": ["crypto"],
    "_wkdsel_c": ["crypto"],
    "_ed25519_c": ["crypto"],
}


def _extensions() -> list[Extension]:
    if os.environ.get("ENGINE_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    compile_args = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function"]
    exts = []
    only = set(filter(None, os.environ.get("ENGINE_BUILD_ONLY", "").split(",")))
    headers = [str(C_DIR / h.name) for h in sorted((HERE / C_DIR).glob("*.h"))]
    for name, pyx, csrc in NATIVE_MODULES:
        if (only and name not in only) or not (HERE / EXT_DIR / pyx).exists():
            continue
        sources = [str(EXT_DIR / pyx)] + [str(C_DIR / c) for c in csrc if (HERE / C_DIR / c).exists()]
        exts.append(
            Extension(
                f"engine.{name}",
                sources=sources,
                include_dirs=[str(C_DIR)],
                depends=headers,  # a changed header rebuilds (setuptools compares times)
                libraries=LIBRARIES.get(name, []),
                extra_compile_args=compile_args,
                language="c",
            )
        )
    return cythonize(
        exts,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
        quiet=True,
    )


try:
    setup(ext_modules=_extensions())
except Exception as exc:  # pragma: no cover - build-time fallback
    if not os.environ.get("ENGINE_OPTIONAL_EXTENSIONS"):
        raise
    print(f"warning: native extensions not built ({exc}); using the pure-Python twins", file=sys.stderr)
    setup(ext_modules=[])
