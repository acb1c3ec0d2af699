"""`make bench`: run the five benchmarks, print their tables, and write them to bench/results/latest.md.

    python -m bench.run                 all five (what `make bench` runs), about 10 minutes on 2 cores
    python -m bench.run --only 2 --only 4
    python -m bench.run --quick         small sizes for development; written to bench/results/quick.md

Benchmark 5 (memory) is measured during 1 (workers) and 2 (`fleetprompt serve`), so `--only 5` runs those too.
Without FLEETPROMPT_TEST_DATABASE_URL this re-runs itself under tests/support/postgres.py, the throwaway PostgreSQL
that `make test` uses. With --only, the other sections of the results file are kept as they were.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import common
from bench.common import Table
from bench.world import URL_VARIABLE

RESULTS = Path(__file__).parent / "results"
NAMES = {1: "pipeline", 2: "mcp", 3: "chat", 4: "tenants", 5: "memory"}
WORKER_RSS_GOAL_MB = 200


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", type=int, action="append", choices=sorted(NAMES), help="run benchmark N (repeatable)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    return parser.parse_args(argv)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=common.ROOT).stdout.strip()
    except OSError:
        return "?"


def meta_table(args: argparse.Namespace, wall: float, load_start: str, selected: set[int]) -> Table:
    out = Table("meta", "Run", ["", ""])
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--untracked-files=no") else ""
    out.add("date (UTC)", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"))
    out.add("commit", f"{_git('rev-parse', '--short', 'HEAD')}{dirty}")
    out.add("command", "python -m bench.run " + " ".join(sys.argv[1:]) if sys.argv[1:] else "make bench")
    out.add("sizes", "quick (development)" if args.quick else "full")
    out.add("benchmarks in this run", ", ".join(f"{n}. {NAMES[n]}" for n in sorted(selected)))
    out.add("wall time of the benchmarks", f"{wall / 60:.1f} min")
    out.add("load average at start → end", f"{load_start} → {common.load_average()}")
    return out


def machine_table(scratch: Path) -> Table:
    out = Table("machine", "Machine", ["", ""])
    for name, value in common.machine_facts(scratch):
        out.add(name, value)
    out.notes.append(
        "PostgreSQL is the throwaway server of `make test` (tests/support/postgres.py): fsync=off, "
        "synchronous_commit=off, so commits do not wait for the disk; the fdatasync figure is what a durable "
        "commit would add."
    )
    return out


def memory_table(rows: list[tuple[str, str, float]]) -> Table:
    out = Table("memory", "5. Memory: peak RSS (VmHWM)", ["process", "measured during", "peak RSS", "goal"])
    for process, during, mib in rows:
        mb = mib * 1024 * 1024 / 1e6
        goal = f"≤ {WORKER_RSS_GOAL_MB} MB ({common.verdict(mb <= WORKER_RSS_GOAL_MB)})" if "worker" in process else "-"
        out.add(process, during, f"{mb:.0f} MB", goal)
    out.notes.append(
        "Read from /proc/<pid>/status just before each process is stopped. `fleetprompt serve` is measured under the "
        "MCP load of benchmark 2 (benchmark 1 files in-process and needs no server)."
    )
    return out


def write_results(path: Path, tables: list[Table]) -> None:
    """Replace each table's section (between its markers) and keep the rest of the file."""
    text = (
        path.read_text() if path.exists() else "# FleetPrompt benchmarks\n\nWritten by `make bench` (bench/run.py).\n"
    )
    for table in tables:
        section = f"<!-- bench:{table.key} -->\n{table.markdown()}<!-- /bench:{table.key} -->\n"
        pattern = re.compile(rf"<!-- bench:{table.key} -->\n.*?<!-- /bench:{table.key} -->\n", re.S)
        text = pattern.sub(lambda _m, s=section: s, text) if pattern.search(text) else f"{text}\n{section}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def failed(key: str, title: str, exc: BaseException) -> Table:
    out = Table(key, f"{title} — FAILED", ["error"])
    out.add(f"`{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}`")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if not os.environ.get(URL_VARIABLE):
        launcher = common.ROOT / "tests" / "support" / "postgres.py"
        os.execv(sys.executable, [sys.executable, str(launcher), "--", sys.executable, "-m", "bench.run", *argv])
    selected = set(args.only or NAMES)
    from bench import chat_turn, mcp_call, pipeline, tenants  # imported after the re-exec

    load_start = common.load_average()
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="fleetprompt-bench-"))
    log_dir = scratch / "logs"
    tables: list[Table] = []
    memory: list[tuple[str, str, float]] = []
    errors = 0

    def emit(table: Table) -> None:
        tables.append(table)
        print("\n" + table.markdown(), flush=True)

    def attempt(key: str, title: str, body: Callable[[], None]) -> None:
        nonlocal errors
        try:
            body()
        except Exception as exc:
            errors += 1
            traceback.print_exc()
            emit(failed(key, title, exc))

    try:
        common.log(f"machine facts (pg_test_fsync); logs of child processes in {log_dir}")
        emit(machine_table(scratch))

        def one() -> None:
            table, rows = pipeline.run(args.quick, log_dir)
            memory.extend(rows)
            emit(table)

        def two() -> None:
            table, rows = mcp_call.run(args.quick, log_dir)
            memory.extend(rows)
            emit(table)

        if selected & {1, 5}:
            attempt("pipeline", "1. Directive pipeline", one)
        if selected & {2, 5}:
            attempt("mcp", "2. MCP call", two)
        if 3 in selected:
            attempt("chat", "3. Chat turn", lambda: emit(chat_turn.run(args.quick, log_dir)))
        if 4 in selected:
            attempt("tenants", "4. Tenants", lambda: emit(tenants.run(args.quick, log_dir)))
        if 5 in selected:
            emit(memory_table(memory))
    finally:
        wall = time.perf_counter() - started
        meta = meta_table(args, wall, load_start, selected)
        print("\n" + meta.markdown(), flush=True)
        target = RESULTS / ("quick.md" if args.quick else "latest.md")
        write_results(target, [meta, *tables])
        common.log(f"wrote {target.relative_to(common.ROOT)} ({wall / 60:.1f} min)")
        if not errors:
            shutil.rmtree(scratch, ignore_errors=True)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
