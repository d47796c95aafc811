"""The ``pgpbulk bench`` framework: JSON schema, ratio gate, missing peers, charts, usage errors.

No timing is asserted: a quick run on tiny data (``--scale``) checks structure only, and the gate is
tested with fake jobs whose ``measure`` returns fixed seconds, so their ratios are exact.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from engine.bench import cli, compare, peers, registry, runner, schema
from engine.bench.registry import DataSpec, Impl, Job
from engine.bench.timing import QUICK, in_process, sample

TINY = "0.002"  # --scale: 1 MiB jobs become 2 KiB, gpg's amortizing input 16 KiB


@pytest.fixture(autouse=True)
def bench_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("PGPBULK_BENCH_CACHE", str(cache))
    return cache


def _fixed(seconds: float) -> Any:
    return lambda data: seconds


BYTES = DataSpec("test-bytes", lambda size, seed: bytes(size))
NO_SUCH_TOOL = "pgpbulk-no-such-peer-tool"


def fake_jobs(twin_seconds: float = 10.0) -> dict[str, Job]:
    """One job: us 1 s, gated twin ``twin_seconds``, an ungated peer, and a peer that is missing."""
    job = Job(
        name="fake",
        unit="MB/s",
        data=BYTES,
        size=1000,
        quick_size=1000,
        description="fixed timings",
        impls=(
            Impl("native", _fixed(1.0), "us"),
            Impl("pure twin", _fixed(twin_seconds), "twin", gated=True),
            Impl("other", _fixed(2.0)),
        ),
    ).with_impls(Impl("ghost", _fixed(1.0), requires=(peers.tool(NO_SUCH_TOOL),), gated=True))
    return {job.name: job}


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Job]]:
    jobs = fake_jobs()
    monkeypatch.setattr(registry, "_loaded", jobs)
    yield jobs


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real ``--quick`` run of every job on tiny data, with JSON and a PNG chart."""
    out = tmp_path_factory.mktemp("quick")
    mp = pytest.MonkeyPatch()
    mp.setenv("PGPBULK_BENCH_CACHE", str(out / "cache"))
    try:
        code = cli.main(
            ["--quick", "--scale", TINY, "--json", str(out / "b.json"), "--plot", str(out / "b.png")]
        )
    finally:
        mp.undo()
    return {"code": code, "json": out / "b.json", "png": out / "b.png"}


def test_quick_run_writes_valid_json(quick_run: dict[str, Any]) -> None:
    assert quick_run["code"] == 0
    doc = json.loads(quick_run["json"].read_text())
    assert schema.validate(doc) == []
    names = {job["name"] for job in doc["jobs"]}
    assert {"armor", "dearmor", "armor-large", "armor-stream", "wkd-hash"} <= names
    assert set(doc["machine"]["cpu_flags"]) == {"avx2", "pclmul", "sha_ni"}
    for job in doc["jobs"]:
        statuses = {r["impl"]: r["status"] for r in job["results"]}
        assert "failed" not in statuses.values(), job
        assert statuses[job["reference"]] == "ok"
        measured = sum(1 for s in statuses.values() if s == "ok")
        assert len(job["ratios"]) == measured - 1
    assert doc["scaling"] and doc["scaling"][0]["points"]


def test_quick_run_plot_written(quick_run: dict[str, Any]) -> None:
    data = quick_run["png"].read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 1000


def test_jsonschema_rejects_bad_document() -> None:
    pytest.importorskip("jsonschema")
    assert schema.validate({"schema": "pgpbulk-bench", "version": 1}) != []


def _run_fake(tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "run.json"
    code = cli.main(["--quick", "--json", str(path), *extra])
    return code, json.loads(path.read_text())


def test_missing_peer_is_listed(fake_registry: dict[str, Job], tmp_path: Path, capsys: Any) -> None:
    code, doc = _run_fake(tmp_path)
    assert code == 0
    out = capsys.readouterr().out
    assert f"missing ({NO_SUCH_TOOL} not installed)" in out
    ghost = next(r for r in doc["jobs"][0]["results"] if r["impl"] == "ghost")
    assert ghost["status"] == "missing" and ghost["throughput"] is None
    assert doc["peers"] == {NO_SUCH_TOOL: None}
    assert schema.validate(doc) == []


def test_fixed_timings_give_exact_ratios(fake_registry: dict[str, Job], tmp_path: Path) -> None:
    _, doc = _run_fake(tmp_path)
    ratios = {r["to"]: (r["value"], r["gated"]) for r in doc["jobs"][0]["ratios"]}
    assert ratios == {"pure twin": (10.0, True), "other": (2.0, False)}
    results = {r["impl"]: r for r in doc["jobs"][0]["results"]}
    assert results["native"]["throughput"] == pytest.approx(0.001)  # 1000 bytes in 1 s


def test_compare_equal_passes_higher_fails(fake_registry: dict[str, Job], tmp_path: Path) -> None:
    _, doc = _run_fake(tmp_path)
    for ratio in doc["jobs"][0]["ratios"]:
        ratio["cpu"] = None  # fixed fake timings burn no CPU: gate on the exact wall ratios
    same = tmp_path / "same.json"
    same.write_text(json.dumps(doc))
    assert cli.main(["--quick", "--compare", str(same)]) == 0

    better = copy.deepcopy(doc)
    for ratio in better["jobs"][0]["ratios"]:
        ratio["value"] *= 2  # the previous run was twice as far ahead of the twin
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps(better))
    assert cli.main(["--quick", "--compare", str(prev), "--fail-below", "0.3"]) == 1
    # A drop to 50% passes when 60% is tolerated; the ungated ratio ("other") never fails.
    assert cli.main(["--quick", "--compare", str(prev), "--fail-below", "0.6"]) == 0


def test_compare_rules() -> None:
    def doc(value: float, gated: bool = True, to: str = "gpg") -> dict[str, Any]:
        ratio = {"of": "native", "to": to, "value": value, "gated": gated}
        return {"jobs": [{"name": "armor", "ratios": [ratio]}]}

    assert compare.compare(doc(30), doc(23), 0.25)[0].status == "ok"  # limit 22.5
    assert compare.compare(doc(30), doc(22), 0.25)[0].status == "FAIL"
    assert compare.compare(doc(30), doc(100), 0.25)[0].status == "ok"
    assert not compare.compare(doc(30, gated=False), doc(1, gated=False), 0.25)
    cpu_old, cpu_new = doc(30), doc(10)  # the CPU ratio is preferred when both sides have it
    cpu_old["jobs"][0]["ratios"][0]["cpu"], cpu_new["jobs"][0]["ratios"][0]["cpu"] = 20.0, 19.0
    check = compare.compare(cpu_old, cpu_new, 0.25)[0]
    assert (check.status, check.clock) == ("ok", "cpu")
    checks = compare.compare(doc(30), doc(30, to="sq"), 0.25)  # peer gone: reported, not failed
    assert {c.status for c in checks} == {"not compared"} and not compare.failed(checks)


@pytest.mark.parametrize(
    "argv",
    [
        ["--only", "no-such-job"],
        ["--fail-below", "0.2"],
        ["--plot", "chart.pdf"],
        ["--compare", "does-not-exist.json"],
    ],
)
def test_usage_errors_exit_2(fake_registry: dict[str, Job], argv: list[str], capsys: Any) -> None:
    assert cli.main(["--quick", *argv]) == 2
    assert "error:" in capsys.readouterr().err


def test_compare_rejects_foreign_json(fake_registry: dict[str, Job], tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"schema": "something-else"}')
    assert cli.main(["--quick", "--compare", str(other)]) == 2


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_formats(fake_registry: dict[str, Job], tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / f"chart{suffix}"
    assert cli.main(["--quick", "--plot", str(chart)]) == 0
    assert chart.stat().st_size > 1000
    assert chart.read_bytes().startswith(b"\x89PNG" if suffix == ".png" else b"<?xml")


def test_data_is_deterministic_and_cached(bench_cache: Path) -> None:
    spec = DataSpec("test-random", lambda size, seed: __import__("random").Random(seed).randbytes(size))
    a = spec.dataset(100, seed=1)
    assert a.path.parent == bench_cache and a.path.read_bytes() == a.raw
    assert spec.dataset(100, seed=1).raw == a.raw
    assert spec.dataset(100, seed=2).raw != a.raw


def test_timer_shapes() -> None:
    timing = sample(in_process(lambda data: sum(data)), list(range(100)), QUICK)
    assert 0 < timing.best <= timing.median and 1 <= timing.runs <= QUICK.repeat


def test_peers_do_the_same_work() -> None:
    """The baselines must compute what we compute, or the ratios compare unlike work."""
    from engine.bench import jobs_armor, jobs_wkd

    data = bytes(range(256)) * 40
    assert jobs_wkd.hashlib_hashes(["Joe.Doe", "ÄRGER"]) == [
        "iy9q119eutrkn8s1mk4r39qejnbu3n5q",
        "ewd7piirpeasam9iz8or84x4be3xhxqw",
    ]
    if peers.module_version("pybase64"):
        assert jobs_armor._binascii_armor(data) == jobs_armor._pybase64_armor(data)
    text = jobs_armor._armor(data)
    assert jobs_armor._binascii_dearmor(text) == data == jobs_armor._dearmor(text)


# --- quick budgets --------------------------------------------------------------------------------------


def _budget_jobs(budget: float) -> dict[str, Job]:
    job = replace(fake_jobs()["fake"], quick_budget=budget)
    return {job.name: job}


def test_budget_spent_cuts_and_reports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any) -> None:
    """A budget spent before the first measurement: our reference still runs, the rest is cut, and
    the job is reported over budget (table, stderr, JSON), never dropped."""
    monkeypatch.setattr(registry, "_loaded", _budget_jobs(1e-9))
    code, doc = _run_fake(tmp_path)
    assert code == 0
    job = doc["jobs"][0]
    status = {r["impl"]: r["status"] for r in job["results"]}
    assert status == {"native": "ok", "pure twin": "cut", "other": "cut", "ghost": "missing"}
    assert [r["impl"] for r in job["results"]] == ["native", "pure twin", "other", "ghost"]  # declared order
    assert job["over_budget"] is True and job["budget_s"] > 0
    assert schema.validate(doc) == []
    captured = capsys.readouterr()
    assert "OVER BUDGET: fake" in captured.out and "not run: pure twin, other" in captured.out
    assert "warning: fake took" in captured.err


def test_budget_kept_runs_everything(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "_loaded", _budget_jobs(1000.0))
    _, doc = _run_fake(tmp_path)
    job = doc["jobs"][0]
    assert job["over_budget"] is False and doc["budget_s"] == registry.RUN_QUICK_BUDGET
    assert {r["status"] for r in job["results"]} == {"ok", "missing"}


def test_budgets_scale_to_the_run_and_run_order() -> None:
    job = fake_jobs()["fake"]
    small, big = replace(job, quick_budget=2.0), replace(job, name="big", quick_budget=6.0)
    assert runner.budgets([small, big], run_budget=50.0) == [2.0, 6.0]
    assert runner.budgets([small, big], run_budget=5.0) == [2.0, 3.0]  # too much: the largest capped
    assert runner.budgets([small, big], run_budget=3.0) == [1.5, 1.5]
    order = [impl.name for impl in runner.run_order(job)]
    assert order == ["native", "pure twin", "ghost", "other"]  # ours, then gated, then the rest


def test_parallel_ratios_have_no_cpu_figure() -> None:
    def row(name: str, share: float) -> dict[str, Any]:
        return {
            "impl": name,
            "status": "ok",
            "throughput": 1.0,
            "cpu_s": 1.0,
            "cpu_share": share,
            "gated": True,
        }

    one_core = [row("native", 1.0), row("gpg", 0.9)]
    assert runner.ratios("native", one_core)[0]["cpu"] == 1.0
    assert runner.ratios("native", one_core, parallel=True)[0]["cpu"] is None
    assert runner.ratios("native", [row("native", 1.0), row("gpg x2", 1.9)])[0]["cpu"] is None


def test_details_reported_by_a_run_join_its_note() -> None:
    from engine.bench.timing import Timing

    said: list[str] = []
    impl = Impl("ours", lambda _d: 1.0, "us", note="all cores", details=lambda: said[-1])
    job = Job(name="j", unit="items/s", data=DataSpec("d", lambda n, s: b"", lambda b: b), size=10,
              quick_size=10, description="", impls=(impl,))  # fmt: skip
    timing = Timing(best=2.0, cpu=2.0, median=2.0, runs=1, cpu_share=1.0)
    said.append("per key: parse 1 µs")
    assert runner.measured(job, impl, 10, timing)["note"] == "all cores; per key: parse 1 µs"
    said.append("")
    assert runner.measured(job, impl, 10, timing)["note"] == "all cores"


def test_every_job_has_a_quick_budget_within_the_run() -> None:
    jobs = registry.discover()
    assert not registry.LOAD_ERRORS
    for job in jobs.values():
        assert 0 < job.quick_budget <= registry.RUN_QUICK_BUDGET


# --- the gate against a pure-Python fallback -------------------------------------------------------------


def _native_jobs() -> dict[str, Job]:
    """The fake job whose reference needs our native kernels (as the real jobs' references do)."""
    fake = fake_jobs()["fake"]
    native = replace(fake.impl("native"), requires=(peers.NATIVE,))
    job = replace(fake, impls=(native, *fake.impls[1:]))
    return {job.name: job}


def test_gate_fails_when_native_is_disabled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "_loaded", _native_jobs())
    _, baseline = _run_fake(tmp_path)
    assert baseline["jobs"][0]["reference"] == "native"
    saved = tmp_path / "baseline.json"
    saved.write_text(json.dumps(baseline))
    assert cli.main(["--quick", "--compare", str(saved), "--fail-below", "0.5"]) == 0

    monkeypatch.setenv("ENGINE_NO_EXTENSIONS", "1")
    fallback = tmp_path / "fallback.json"
    assert cli.main(["--quick", "--json", str(fallback), "--compare", str(saved), "--fail-below", "0.5"]) == 1
    doc = json.loads(fallback.read_text())
    assert doc["jobs"][0]["reference"] == "pure twin"
    checks = compare.compare(baseline, doc, 0.5)
    assert [c.status for c in checks if c.to == "*"] == ["FAIL"]
    assert "native not measured: missing (native kernels disabled" in checks[0].line()


def test_gate_fails_on_a_fallback_that_sneaks_in(fake_registry: dict[str, Job], tmp_path: Path) -> None:
    """Native built but running at the twin's speed: the gated native/twin ratio collapses to ~1."""
    _, baseline = _run_fake(tmp_path)
    fallback = copy.deepcopy(baseline)
    for ratio in fallback["jobs"][0]["ratios"]:
        if ratio["to"] == "pure twin":
            ratio["value"], ratio["cpu"] = 1.02, 0.98
    checks = compare.compare(baseline, fallback, 0.5)
    assert compare.failed(checks)
    assert "FAIL" in compare.render(checks, "baseline.json", 0.5)


def test_gate_names_why_a_ratio_was_not_compared() -> None:
    def doc(status: str) -> dict[str, Any]:
        rows = [
            {"impl": "native", "status": "ok"},
            {"impl": "gpg", "status": status, "reason": "gpg not installed"},
        ]
        ratios = [{"of": "native", "to": "gpg", "value": 30.0, "gated": True}] if status == "ok" else []
        return {"jobs": [{"name": "armor", "reference": "native", "results": rows, "ratios": ratios}]}

    checks = compare.compare(doc("ok"), doc("missing"), 0.5)
    assert [c.status for c in checks] == ["not compared"] and not compare.failed(checks)
    assert "gpg missing (gpg not installed)" in checks[0].line()


# --- schema, baseline, peers, the pytest-benchmark suite -----------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def test_schema_accepts_budget_fields_and_rejects_bad_status(
    fake_registry: dict[str, Job], tmp_path: Path
) -> None:
    pytest.importorskip("jsonschema")
    _, doc = _run_fake(tmp_path)
    assert {"seconds", "budget_s", "over_budget"} <= set(doc["jobs"][0])
    assert schema.validate(doc) == []
    bad = copy.deepcopy(doc)
    bad["jobs"][0]["results"][0]["status"] = "timed out"
    assert any("status" in problem for problem in schema.validate(bad))


def test_committed_baseline_is_a_quick_document_with_gated_ratios() -> None:
    doc = compare.load(ROOT / "bench" / "baseline.json")
    assert doc["quick"] is True and doc["machine"]["native_built"] is True
    gated = {(job["name"], r["to"]) for job in doc["jobs"] for r in job["ratios"] if r["gated"]}
    assert ("armor", "pure twin") in gated and ("wkd-hash", "gpg-wks-client") in gated


def test_tool_version_of_a_program_without_dash_dash_version() -> None:
    if peers.which("openssl") is None:
        pytest.skip("openssl not installed")
    assert peers.tool_version("openssl").startswith("OpenSSL")
    assert peers.tool_version(NO_SUCH_TOOL) is None


def test_suite_has_one_case_per_job_and_implementation() -> None:
    """bench/ is generated from the registry: every (job, implementation) is collected exactly once."""
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    collected = [
        line.split("[", 1)[1].rstrip("]")
        for line in out.splitlines()
        if "::test_bench[" in line and "NOTSET" not in line
    ]
    expected = [f"{job.name}/{impl.name}" for job in registry.discover().values() for impl in job.impls]
    assert sorted(collected) == sorted(expected)
