"""What every benchmark shares: statistics, markdown tables, machine facts and child processes.

Figures are medians of three runs, each compared with a baseline measured in the same run, so a busy or slow
machine moves both sides together; the machine section says what the figures came from.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
FLEETPROMPT = str(VENV_BIN / "fleetprompt")
PYTHON = sys.executable
RUNS = 3  # every figure is the median of this many runs


# ---------------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def medians(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per-key median over runs (each run a dict of named figures)."""
    return {key: median([run[key] for run in runs if key in run]) for key in runs[0]}


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s" if per_second >= 100 else f"{per_second:,.1f}/s"


def times(value: float) -> str:
    return f"{value:.2f}x"


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """The median and, in brackets, the range of the runs: how much the machine moved the figure."""
    if len(values) < 2:
        return fmt(median(values))
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


class Stopwatch:
    """`with Stopwatch() as sw: ...` then sw.seconds."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# ---------------------------------------------------------------------------------------------- tables


@dataclass
class Table:
    """One benchmark's result: printed as markdown and written into bench/results."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def log(message: str) -> None:
    """Progress on stderr (tables go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def disk_of(path: Path) -> str:
    """Filesystem and device kind (SSD/HDD from the kernel's rotational flag) holding `path`."""
    best: tuple[str, str, str] = ("?", "?", "")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mountpoint, fstype = line.split()[:3]
            if str(path.resolve()).startswith(mountpoint) and len(mountpoint) >= len(best[2]):
                best = (device, fstype, mountpoint)
    except OSError:
        return "unknown disk"
    device, fstype, _ = best
    name = Path(device).name
    base = re.sub(r"p?\d+$", "", name) if not name.startswith("nvme") else re.sub(r"p\d+$", "", name)
    rotational = Path(f"/sys/block/{base}/queue/rotational")
    kind = "kind unknown"
    if rotational.exists():
        flag = rotational.read_text().strip()
        kind = f"kernel's rotational flag {flag}" + (
            " (virtual disk: the flag says little)" if base[:2] in ("vd", "xv") else ""
        )
    size = shutil.disk_usage(path).total / 1024**3
    return f"{device} ({fstype}, {size:.0f} GiB, {kind})"


def pg_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "pg_test_fsync").exists():
            return candidate
    return None


def fdatasync_rate(directory: Path) -> str:
    """pg_test_fsync's one-8kB-write fdatasync figure; stopped as soon as that line is out (the rest takes ~15 s)."""
    bindir = pg_bindir()
    if bindir is None:
        return "pg_test_fsync not found"
    target = directory / "pg_test_fsync.out"
    process = subprocess.Popen(
        [str(bindir / "pg_test_fsync"), "-s", "2", "-f", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    found = "not reported"
    try:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.match(r"\s+fdatasync\s+([\d.]+) ops/sec\s+(\d+) usecs/op", line)
            if match:
                found = f"{float(match.group(1)):,.0f} ops/s ({match.group(2)} µs/op)"
                break
    finally:
        stop(process, timeout=5)
        target.unlink(missing_ok=True)
    return found


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_facts(scratch: Path) -> list[tuple[str, str]]:
    """What the README's Performance section quotes next to the figures."""
    return [
        ("CPU", f"{os.cpu_count()} cores, {_cpu_model()}"),
        ("memory", f"{_memory_gib():.1f} GiB"),
        ("disk", disk_of(scratch)),
        ("pg_test_fsync fdatasync", fdatasync_rate(scratch)),
        ("Python", sys.version.split()[0]),
        ("load average at start (1/5/15 min)", load_average()),
    ]


# ---------------------------------------------------------------------------------------------- processes

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends connected to `database` (their process title names it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
            pids.append(int(entry.name))
    return pids


@dataclass
class CpuMeter:
    """CPU used by this process, by given child processes, and by one database's PostgreSQL backends."""

    children: list[int]
    database: str | None
    start: dict[str, float] = field(default_factory=dict)
    backends: dict[int, float] = field(default_factory=dict)

    def __enter__(self) -> CpuMeter:
        self.start = {"self": time.process_time(), "children": sum(cpu_seconds(p) for p in self.children)}
        if self.database:
            self.backends = {pid: cpu_seconds(pid) for pid in postgres_backends(self.database)}
        self.used: dict[str, float] = {}
        return self

    def __exit__(self, *_exc: object) -> None:
        self.used = {
            "self": time.process_time() - self.start["self"],
            "children": sum(cpu_seconds(p) for p in self.children) - self.start["children"],
        }
        if self.database:
            now = {pid: cpu_seconds(pid) for pid in postgres_backends(self.database)}
            self.used["postgres"] = sum(cpu - self.backends.get(pid, 0.0) for pid, cpu in now.items())


def run_callers(count: int, caller: Callable[[int], None], name: str) -> float:
    """`count` threads each run `caller(index)`, released together; returns the seconds until the last one ends.
    The first error any of them raised is raised here."""
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            caller(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), name=f"{name}-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**fleetprompt: str) -> dict[str, str]:
    """Our environment without any FLEETPROMPT_* setting, plus the given ones (keys without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update({f"FLEETPROMPT_{k.upper()}": v for k, v in fleetprompt.items()})
    return env


@dataclass
class Child:
    """A child process whose output goes to a log file; we stop only what we started, by pid."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: TextIO

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_log(self, pattern: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while pattern not in self.log_text():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not log {pattern!r} within {timeout:.0f} s")
            time.sleep(0.05)

    def wait_for_port(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.log_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} is not listening on {port} after {timeout:.0f} s") from None
                time.sleep(0.05)

    def peak_rss_mib(self) -> float:
        """VmHWM: the resident set's high-water mark over the process's life (read before stopping it)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> None:
        stop(self.process)
        self.log_file.close()


def start(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed by Child.stop
    process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT)
    return Child(name, process, log_path, log_file)


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 20) -> None:
    """SIGINT (graceful for uvicorn and Huey), then SIGTERM, then SIGKILL: only this one pid."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue
