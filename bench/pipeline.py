"""Benchmark 1 (and 5's workers): forum_reply directives filed through the tool API, run by `fleetprompt worker`.

Filed by CALLERS threads calling `call_tool` in this process, executed by WORKER_PROCESSES real worker processes;
throughput is filed -> all succeeded, latency comes from the directive rows (created_at -> completed_at). The ceiling
(bench/ceiling.py) writes the same rows with a plain driver loop, same concurrency, same database, same run.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlmodel import col, func, select

from bench import ceiling, common, world
from bench.common import Child, Table
from fleetprompt.db.tenancy import schema_name, sqlite_path
from fleetprompt.models.ledger import Directive, Signal
from fleetprompt.platform import Platform
from fleetprompt.tools import DirectiveReceipt, call_tool

CALLERS = 8
WORKER_PROCESSES = 2
WORKER_THREADS = 2  # `fleetprompt worker`'s default --workers
FULL, QUICK = 2000, 200
WARMUP = 16
TENANT = "bench"


@dataclass
class PipelineRun:
    filing_seconds: float
    total_seconds: float
    latencies: list[float]
    signals_per_directive: float
    cpu: dict[str, float] = field(default_factory=dict)


@dataclass
class BackendResult:
    backend: str
    runs: list[PipelineRun] = field(default_factory=list)
    ceilings: list[ceiling.CeilingRun] = field(default_factory=list)
    ceiling_cpu: list[dict[str, float]] = field(default_factory=list)
    worker_rss_mib: list[float] = field(default_factory=list)


def file_replies(platform: Platform, member: world.Member, thread: uuid.UUID, count: int, tag: str) -> float:
    """CALLERS threads file `count` replies through the tool API; returns the seconds filing took."""
    ctx = member.ctx(kind="agent")

    def caller(index: int) -> None:
        for n in range(index, count, CALLERS):
            receipt = call_tool(
                platform.ledger, ctx, "forum_reply", {"thread_id": str(thread), "content": f"reply {tag} {n}"}
            )
            assert isinstance(receipt, DirectiveReceipt) and receipt.created, receipt

    return common.run_callers(CALLERS, caller, "caller")


def wait_all_succeeded(platform: Platform, expected: int, workers: list[Child], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        counts = platform.ledger.counts(TENANT)
        if counts.get("succeeded", 0) >= expected:
            return
        if counts.get("failed", 0):
            raise RuntimeError(f"directives failed: {counts}")
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"{worker.name} exited:\n{worker.log_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"directives still not done after {timeout:.0f} s: {counts}")
        time.sleep(0.05)


def measure(
    platform: Platform, member: world.Member, thread: uuid.UUID, count: int, workers: list[Child]
) -> PipelineRun:
    before = platform.ledger.counts(TENANT).get("succeeded", 0)
    since = datetime.now(UTC)
    wall_start = time.time()
    filing = file_replies(platform, member, thread, count, uuid.uuid4().hex[:8])
    wait_all_succeeded(platform, before + count, workers)
    with platform.db.reading(TENANT) as session:
        rows = session.exec(
            select(Directive.created_at, Directive.completed_at).where(col(Directive.created_at) >= since)
        ).all()
        signals = session.exec(select(func.count()).select_from(Signal).where(col(Signal.recorded_at) >= since)).one()
    done_at = max(completed.timestamp() for _, completed in rows if completed is not None)
    latencies = [(completed - created).total_seconds() for created, completed in rows if completed is not None]
    return PipelineRun(filing, done_at - wall_start, latencies, signals / len(rows))


def start_workers(database_url: str | None, data_dir: Path, log_dir: Path, backend: str) -> list[Child]:
    env = common.child_env(**world.process_env(database_url, data_dir))
    workers = [
        common.start(
            f"worker-{backend}-{i + 1}", [common.FLEETPROMPT, "worker", "--workers", str(WORKER_THREADS)], env, log_dir
        )
        for i in range(WORKER_PROCESSES)
    ]
    for worker in workers:
        worker.wait_for_log("Huey consumer started")
    return workers


def run_backend(backend: str, database_url: str | None, data_dir: Path, count: int, log_dir: Path) -> BackendResult:
    member, thread = world.seeded(database_url, data_dir, TENANT)
    platform = world.build(database_url, data_dir)
    if database_url:
        target = ceiling.postgres_target(world.libpq(database_url), schema_name(TENANT))
    else:
        target = ceiling.sqlite_target(sqlite_path(data_dir / "tenants", TENANT))
    result = BackendResult(backend)
    database = make_url(database_url).database if database_url else None
    workers = start_workers(database_url, data_dir, log_dir, backend)
    connections = [target.connect() for _ in range(CALLERS)]
    try:
        # Warm-up on both sides: connections, prepared statements, caches, imports.
        measure(platform, member, thread, WARMUP, workers)
        ceiling.run_ceiling(target, connections, thread, str(member.user_id), WARMUP * 4, 4)
        for attempt in range(common.RUNS):
            common.log(f"pipeline {backend}: run {attempt + 1}/{common.RUNS} ({count} directives)")
            with common.CpuMeter([w.pid for w in workers], database) as meter:
                run = measure(platform, member, thread, count, workers)
            run.cpu = meter.used
            result.runs.append(run)
            signals = round(run.signals_per_directive)
            with common.CpuMeter([], database) as meter:
                result.ceilings.append(
                    ceiling.run_ceiling(target, connections, thread, str(member.user_id), count, signals)
                )
            result.ceiling_cpu.append(meter.used)
        result.worker_rss_mib = [worker.peak_rss_mib() for worker in workers]
    finally:
        for worker in workers:
            worker.stop()
        for connection in connections:
            connection.close()
        platform.close()
    return result


def run(quick: bool, log_dir: Path) -> tuple[Table, list[tuple[str, str, float]]]:
    """Table 1, and the workers' peak RSS for table 5."""
    count = QUICK if quick else FULL
    results = []
    with world.fresh_database("pipeline") as url, tempfile.TemporaryDirectory(prefix="bench-pipeline-") as pg_dir:
        results.append(run_backend("PostgreSQL", url, Path(pg_dir), count, log_dir))
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-sqlite-") as sqlite_dir:
        results.append(run_backend("SQLite", None, Path(sqlite_dir), count, log_dir))
    return table(results, count), memory_rows(results)


def table(results: list[BackendResult], count: int) -> Table:
    out = Table(
        "pipeline",
        f"1. Directive pipeline: {count:,} forum_reply directives, {CALLERS} callers, "
        f"{WORKER_PROCESSES} workers x {WORKER_THREADS} threads",
        ["backend", "path", "directives/s", "filing only/s", "p50", "p95", "p99", "vs ceiling (goal ≥ 0.50)"],
    )
    for result in results:
        rates = [count / r.total_seconds for r in result.runs]
        ceiling_rates = [count / c.seconds for c in result.ceilings]
        share = common.ratio(common.median(rates), common.median(ceiling_rates))
        p = {q: common.median([common.percentile(r.latencies, q) for r in result.runs]) for q in (50, 95, 99)}
        c = {q: common.median([common.percentile(r.latencies, q) for r in result.ceilings]) for q in (50, 95, 99)}
        out.add(
            result.backend,
            "FleetPrompt (tool API → worker)",
            common.spread(rates, common.rate),
            common.rate(common.median([count / r.filing_seconds for r in result.runs])),
            common.ms(p[50]),
            common.ms(p[95]),
            common.ms(p[99]),
            f"{share:.2f} ({common.verdict(share >= 0.5)})",
        )
        out.add(
            result.backend,
            "ceiling (plain driver loop)",
            common.spread(ceiling_rates, common.rate),
            "-",
            common.ms(c[50]),
            common.ms(c[95]),
            common.ms(c[99]),
            "1.00",
        )
    signals = common.median([r.signals_per_directive for r in results[0].runs])
    out.notes += [cpu_note(result, count) for result in results]
    out.notes += [
        "directives/s: first filing → last `completed_at`; latency: each directive's `created_at` → `completed_at` "
        "(for the ceiling: its three transactions, start to commit).",
        f"The ceiling writes the same rows ({signals:.0f} signals per directive, as measured) in the same three "
        "transactions with the same statement shapes, in the same database after each FleetPrompt run.",
        "Latency is mostly time in the queue: when filing outpaces execution, directives wait for a worker "
        "(SQLite workers poll, up to 0.5 s apart; PostgreSQL workers are woken by NOTIFY).",
        "Figures: median of 3 runs (range of the runs in brackets).",
    ]
    return out


def cpu_note(result: BackendResult, count: int) -> str:
    """Where the cores went, per directive: this process (filing, or the ceiling loop), the workers, PostgreSQL."""

    def per(runs: list[dict[str, float]], key: str) -> str:
        return f"{common.median([run.get(key, 0.0) for run in runs]) / count * 1000:.1f} ms"

    fleet = [r.cpu for r in result.runs]
    where = "PostgreSQL backends" if result.backend == "PostgreSQL" else "(SQLite works inside the processes)"
    pg = result.backend == "PostgreSQL"
    return (
        f"CPU per directive, {result.backend}: FleetPrompt: filing process {per(fleet, 'self')}, workers "
        f"{per(fleet, 'children')}" + (f", {where} {per(fleet, 'postgres')}" if pg else "") + "; ceiling: loop "
        f"{per(result.ceiling_cpu, 'self')}" + (f", {where} {per(result.ceiling_cpu, 'postgres')}" if pg else "") + "."
    )


def memory_rows(results: list[BackendResult]) -> list[tuple[str, str, float]]:
    return [
        (f"fleetprompt worker {i + 1} ({WORKER_THREADS} threads)", f"benchmark 1, {r.backend}", rss)
        for r in results
        for i, rss in enumerate(r.worker_rss_mib)
    ]
