"""Count the calls of a kernel's functions in a test (the functions still run)."""

from __future__ import annotations

from typing import Any

import pytest


def count_calls(monkeypatch: pytest.MonkeyPatch, target: Any, names: tuple[str, ...]) -> dict[str, int]:
    """Wrap ``target``'s functions ``names`` (undone when the test ends); the counts by name."""
    calls = dict.fromkeys(names, 0)
    for name in names:
        real = getattr(target, name)

        def counted(*args: Any, _real: Any = real, _name: str = name) -> Any:
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(target, name, counted)
    return calls
