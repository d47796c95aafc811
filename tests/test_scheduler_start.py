"""The pool's fork server starts before the command loads the scheduler: ``engine.scheduler`` loads its
parts on first use, and :mod:`engine.scheduler.start` needs none of them."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import engine.scheduler as scheduler
from engine.scheduler import pool, start

HEAVY = ("concurrent.futures", "engine.scheduler.job", "engine.scheduler.journal", "engine.scheduler.sink",
         "engine.scheduler.pool", "engine.mail.job")  # fmt: skip


def test_start_loads_neither_the_pool_nor_the_job_loop() -> None:
    code = (
        "import sys, engine.scheduler, engine.scheduler.start, engine.mail.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


@pytest.mark.parametrize("name", scheduler.__all__)
def test_every_name_of_the_package_resolves_to_its_module(name: str) -> None:
    value = getattr(scheduler, name)
    module = importlib.import_module(f"engine.scheduler.{scheduler._WHERE[name]}")
    assert value is getattr(module, name)


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        scheduler.no_such_name  # noqa: B018


def test_pool_keeps_its_start_names() -> None:
    assert pool.prestart is start.prestart
    assert pool.pool_context is start.pool_context
    assert pool.START_METHOD_ENV == start.START_METHOD_ENV == "PGPBULK_START_METHOD"
