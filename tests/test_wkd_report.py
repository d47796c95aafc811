"""WKD build report: a worker batch's skipped addresses counted at once, as one at a time would."""

from __future__ import annotations

import random

from engine.wkd.publish import BuildReport


def test_skip_all_is_skip_of_each() -> None:
    """Batches of reasons, some repeated thousands of times, some rare, one first seen late: the counts
    and the (first three) examples of each reason are those of :meth:`BuildReport.skip` per item."""
    rng = random.Random(7)
    one, batched = BuildReport(), BuildReport()
    for n in range(40):
        reasons = ["other domain"] * 50 + ["expired"] * rng.randrange(3) + (["late"] if n == 33 else [])
        rng.shuffle(reasons)
        batch = [(reason, f"{reason}-{n}-{i}") for i, reason in enumerate(reasons)]
        for reason, what in batch:
            one.skip(reason, what)
        batched.skip_all(batch)
    batched.skip_all([])
    assert batched.skipped == one.skipped and list(batched.skipped) == list(one.skipped)
    assert batched.examples == one.examples
    assert set(one.examples) == {"other domain", "expired", "late"}
