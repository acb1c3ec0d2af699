"""Benchmark 2 (and 5's server): MCP tools/call over Streamable HTTP against one `fleetprompt serve` process.

CLIENTS concurrent clients call for DURATION seconds each of: the bare server's trivial tool (bench/bare_mcp.py),
FleetPrompt's `forum_list_threads`, and FleetPrompt's `forum_reply` (no wait). Each call is one stateless
2026-07-28 POST (the protocol's own single-request form), so the client stays cheap and both servers answer the
same shape of request. The server runs with `--no-runner`: the figure is the call, not the directive's execution.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from bench import common, world
from bench.common import Child, Table

CLIENTS = 16
DURATION, QUICK_DURATION = 20.0, 3.0
WARMUP_CALLS = 50
PROTOCOL = "2026-07-28"
SEED_THREADS = 10  # what forum_list_threads returns: ten threads with their post counts


@dataclass
class Load:
    calls: int
    seconds: float
    latencies: list[float]
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def p(self, q: float) -> float:
        return common.percentile(self.latencies, q)


def _request(tool: str, arguments: dict[str, Any], token: str | None) -> tuple[dict[str, str], dict[str, Any]]:
    headers = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": PROTOCOL,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    meta = {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": {"name": "fleetprompt-bench", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    body["params"]["_meta"] = meta
    return headers, body


def _result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC result in a JSON or SSE answer; raises on anything but a successful tool result."""
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        message = next(m for m in map(json.loads, filter(None, data)) if "result" in m or "error" in m)
    else:
        message = response.json()
    result = message.get("result")
    if result is None or result.get("isError"):
        raise RuntimeError(f"tool call failed: {json.dumps(message)[:300]}")
    return dict(result)


async def _load(url: str, tool: str, arguments: Any, token: str | None, seconds: float) -> Load:
    """CLIENTS loops calling as fast as answers come back; `arguments` may be a callable (fresh per call)."""
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def call() -> None:
            args = arguments() if callable(arguments) else arguments
            headers, body = _request(tool, args, token)
            _result(await client.post(url, json=body, headers=headers))

        for _ in range(WARMUP_CALLS):
            await call()
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def client_loop() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await call()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
        return Load(len(latencies), time.perf_counter() - started, latencies)


def load(url: str, tool: str, arguments: Any, token: str | None, seconds: float) -> Load:
    return asyncio.run(_load(url, tool, arguments, token, seconds))


def token_for(env: dict[str, str], member: world.Member) -> str:
    """An API token made the way an operator makes one: `fleetprompt token create`."""
    out = subprocess.run(
        [common.FLEETPROMPT, "token", "create", "--org", member.org.slug, "--user", member.email, "--label", "bench"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def seed(database_url: str, data_dir: Path) -> tuple[world.Member, uuid.UUID]:
    platform = world.build(database_url, data_dir, queue="memory")
    try:
        member = world.new_member(platform, "bench")
        threads = world.new_thread(platform, member, threads=SEED_THREADS)
    finally:
        platform.close()
    return member, threads[0]


def run(quick: bool, log_dir: Path) -> tuple[Table, list[tuple[str, str, float]]]:
    """Table 2, and the servers' peak RSS for table 5."""
    seconds = QUICK_DURATION if quick else DURATION
    with world.fresh_database("mcp") as url, tempfile.TemporaryDirectory(prefix="bench-mcp-") as data_dir:
        member, thread = seed(url, Path(data_dir))
        env = common.child_env(**world.process_env(url, Path(data_dir)))
        token = token_for(env, member)
        serve_port, bare_port = common.free_port(), common.free_port()
        serve = common.start(
            "serve", [common.FLEETPROMPT, "serve", "--port", str(serve_port), "--no-runner"], env, log_dir
        )
        bare = common.start("bare-mcp", [common.PYTHON, "-m", "bench.bare_mcp", "--port", str(bare_port)], env, log_dir)
        servers: list[Child] = [serve, bare]
        try:
            serve.wait_for_port(serve_port)
            bare.wait_for_port(bare_port)
            servers_cpu = Meters(serve.pid, bare.pid, make_url(url).database or "")
            results = measure(serve_port, bare_port, token, thread, seconds, servers_cpu)
            memory = [
                ("fleetprompt serve (--no-runner)", "benchmark 2, under MCP load", serve.peak_rss_mib()),
                ("bare MCPServer (baseline)", "benchmark 2, under MCP load", bare.peak_rss_mib()),
            ]
        finally:
            for child in servers:
                child.stop()
    return table(results, seconds), memory


@dataclass(frozen=True)
class Meters:
    """What to meter while each server is under load: its process and (FleetPrompt) its database's backends."""

    serve: int
    bare: int
    database: str

    def metered(self, bare: bool, run: Any) -> Load:
        with common.CpuMeter([self.bare if bare else self.serve], None if bare else self.database) as meter:
            result: Load = run()
        result.cpu = meter.used
        return result


def measure(
    serve_port: int, bare_port: int, token: str, thread: uuid.UUID, seconds: float, meters: Meters
) -> dict[str, list[Load]]:
    serve_url, bare_url = f"http://127.0.0.1:{serve_port}/mcp", f"http://127.0.0.1:{bare_port}/mcp"
    results: dict[str, list[Load]] = {"bare": [], "read": [], "reply": []}

    def reply() -> dict[str, Any]:
        return {"thread_id": str(thread), "content": f"bench reply {uuid.uuid4().hex}"}

    for attempt in range(common.RUNS):
        common.log(f"mcp: run {attempt + 1}/{common.RUNS} ({CLIENTS} clients x {seconds:.0f} s x 3 phases)")
        results["bare"].append(meters.metered(True, lambda: load(bare_url, "echo", {"text": "ping"}, None, seconds)))
        results["read"].append(meters.metered(False, lambda: load(serve_url, "forum_list_threads", {}, token, seconds)))
        results["reply"].append(meters.metered(False, lambda: load(serve_url, "forum_reply", reply, token, seconds)))
    return results


def cpu_note(results: dict[str, list[Load]]) -> str:
    def per_call(key: str, part: str) -> str:
        return f"{common.median([r.cpu.get(part, 0.0) / max(r.calls, 1) for r in results[key]]) * 1000:.2f} ms"

    parts = [
        f"{name}: server {per_call(key, 'children')}"
        + (f", PostgreSQL {per_call(key, 'postgres')}" if key != "bare" else "")
        + f", load generator {per_call(key, 'self')}"
        for key, name in (("bare", "bare echo"), ("read", "forum_list_threads"), ("reply", "forum_reply"))
    ]
    return "CPU per call (includes warm-up calls' share): " + "; ".join(parts) + "."


def table(results: dict[str, list[Load]], seconds: float) -> Table:
    out = Table(
        "mcp",
        f"2. MCP tools/call over Streamable HTTP: one uvicorn process, {CLIENTS} clients x {seconds:.0f} s",
        ["server", "tool", "calls/s", "p50", "p99", "p50 vs bare (goal ≤ 1.5x)", "calls/s goal (≥ 300)"],
    )
    bare_p50 = common.median([r.p(50) for r in results["bare"]])
    labels = {
        "bare": ("bare MCPServer (baseline)", "echo (trivial)"),
        "read": ("fleetprompt serve", "forum_list_threads"),
        "reply": ("fleetprompt serve", "forum_reply (no wait)"),
    }
    for key, (server, tool) in labels.items():
        runs = results[key]
        rates = [r.rate for r in runs]
        p50 = common.median([r.p(50) for r in runs])
        vs_bare = common.ratio(p50, bare_p50)
        out.add(
            server,
            tool,
            common.spread(rates, common.rate),
            common.ms(p50),
            common.ms(common.median([r.p(99) for r in runs])),
            "1.00x" if key == "bare" else f"{common.times(vs_bare)} ({common.verdict(vs_bare <= 1.5)})",
            "-" if key == "bare" else common.verdict(common.median(rates) >= 300),
        )
    out.notes += [
        f"{len(labels)} phases per run, one after the other, each {seconds:.0f} s after {WARMUP_CALLS} warm-up calls; "
        "median of 3 runs (range in brackets). The goals apply to forum_list_threads; forum_reply is reported too.",
        "Each call: one stateless 2026-07-28 tools/call POST with a bearer API token (from `fleetprompt token "
        "create`); the bare server has no authentication and no database.",
        "The load generator runs on the same machine (one Python process, httpx), so it shares the cores.",
        cpu_note(results),
    ]
    return out
