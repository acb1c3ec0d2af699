"""Helpers for web tests: a client on the real app, signing in through the real form, the page's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.testclient import TestClient

from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

PASSWORD = "password-123"  # what tests/conftest.make_org gives every user
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


@contextmanager
def web_client(platform: Platform) -> Iterator[TestClient]:
    """The whole app (sessions, pages, /api/chat, /mcp) without an embedded runner: tests use the memory queue."""
    with TestClient(create_app(platform, run_runner=False), base_url="http://127.0.0.1:8000") as client:
        yield client


def csrf_from(html: str) -> str:
    found = _CSRF_META.search(html)
    assert found, "page carries no CSRF token"
    return found.group(1)


def page_csrf(client: TestClient, path: str = "/signin") -> str:
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 200, response.text
    return csrf_from(response.text)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, org: str | None = None) -> str:
    """Sign in through the form; returns the session's CSRF token for the requests that follow."""
    token = page_csrf(client, "/signin")
    response = client.post(
        "/signin",
        data={"email": email, "password": password, "org": org or "", "csrf_token": token, "next": "/audit"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return page_csrf(client, "/audit")
