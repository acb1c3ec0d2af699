"""`fleetprompt serve`: /healthz, its embedded runner, and a clean stop on Ctrl-C (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import PLUGIN, TESTS_DIR, build_platform, make_org, make_settings
from starlette.testclient import TestClient
from support.serving import free_port

from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

pytestmark = pytest.mark.slow


def serve(database_url: str, data_dir: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETPROMPT_")}
    env.update(
        FLEETPROMPT_DATABASE_URL=database_url,
        FLEETPROMPT_DATA_DIR=str(data_dir),
        FLEETPROMPT_PLUGINS=PLUGIN,
        PYTHONPATH=str(TESTS_DIR),
    )
    return subprocess.Popen(
        [sys.executable, "-m", "fleetprompt.cli", "serve", "--port", str(port), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(data_dir.parent / "serve.log").open("wb"),
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited early"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("serve did not answer")


def test_serve_answers_health_runs_directives_and_stops_cleanly(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    platform = build_platform(database_url, data_dir, queue="auto")
    org = make_org(platform, "acme")
    port = free_port()
    process = serve(database_url, data_dir, port)
    try:
        response = wait_healthy(port, process)
        body = response.json()
        assert response.status_code == 200
        assert body["status"] == "ok" and body["runner"] == "embedded"
        assert body["database"] == {"backend": platform.db.dialect, "ok": True}
        assert body["queue"]["ok"] is True and body["queue"]["pending"] >= 0
        directive = platform.ledger.file(org.ctx(), "test.effect", {"label": "served"}).directive
        deadline = time.monotonic() + 30
        while platform.ledger.get("acme", directive.id).status != "succeeded":
            assert time.monotonic() < deadline, "the embedded runner did not run the directive"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=20)
        platform.close()
    assert code == 0
    assert not Path(f"/proc/{process.pid}").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_serve_without_runner_leaves_work_to_workers(database_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    platform = build_platform(database_url, data_dir, queue="auto")
    org = make_org(platform, "acme")
    port = free_port()
    process = serve(database_url, data_dir, port, "--no-runner")
    try:
        assert wait_healthy(port, process).json()["runner"] == "external"
        directive = platform.ledger.file(org.ctx(), "test.effect", {"label": "queued"}).directive
        time.sleep(1.5)
        assert platform.ledger.get("acme", directive.id).status == "requested"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        platform.close()


def test_health_reports_an_unreachable_database_as_503(tmp_path: Path) -> None:
    settings = make_settings("postgresql+psycopg://nobody@127.0.0.1:1/nowhere", tmp_path / "var")
    app = create_app(Platform.build(settings), run_runner=False)
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == {"backend": "postgresql", "ok": False, "error": "database unreachable"}
