"""`fleetprompt mcp`: real MCP sessions over stdio against a real runner, refused tokens, and a clean stdout."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import PLUGIN, TESTS_DIR, Org, build_platform, make_org
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from sqlmodel import select

from fleetprompt.accounts.tokens import create_token, hash_token, revoke_token
from fleetprompt.models.tenancy import ApiToken
from fleetprompt.platform import Platform
from fleetprompt.tools import tools

pytestmark = pytest.mark.slow

REPO = TESTS_DIR.parent
MCP = [sys.executable, "-m", "fleetprompt.cli", "mcp"]
SESSION_SECONDS = 90  # a hung server or client fails the test instead of the whole run


def cli_env(database_url: str, data_dir: Path, token: str | None = None) -> dict[str, str]:
    """What an MCP client configuration would set: the installation's settings and the token, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update(
        FLEETPROMPT_DATABASE_URL=database_url,
        FLEETPROMPT_DATA_DIR=str(data_dir),
        FLEETPROMPT_PLUGINS=PLUGIN,
        PYTHONPATH=str(TESTS_DIR),
    )
    if token is not None:
        env["FLEETPROMPT_TOKEN"] = token
    return env


@asynccontextmanager
async def mcp_session(env: dict[str, str], errlog: Path, *extra: str) -> AsyncIterator[Client]:
    """The SDK's own stdio client starting `fleetprompt mcp`; the server's stderr goes to `errlog`."""
    params = StdioServerParameters(command=MCP[0], args=[*MCP[1:], *extra], env=env, cwd=REPO)
    with errlog.open("w") as stderr:
        async with Client(stdio_client(params, errlog=stderr), read_timeout_seconds=60) as client:
            yield client


def run_session(body: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(SESSION_SECONDS):
            await body()

    try:
        anyio.run(bounded)
    except BaseExceptionGroup as group:  # the transport's task groups wrap a failed assertion: show it plainly
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if leaf is group:
            raise
        raise leaf from None


class ProgressLog:
    def __init__(self) -> None:
        self.messages: list[str | None] = []

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.messages.append(message)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetprompt.cli", "worker", "--workers", "1"],
            env=env,
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def token_id(platform: Platform, token: str) -> uuid.UUID:
    with platform.db.reading() as session:
        return session.exec(select(ApiToken.id).where(ApiToken.token_hash == hash_token(token))).one()


def setup(database_url: str, tmp_path: Path) -> tuple[Platform, Org, Path]:
    data_dir = tmp_path / "var"
    platform = build_platform(database_url, data_dir, queue="auto")
    return platform, make_org(platform, "acme"), data_dir


def finished(result: Any) -> dict[str, Any]:
    """The structured receipt of a directive tool call that waited for its outcome: success."""
    assert not result.is_error, result.content
    receipt = result.structured_content
    assert receipt is not None
    assert (receipt["status"], receipt["finished"], receipt["error"]) == ("succeeded", True, None), receipt
    assert json.loads(result.content[0].text.split("\n", 1)[1]) == receipt  # the text rendering carries the same
    return receipt


# ---------------------------------------------------------------------------------------------- a real session


def test_stdio_session_files_directives_that_a_separate_worker_runs(database_url: str, tmp_path: Path) -> None:
    platform, org, data_dir = setup(database_url, tmp_path)
    admin_id = org.users["admin"]
    env = cli_env(database_url, data_dir, create_token(platform.db, "acme", "admin@acme.test", "desktop"))
    worker = start_worker(cli_env(database_url, data_dir), tmp_path / "worker.log")
    receipts: dict[str, dict[str, Any]] = {}
    progress = ProgressLog()

    async def session() -> None:
        async with mcp_session(env, tmp_path / "mcp.log") as client:
            listed = await client.list_tools()
            assert sorted(t.name for t in listed.tools) == sorted(tools.names())
            assert len(listed.tools) == 26

            category = await client.call_tool(
                "forum_create_category",
                {"slug": "general", "name": "General", "wait_seconds": 20},
                progress_callback=progress,
            )
            receipts["category"] = finished(category)
            category_id = receipts["category"]["result"]["category_id"]

            thread = await client.call_tool(
                "forum_create_thread",
                {"category_id": category_id, "title": "Hello from stdio", "content": "First!", "wait_seconds": 20},
            )
            receipts["thread"] = finished(thread)
            thread_id = receipts["thread"]["result"]["thread_id"]

            read = await client.call_tool("forum_get_thread", {"thread_id": thread_id})
            assert not read.is_error, read.content
            detail = read.structured_content
            assert detail is not None
            assert detail["thread"]["id"] == thread_id and detail["thread"]["title"] == "Hello from stdio"
            assert (detail["thread"]["author_type"], detail["thread"]["author_id"]) == ("agent", str(admin_id))
            assert detail["category"]["id"] == category_id and detail["category"]["slug"] == "general"
            assert [p["content"] for p in detail["posts"]] == ["First!"]

            # The directive resource tells the same story over the same session.
            resource = await client.read_resource(f"fleetprompt://directives/{receipts['thread']['directive_id']}")
            view = json.loads(resource.contents[0].text)
            assert (view["type"], view["status"], view["requested_via"]) == (
                "forum.thread.create",
                "succeeded",
                "mcp-stdio",
            )

    try:
        run_session(session)
        assert worker.poll() is None, "the worker died during the session"
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker_code = worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
            raise
        platform.close()
    assert worker_code == 0, (tmp_path / "worker.log").read_text()

    # The directives were filed by this process's agent, for the admin, through stdio; the worker ran them.
    for key, name in (("category", "forum.category.create"), ("thread", "forum.thread.create")):
        directive = platform.ledger.get("acme", receipts[key]["directive_id"])
        assert directive.name == name and directive.status == "succeeded"
        assert directive.requested_by_type == "agent"
        assert directive.requested_via == "mcp-stdio"
        assert directive.requested_by == str(admin_id)
    assert progress.messages and progress.messages[-1] == "forum.category.create: succeeded", progress.messages
    log = (tmp_path / "mcp.log").read_text()
    assert "FleetPrompt MCP on stdio for organization 'acme'" in log and "runner: external" in log
    assert "Traceback" not in log


def test_stdio_with_embedded_runner_needs_no_worker(database_url: str, tmp_path: Path) -> None:
    platform, _, data_dir = setup(database_url, tmp_path)
    env = cli_env(database_url, data_dir, create_token(platform.db, "acme", "owner@acme.test"))
    receipts: list[dict[str, Any]] = []

    async def session() -> None:
        async with mcp_session(env, tmp_path / "mcp.log", "--runner", "--workers", "1") as client:
            result = await client.call_tool(
                "forum_create_category", {"slug": "embedded", "name": "Embedded", "wait_seconds": 20}
            )
            receipts.append(finished(result))

    try:
        run_session(session)
        directive = platform.ledger.get("acme", receipts[0]["directive_id"])
        assert directive.status == "succeeded" and directive.requested_via == "mcp-stdio"
        assert platform.ledger.counts("acme") == {"succeeded": 1}
    finally:
        platform.close()
    log = (tmp_path / "mcp.log").read_text()
    assert "runner: embedded" in log and "Traceback" not in log


def test_tool_errors_over_stdio_are_tool_results_and_file_nothing(database_url: str, tmp_path: Path) -> None:
    platform, _, data_dir = setup(database_url, tmp_path)
    token = create_token(platform.db, "acme", "member@acme.test")
    env = cli_env(database_url, data_dir, token)
    outcome: dict[str, Any] = {}

    async def session() -> None:
        async with mcp_session(env, tmp_path / "mcp.log") as client:
            refused = await client.call_tool(
                "forum_create_category", {"slug": "members-only", "name": "Nope", "wait_seconds": 5}
            )
            outcome["refused"] = refused
            # The session survives the refusal: the same member may still read...
            outcome["listed"] = await client.call_tool("forum_list_categories", {})
            # ...until the token is revoked: every call checks it again.
            revoke_token(platform.db, token_id(platform, token))
            outcome["after_revocation"] = await client.call_tool("forum_list_categories", {})

    try:
        run_session(session)
        refused, listed = outcome["refused"], outcome["listed"]
        assert refused.is_error is True
        assert refused.structured_content is None
        text = refused.content[0].text
        assert "forbidden: forum_create_category needs the admin role; you are member" in text, text
        assert not listed.is_error and listed.structured_content == {"items": []}
        revoked = outcome["after_revocation"]
        assert revoked.is_error is True and "invalid_token: API token has been revoked" in revoked.content[0].text
        assert platform.ledger.counts("acme") == {}
        assert platform.ledger.list("acme")[0] == []
    finally:
        platform.close()


# ---------------------------------------------------------------------------------------------- refused tokens


def _expired(platform: Platform) -> str:
    return create_token(platform.db, "acme", "owner@acme.test", expires_at=datetime.now(UTC) - timedelta(minutes=5))


def _revoked(platform: Platform) -> str:
    token = create_token(platform.db, "acme", "owner@acme.test")
    revoke_token(platform.db, token_id(platform, token))
    return token


BAD_TOKENS: dict[str, tuple[Callable[[Platform], str | None], str]] = {
    "missing": (lambda _: None, "FLEETPROMPT_TOKEN is not set"),
    "blank": (lambda _: "   ", "FLEETPROMPT_TOKEN is not set"),
    "malformed": (lambda _: "abc", "malformed"),
    "unknown": (lambda _: "fp_" + secrets.token_urlsafe(30)[:40], "unknown API token"),
    "revoked": (_revoked, "revoked"),
    "expired": (_expired, "expired"),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_a_bad_token_stops_start_up_with_one_line_and_an_empty_stdout(
    case: str, database_url: str, tmp_path: Path
) -> None:
    platform, _, data_dir = setup(database_url, tmp_path)
    make_token, reason = BAD_TOKENS[case]
    try:
        token = make_token(platform)
    finally:
        platform.close()
    err = refused_start_up(cli_env(database_url, data_dir, token), reason)
    if token and token.strip():
        assert token not in err  # the reason, never the token


def refused_start_up(env: dict[str, str], reason: str, *extra: str) -> str:
    """`fleetprompt mcp` must stop at once: non-zero exit, nothing on stdout, one `error:` line on stderr."""
    started = time.monotonic()
    done = subprocess.run([*MCP, *extra], env=env, cwd=REPO, input=b"", capture_output=True, timeout=30)
    assert time.monotonic() - started < 15
    err = done.stderr.decode()
    assert done.returncode != 0, err
    assert done.stdout == b""
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and "Traceback" not in err, err
    assert lines[0].startswith("error: ") and reason in lines[0], err
    return err


# ---------------------------------------------------------------------------------------------- stdout hygiene


def _read_lines(stream: Any, into: queue.Queue[bytes]) -> None:
    for line in stream:
        into.put(line)
    into.put(b"")


@pytest.mark.parametrize("runner", [False, True], ids=["external-runner", "embedded-runner"])
def test_stdout_carries_json_rpc_only_and_closing_stdin_ends_the_server(
    runner: bool, database_url: str, tmp_path: Path
) -> None:
    """A legacy (2025-11-25) client by hand: every stdout line is a JSON-RPC message, whatever runs meanwhile."""
    platform, _, data_dir = setup(database_url, tmp_path)
    env = cli_env(database_url, data_dir, create_token(platform.db, "acme", "owner@acme.test"))
    platform.close()
    with (tmp_path / "mcp.log").open("wb") as stderr:
        process = subprocess.Popen(
            [*MCP, *(["--runner"] if runner else [])],
            env=env,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert process.stdin is not None and process.stdout is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True).start()
    requests = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "hand-written", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {
                "name": "forum_create_category",
                "arguments": {"slug": "hygiene", "name": "Hygiene", "wait_seconds": 20 if runner else 0.5},
                "_meta": {"progressToken": "p-1"},
            },
        },
    ]
    seen: list[bytes] = []
    responses: dict[int, dict[str, Any]] = {}
    try:
        process.stdin.write(b"".join(json.dumps(r).encode() + b"\n" for r in requests))
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while len(responses) < 3:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line, f"stdout closed early; stderr: {(tmp_path / 'mcp.log').read_text()}"
            seen.append(line)
            message = json.loads(line)
            if "id" in message and ("result" in message or "error" in message):
                responses[message["id"]] = message
        process.stdin.close()
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=5)) != b"":
        seen.append(line)

    for line in seen:
        assert line.endswith(b"\n")
        message = json.loads(line)
        assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", line
    initialized = responses[1]["result"]
    assert initialized["protocolVersion"] == "2025-11-25"
    assert initialized["serverInfo"]["name"] == "fleetprompt"
    assert sorted(t["name"] for t in responses[2]["result"]["tools"]) == sorted(tools.names())
    called = responses[3]["result"]
    assert called.get("isError") is not True, called
    expected = "succeeded" if runner else "requested"  # without a runner nothing runs the directive
    assert called["structuredContent"]["status"] == expected
    progress = [json.loads(line) for line in seen if b'"notifications/progress"' in line]
    assert progress and all(p["params"]["progressToken"] == "p-1" for p in progress)
    assert code == 0
    log = (tmp_path / "mcp.log").read_text()
    assert "FleetPrompt MCP on stdio" in log and "Traceback" not in log


# ---------------------------------------------------------------------------------------------- runner options


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("queue_setting", "extra", "reason"),
    [
        # `fleetprompt worker` refuses both; an embedded runner must too, before it claims to be running.
        ("auto", ("--runner", "--workers", "0"), "--workers"),
        ("memory", ("--runner",), "FLEETPROMPT_QUEUE=memory"),
    ],
    ids=["no-runner-threads", "memory-queue"],
)
def test_an_embedded_runner_that_cannot_run_stops_start_up_with_one_line(
    queue_setting: str, extra: tuple[str, ...], reason: str, database_url: str, tmp_path: Path
) -> None:
    platform, _, data_dir = setup(database_url, tmp_path)
    try:
        env = cli_env(database_url, data_dir, create_token(platform.db, "acme", "owner@acme.test"))
    finally:
        platform.close()
    env["FLEETPROMPT_QUEUE"] = queue_setting
    refused_start_up(env, reason, *extra)
