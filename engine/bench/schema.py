"""The JSON document ``pgpbulk bench --json FILE`` writes (schema version 1).

Layout (``SCHEMA`` below is the authoritative JSON Schema, draft 2020-12; ``python -m
engine.bench.schema`` prints it)::

    {
      "schema": "pgpbulk-bench", "version": 1,
      "date": "2026-11-28T10:00:00Z",          # UTC, when the run started
      "pgpbulk": "0.1.0", "quick": true, "seed": 20261128, "seconds": 41.2,   # run wall time
      "machine": {"platform", "python", "cpu_model", "cores",
                  "cpu_flags": {"avx2": bool, "pclmul": bool, "sha_ni": bool},     # /proc/cpuinfo
                  "kernel_features": {"armor": {...}, "wkd": {...}},              # kernel.features()
                  "kernels": {"armor": "native"|"pure", ...},                     # choice in use
                  "native_built": bool},
      "peers": {"gpg": "gpg (GnuPG) 2.2.40" | null, "sq": ..., "pybase64": "1.5.1", ...},   # null: missing
      "jobs": [{
          "name": "armor", "unit": "MB/s"|"items/s", "size": 1048576, "description": "...",
          "reference": "native",                   # the implementation every ratio is taken against
          "seconds": 3.1, "budget_s": 5.0, "over_budget": false,   # time taken; quick runs: budget
          "results": [{"impl": "gpg --enarmor", "role": "us"|"twin"|"peer"|"bound",
                       "status": "ok"|"missing"|"skipped"|"failed"|"cut", "reason": str|null,
                       "throughput": float|null,   # in the job's unit (MB/s = 10**6 bytes/s)
                       "best_s", "median_s": float|null,   # wall seconds per pass over the data
                       "cpu_s": float|null,                # CPU seconds per pass (children included)
                       "runs": int, "cpu_share": float|null, "gated": bool, "note": str}],
          "ratios": [{"of": "native", "to": "gpg --enarmor", "value": 31.9, "cpu": 30.2, "gated": true}]
      }],
      "scaling": [{"job": "armor", "param": "size", "label": "message size (bytes)", "unit": "MB/s",
                   "points": [{"impl": "native", "x": 1024, "throughput": 850.0}],
                   "cut": 0}],                   # points not measured: the job's budget was spent
      "budget_s": 50.0, "budget_asked_s": 22.0,   # quick runs: the run's budget, the jobs' sum
      "load_errors": {"engine.bench.jobs_x": "ImportError: ..."}
    }

Status "missing": a requirement is not met here (the reason names it); "skipped": not run with
``--quick``; "failed": it raised (the reason says what); "cut": not started because the job's quick
budget was spent (see :mod:`engine.bench.runner`). Version 1 grew these optional fields without
breaking older documents: ``seconds``, ``budget_s``, ``over_budget``, scaling ``cut``, status "cut",
``budget_asked_s``.

A ratio ``value`` is ``throughput(of) / throughput(to)`` by wall clock: above 1 means the reference
is faster; against a "bound" it is the fraction of the machine limit reached. ``cpu`` is the same
ratio of CPU seconds per pass (``cpu_s(to) / cpu_s(of)``), which contention on a shared runner barely
moves; ``null`` when a side has no CPU figure. ``--compare`` gates only ratios with
``gated: true`` (see :mod:`engine.bench.compare`).
"""

from __future__ import annotations

import json
from typing import Any

NAME = "pgpbulk-bench"
VERSION = 1

_NUM_OR_NULL = {"type": ["number", "null"]}
_RESULT = {
    "type": "object",
    "required": ["impl", "role", "status", "throughput", "best_s", "median_s", "runs", "gated"],
    "properties": {
        "impl": {"type": "string"},
        "role": {"enum": ["us", "twin", "peer", "bound"]},
        "status": {"enum": ["ok", "missing", "skipped", "failed", "cut"]},
        "reason": {"type": ["string", "null"]},
        "throughput": _NUM_OR_NULL,
        "best_s": _NUM_OR_NULL,
        "median_s": _NUM_OR_NULL,
        "cpu_s": _NUM_OR_NULL,
        "runs": {"type": "integer", "minimum": 0},
        "cpu_share": _NUM_OR_NULL,
        "gated": {"type": "boolean"},
        "note": {"type": "string"},
    },
}
_RATIO = {
    "type": "object",
    "required": ["of", "to", "value", "gated"],
    "properties": {
        "of": {"type": "string"},
        "to": {"type": "string"},
        "value": {"type": "number", "exclusiveMinimum": 0},
        "cpu": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "gated": {"type": "boolean"},
    },
}
_JOB = {
    "type": "object",
    "required": ["name", "unit", "size", "reference", "results", "ratios"],
    "properties": {
        "name": {"type": "string"},
        "unit": {"enum": ["MB/s", "items/s"]},
        "size": {"type": "integer", "minimum": 1},
        "description": {"type": "string"},
        "reference": {"type": ["string", "null"]},
        "seconds": {"type": "number", "minimum": 0},
        "budget_s": {"type": "number", "exclusiveMinimum": 0},
        "over_budget": {"type": "boolean"},
        "results": {"type": "array", "items": _RESULT},
        "ratios": {"type": "array", "items": _RATIO},
    },
}
_SCALING = {
    "type": "object",
    "required": ["job", "param", "label", "unit", "points"],
    "properties": {
        "job": {"type": "string"},
        "param": {"type": "string"},
        "label": {"type": "string"},
        "unit": {"enum": ["MB/s", "items/s"]},
        "cut": {"type": "integer", "minimum": 0},
        "points": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["impl", "x", "throughput"],
                "properties": {
                    "impl": {"type": "string"},
                    "x": {"type": "number"},
                    "throughput": {"type": "number"},
                },
            },
        },
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://pgpbulk.invalid/schemas/bench-1.json",
    "title": "pgpbulk bench results",
    "type": "object",
    "required": ["schema", "version", "date", "pgpbulk", "quick", "seed", "machine", "peers", "jobs"],
    "properties": {
        "schema": {"const": NAME},
        "version": {"const": VERSION},
        "date": {"type": "string", "format": "date-time"},
        "pgpbulk": {"type": "string"},
        "quick": {"type": "boolean"},
        "seed": {"type": "integer"},
        "seconds": {"type": "number"},
        "machine": {
            "type": "object",
            "required": ["platform", "python", "cores", "cpu_flags", "kernels"],
            "properties": {
                "cpu_flags": {
                    "type": "object",
                    "required": ["avx2", "pclmul", "sha_ni"],
                    "additionalProperties": {"type": "boolean"},
                },
                "kernels": {"type": "object", "additionalProperties": {"enum": ["native", "pure"]}},
                "kernel_features": {"type": "object"},
                "cores": {"type": "integer"},
            },
        },
        "peers": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "jobs": {"type": "array", "items": _JOB},
        "scaling": {"type": "array", "items": _SCALING},
        "budget_s": {"type": "number", "exclusiveMinimum": 0},
        "budget_asked_s": {"type": "number", "minimum": 0},
        "load_errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validate(doc: Any) -> list[str]:
    """Problems of ``doc`` against :data:`SCHEMA` (empty when valid).

    Uses ``jsonschema`` when installed; otherwise checks the top-level keys, schema name and version.
    """
    try:
        import jsonschema
    except ImportError:
        if not isinstance(doc, dict):
            return ["document is not a JSON object"]
        problems = [f"missing key {key!r}" for key in SCHEMA["required"] if key not in doc]
        if doc.get("schema") != NAME or doc.get("version") != VERSION:
            problems.append(f"not a {NAME} version {VERSION} document")
        return problems
    validator = jsonschema.Draft202012Validator(SCHEMA)
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator.iter_errors(doc)
    ]


if __name__ == "__main__":
    print(json.dumps(SCHEMA, indent=2))
