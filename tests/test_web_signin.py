"""Web sign-in: the signed session cookie, CSRF, `next`, failed-attempt limits, memberships, sign-out, headers.

Whether a client is signed in is checked through GET /signin (a signed-in person is sent on with a 303, a
signed-out one gets the form), so these tests do not depend on /chat or /audit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import build_platform, make_org, run_concurrently
from starlette.testclient import TestClient
from support.web import PASSWORD, csrf_from, page_csrf, web_client

from fleetprompt.accounts import sign_in as sign_in_module
from fleetprompt.accounts.sign_in import (
    FAILURE_WINDOW,
    MAX_FAILURES_PER_ADDRESS,
    MAX_FAILURES_PER_EMAIL,
    WRONG_CREDENTIALS,
    WrongCredentials,
    sign_in,
)
from fleetprompt.accounts.users import add_user, set_membership
from fleetprompt.errors import InvalidInput, TooManyAttempts
from fleetprompt.models.base import utcnow
from fleetprompt.platform import Platform
from fleetprompt.web.pages import safe_next

COOKIE = "fleetprompt_session"
BASE = "http://127.0.0.1:8000"
FORM_EXPIRED = "did not come from this site"
TOO_MANY = "too many failed sign-ins"


# --- helpers -------------------------------------------------------------------------------------------------


def session_cookie_header(response: httpx.Response) -> str:
    """The response's Set-Cookie for the session (exactly one)."""
    found = [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{COOKIE}=")]
    assert len(found) == 1, response.headers.get_list("set-cookie")
    return found[0]


def cookie_attributes(header: str) -> set[str]:
    """The attribute names and flags of a Set-Cookie header, lower-cased (`httponly`, `samesite=lax`, ...)."""
    return {part.strip().lower() for part in header.split(";")[1:]}


def session_data(client: TestClient) -> dict[str, Any]:
    """What the browser's session cookie holds (Starlette signs the cookie but does not encrypt it)."""
    value = client.cookies.get(COOKIE)
    if value is None or value == "null":
        return {}
    return json.loads(base64.b64decode(value.split(".")[0]))


def replace_session_cookie(client: TestClient, value: str) -> None:
    domains = {cookie.domain for cookie in client.cookies.jar if cookie.name == COOKIE}
    assert len(domains) == 1, domains
    domain = domains.pop()
    client.cookies.delete(COOKIE)
    client.cookies.set(COOKIE, value, domain=domain, path="/")


def is_signed_in(client: TestClient) -> bool:
    """GET /signin: a signed-in person is redirected (303) to `next`, a signed-out one gets the form (200)."""
    response = client.get("/signin", params={"next": "/probe"}, follow_redirects=False)
    if response.status_code == 303:
        assert response.headers["location"] == "/probe"
        return True
    assert response.status_code == 200, response.text
    assert '<form method="post" action="/signin">' in response.text
    return False


def post_sign_in(
    client: TestClient,
    email: str,
    password: str = PASSWORD,
    org: str = "",
    next_path: str = "/audit",
    token: str | None = None,
) -> httpx.Response:
    """POST the sign-in form with the CSRF token of a fresh GET /signin (only while signed out), or `token`."""
    if token is None:
        token = page_csrf(client, "/signin")
    return client.post(
        "/signin",
        data={"email": email, "password": password, "org": org, "csrf_token": token, "next": next_path},
        follow_redirects=False,
    )


def signed_in_as(client: TestClient, email: str, org: str = "") -> str:
    """Sign in through the form; returns the session's (fresh) CSRF token."""
    response = post_sign_in(client, email, org=org)
    assert response.status_code == 303, response.text
    token = session_data(client).get("csrf")
    assert isinstance(token, str)
    return token


def error_message(html: str) -> str:
    found = re.search(r'<p class="flash error" role="alert">(.*?)</p>', html, re.S)
    assert found, html
    return found.group(1)


def browser_host(location: str) -> str | None:
    """Where a browser would go for this Location (browsers drop tabs/newlines and read `\\` as `/`)."""
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/")
    return httpx.URL(BASE + "/signin").join(cleaned).host


# --- successful sign-in and the cookie --------------------------------------------------------------------------


@pytest.mark.parametrize("next_path", ["/audit", "/chat?thread=7&x=%2F", "/audit/some-directive"])
def test_sign_in_redirects_to_safe_next_and_sets_http_only_lax_cookie(platform: Platform, next_path: str) -> None:
    acme = make_org(platform, "acme")
    with web_client(platform) as client:
        assert not is_signed_in(client)
        response = post_sign_in(client, "owner@acme.test", next_path=next_path)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == next_path
        header = session_cookie_header(response)
        attributes = cookie_attributes(header)
        assert "httponly" in attributes
        assert "samesite=lax" in attributes
        assert "secure" not in attributes  # public_url is http://
        assert "path=/" in attributes
        assert f"max-age={12 * 3600}" in attributes
        data = session_data(client)
        assert data["uid"] == str(acme.users["owner"])
        assert data["org"] == "acme"
        assert is_signed_in(client)


def test_sign_in_is_case_insensitive_for_the_email(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        response = post_sign_in(client, "  Owner@ACME.test ")
        assert response.status_code == 303, response.text
        assert is_signed_in(client)


def test_sign_in_starts_a_fresh_session_with_a_new_csrf_token(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        before = page_csrf(client, "/signin")
        assert session_data(client) == {"csrf": before}
        response = post_sign_in(client, "owner@acme.test", token=before)
        assert response.status_code == 303, response.text
        after = session_data(client)
        assert set(after) == {"uid", "org", "csrf"}
        assert after["csrf"] != before  # a token planted before sign-in is worthless after it


def test_cookie_is_secure_when_public_url_is_https(database_url: str, tmp_path: Path) -> None:
    built = build_platform(database_url, tmp_path / "var2", public_url="https://fleet.example.com")
    make_org(built, "acme")
    with web_client(built) as client:
        response = client.get("/signin")
        assert response.status_code == 200
        token = csrf_from(response.text)
        response = client.post(
            "/signin",
            data={"email": "owner@acme.test", "password": PASSWORD, "csrf_token": token, "next": "/audit"},
            headers={"cookie": f"{COOKIE}={client.cookies.get(COOKIE)}"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        attributes = cookie_attributes(session_cookie_header(response))
        assert {"secure", "httponly", "samesite=lax"} <= attributes


# --- next: no open redirect ---------------------------------------------------------------------------------------


OFF_SITE = [
    "//evil.example",
    "//evil.example/chat",
    "https://evil.example",
    "http://evil.example/",
    "/\\evil.example",
    "/\\/evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    "evil.example",
    "",
]


@pytest.mark.parametrize("target", OFF_SITE)
def test_sign_in_never_redirects_off_site(platform: Platform, target: str) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        response = post_sign_in(client, "owner@acme.test", next_path=target)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/chat"
        # Already signed in: GET /signin?next=... is sent on too, and just as safely.
        response = client.get("/signin", params={"next": target}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/chat"


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\n/evil.example", "/%2F/evil.example", "/%5Cevil.example"])
def test_next_with_control_or_encoded_characters_stays_on_this_site(platform: Platform, target: str) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        response = post_sign_in(client, "owner@acme.test", next_path=target)
        assert response.status_code == 303, response.text
        assert browser_host(response.headers["location"]) == "127.0.0.1"


@pytest.mark.parametrize("target", [*OFF_SITE, None])
def test_safe_next_falls_back_to_chat(target: str | None) -> None:
    assert safe_next(target) == "/chat"


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/audit?page=2") == "/audit?page=2"
    assert safe_next("/") == "/"


# --- wrong credentials -------------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_look_the_same(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        wrong = post_sign_in(client, "owner@acme.test", "not-the-password")
        assert wrong.status_code == 401
        assert error_message(wrong.text) == WRONG_CREDENTIALS
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)

        unknown = post_sign_in(client, "nobody@acme.test", PASSWORD)
        assert unknown.status_code == 401
        assert error_message(unknown.text) == WRONG_CREDENTIALS
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)

        # The form comes back with the email filled in (escaped), never the password.
        assert 'value="owner@acme.test"' in wrong.text
        assert "not-the-password" not in wrong.text


def test_sign_in_direct_wrong_credentials(platform: Platform) -> None:
    make_org(platform, "acme")
    for email, password in (("owner@acme.test", "not-the-password"), ("nobody@acme.test", PASSWORD)):
        with pytest.raises(WrongCredentials) as caught:
            sign_in(platform.db, email, password, "192.0.2.1")
        assert caught.value.message == WRONG_CREDENTIALS


# --- CSRF on the sign-in form ----------------------------------------------------------------------------------


def test_sign_in_without_csrf_token_is_refused(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        page_csrf(client, "/signin")  # the session (and its token) exists; the form just does not send it
        response = client.post(
            "/signin",
            data={"email": "owner@acme.test", "password": PASSWORD, "next": "/audit"},
            follow_redirects=False,
        )
        assert response.status_code == 403
        assert FORM_EXPIRED in error_message(response.text)
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)


def test_sign_in_with_wrong_csrf_token_is_refused(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        token = page_csrf(client, "/signin")
        response = post_sign_in(client, "owner@acme.test", token=token[:-1] + ("A" if token[-1] != "A" else "B"))
        assert response.status_code == 403
        assert FORM_EXPIRED in error_message(response.text)
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)


def test_sign_in_with_another_sessions_token_and_no_cookie_is_refused(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        token = page_csrf(client, "/signin")
        client.cookies.clear()  # a cross-site form: the attacker knows a token, but not this browser's session
        response = post_sign_in(client, "owner@acme.test", token=token)
        assert response.status_code == 403
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)


# --- limits on failed attempts -----------------------------------------------------------------------------------


def test_five_failures_lock_the_email_even_for_the_right_password(platform: Platform) -> None:
    acme = make_org(platform, "acme")
    with web_client(platform) as client:
        for _ in range(MAX_FAILURES_PER_EMAIL):
            assert post_sign_in(client, "owner@acme.test", "wrong-password").status_code == 401
        locked = post_sign_in(client, "owner@acme.test", PASSWORD)
        assert locked.status_code == 429, locked.text
        retry_after = int(locked.headers["retry-after"])
        assert 1 <= retry_after <= FAILURE_WINDOW.total_seconds() + 1
        assert error_message(locked.text).startswith(f"{TOO_MANY}; try again in ")
        assert "x-content-type-options" in locked.headers
        assert not is_signed_in(client)

        # The email is locked whatever its case or spacing.
        assert post_sign_in(client, " OWNER@acme.test", PASSWORD).status_code == 429

        # Another email from the same client still signs in.
        other = post_sign_in(client, "admin@acme.test", PASSWORD)
        assert other.status_code == 303, other.text
        assert session_data(client)["uid"] == str(acme.users["admin"])
        assert is_signed_in(client)


def test_successful_sign_in_clears_the_emails_failures(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        for _ in range(MAX_FAILURES_PER_EMAIL - 1):
            assert post_sign_in(client, "owner@acme.test", "wrong-password").status_code == 401
        assert post_sign_in(client, "owner@acme.test", PASSWORD).status_code == 303
        client.cookies.clear()
        # Were the four failures still counted, the second of these would already be refused.
        for attempt in range(MAX_FAILURES_PER_EMAIL):
            response = post_sign_in(client, "owner@acme.test", "wrong-password")
            assert response.status_code == 401, (attempt, response.text)
        assert post_sign_in(client, "owner@acme.test", PASSWORD).status_code == 429


def test_twenty_failures_lock_the_address_not_the_emails(platform: Platform) -> None:
    make_org(platform, "acme")
    db, address = platform.db, "198.51.100.7"
    for i in range(MAX_FAILURES_PER_ADDRESS):
        with pytest.raises(WrongCredentials):
            sign_in(db, f"guess{i}@acme.test", "wrong-password", address)
    with pytest.raises(TooManyAttempts) as caught:
        sign_in(db, "owner@acme.test", PASSWORD, address)
    assert caught.value.message.startswith(TOO_MANY)
    assert 1 <= caught.value.retry_after <= FAILURE_WINDOW.total_seconds() + 1
    # The same person from another address is fine: only the address is locked.
    assert sign_in(db, "owner@acme.test", PASSWORD, "198.51.100.8").email == "owner@acme.test"
    # A success for an email does not clear the address's failures.
    with pytest.raises(TooManyAttempts):
        sign_in(db, "admin@acme.test", PASSWORD, address)


def test_failures_older_than_the_window_no_longer_count(platform: Platform) -> None:
    make_org(platform, "acme")
    db, start = platform.db, utcnow()
    for _ in range(MAX_FAILURES_PER_EMAIL):
        with pytest.raises(WrongCredentials):
            sign_in(db, "owner@acme.test", "wrong-password", "192.0.2.10", now=start)

    with pytest.raises(TooManyAttempts) as caught:
        sign_in(db, "owner@acme.test", PASSWORD, "192.0.2.11", now=start + timedelta(minutes=14))
    assert caught.value.retry_after == 61  # the oldest failure leaves the window in 60 seconds
    assert caught.value.message == f"{TOO_MANY}; try again in 2 minutes"

    with pytest.raises(TooManyAttempts) as caught:
        sign_in(db, "owner@acme.test", PASSWORD, "192.0.2.11", now=start + timedelta(minutes=5))
    assert caught.value.message == f"{TOO_MANY}; try again in 11 minutes"

    later = start + FAILURE_WINDOW + timedelta(seconds=1)
    assert sign_in(db, "owner@acme.test", PASSWORD, "192.0.2.11", now=later).email == "owner@acme.test"


def test_address_failures_older_than_the_window_no_longer_count(platform: Platform) -> None:
    make_org(platform, "acme")
    db, start, address = platform.db, utcnow(), "198.51.100.20"
    for i in range(MAX_FAILURES_PER_ADDRESS):
        with pytest.raises(WrongCredentials):
            sign_in(db, f"guess{i}@acme.test", "wrong-password", address, now=start + timedelta(seconds=i))
    with pytest.raises(TooManyAttempts):
        sign_in(db, "owner@acme.test", PASSWORD, address, now=start + timedelta(minutes=14))
    later = start + FAILURE_WINDOW + timedelta(seconds=MAX_FAILURES_PER_ADDRESS)
    assert sign_in(db, "owner@acme.test", PASSWORD, address, now=later).email == "owner@acme.test"


def test_invalid_input_is_not_a_failed_attempt(platform: Platform) -> None:
    make_org(platform, "acme")
    for _ in range(MAX_FAILURES_PER_EMAIL + 1):
        with pytest.raises(InvalidInput):
            sign_in(platform.db, "owner@acme.test", "", "192.0.2.30")
    assert sign_in(platform.db, "owner@acme.test", PASSWORD, "192.0.2.30").email == "owner@acme.test"


def test_concurrent_wrong_passwords_cannot_exceed_the_limit(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parallel guesses must not each pass the check before any of them is recorded.

    Every password check waits (up to two seconds) for the other guesses to reach theirs, so all of them are
    in flight at once, as they are when an attacker sends them in parallel to a server with many threads.
    """
    make_org(platform, "acme")
    guesses = MAX_FAILURES_PER_EMAIL * 2
    barrier = threading.Barrier(guesses)
    real_verify = sign_in_module.verify_password

    def verify_in_step(password_hash: str, password: str) -> bool:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return real_verify(password_hash, password)

    monkeypatch.setattr(sign_in_module, "verify_password", verify_in_step)

    def guess() -> str:
        try:
            sign_in(platform.db, "owner@acme.test", "wrong-password", "192.0.2.40")
        except WrongCredentials:
            return "checked"
        except TooManyAttempts:
            return "refused"
        return "signed in"

    outcomes = run_concurrently(guesses, guess)
    assert outcomes.count("signed in") == 0
    assert outcomes.count("checked") <= MAX_FAILURES_PER_EMAIL, outcomes


# --- memberships --------------------------------------------------------------------------------------------------


def test_disabling_the_membership_ends_the_session(platform: Platform) -> None:
    acme = make_org(platform, "acme")
    with web_client(platform) as client:
        signed_in_as(client, "member@acme.test")
        assert is_signed_in(client)
        set_membership(platform.db, acme.ref.id, acme.users["member"], status="disabled")
        response = client.get("/signin", follow_redirects=False)
        assert response.status_code == 200
        assert '<form method="post" action="/signin">' in response.text
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)
        # Signing in again is refused too.
        again = post_sign_in(client, "member@acme.test")
        assert again.status_code == 401
        assert error_message(again.text) == "your account has no active membership"
        # Enabled again, the person can sign in.
        set_membership(platform.db, acme.ref.id, acme.users["member"], status="active")
        assert post_sign_in(client, "member@acme.test").status_code == 303
        assert is_signed_in(client)


def test_a_person_in_two_organizations_chooses_one(platform: Platform) -> None:
    make_org(platform, "globex")
    make_org(platform, "acme")
    make_org(platform, "initech")
    # Created in globex first, then added to acme: "first" means first by slug, not first joined.
    add_user(platform.db, "owner@globex.test", "acme", "admin")

    with web_client(platform) as client:
        signed_in_as(client, "owner@globex.test", org="globex")
        assert session_data(client)["org"] == "globex"
        assert is_signed_in(client)

        client.cookies.clear()
        signed_in_as(client, "owner@globex.test")
        assert session_data(client)["org"] == "acme"

        client.cookies.clear()
        refused = post_sign_in(client, "owner@globex.test", org="initech")
        assert refused.status_code == 401
        assert "not a member" in error_message(refused.text)
        assert "initech" in error_message(refused.text)
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)

    who = sign_in(platform.db, "owner@globex.test", PASSWORD, "192.0.2.50", org_slug="globex")
    assert (who.org.slug, who.role.value, who.is_admin) == ("globex", "owner", True)
    who = sign_in(platform.db, "owner@globex.test", PASSWORD, "192.0.2.50")
    assert (who.org.slug, who.role.value) == ("acme", "admin")
    with pytest.raises(WrongCredentials, match="not a member of 'initech'"):
        sign_in(platform.db, "owner@globex.test", PASSWORD, "192.0.2.50", org_slug="initech")


def test_session_for_one_organization_survives_disabling_another(platform: Platform) -> None:
    globex = make_org(platform, "globex")
    make_org(platform, "acme")
    add_user(platform.db, "owner@globex.test", "acme", "admin")
    with web_client(platform) as client:
        signed_in_as(client, "owner@globex.test", org="acme")
        set_membership(platform.db, globex.ref.id, globex.users["owner"], status="disabled")
        assert is_signed_in(client)
        assert session_data(client)["org"] == "acme"


# --- sign-out ------------------------------------------------------------------------------------------------------


def test_sign_out_needs_the_csrf_token_and_ends_the_session(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        token = signed_in_as(client, "owner@acme.test")

        missing = client.post("/signout", follow_redirects=False)
        assert missing.status_code == 403
        assert is_signed_in(client)

        wrong = client.post("/signout", data={"csrf_token": "x" * 43}, follow_redirects=False)
        assert wrong.status_code == 403
        assert is_signed_in(client)

        as_header = client.post("/signout", headers={"x-csrf-token": "x" * 43}, follow_redirects=False)
        assert as_header.status_code == 403
        assert is_signed_in(client)

        response = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == "/signin"
        header = session_cookie_header(response)
        assert header.startswith(f"{COOKIE}=null;")
        assert "expires=thu, 01 jan 1970 00:00:00 gmt" in cookie_attributes(header)
        assert session_data(client) == {}
        assert not is_signed_in(client)


# --- the cookie cannot be forged -------------------------------------------------------------------------------------


def test_tampered_cookie_is_signed_out_not_an_error(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        signed_in_as(client, "owner@acme.test")
        assert is_signed_in(client)  # the untouched cookie is a signed-in session
        value = client.cookies.get(COOKIE)
        assert value is not None
        position = len(value.split(".")[0]) // 2  # inside the signed data
        replacement = "A" if value[position] != "A" else "B"
        replace_session_cookie(client, value[:position] + replacement + value[position + 1 :])

        response = client.get("/signin", follow_redirects=False)
        assert response.status_code == 200
        assert '<form method="post" action="/signin">' in response.text
        assert not is_signed_in(client)


def test_forged_session_data_with_an_old_signature_is_signed_out(platform: Platform) -> None:
    acme = make_org(platform, "acme")
    with web_client(platform) as client:
        signed_in_as(client, "member@acme.test")
        assert is_signed_in(client)
        data = session_data(client)
        forged = base64.b64encode(json.dumps({**data, "uid": str(acme.users["owner"])}).encode()).decode()
        signature = client.cookies.get(COOKIE).split(".", 1)[1]
        replace_session_cookie(client, f"{forged}.{signature}")
        assert not is_signed_in(client)


@pytest.mark.parametrize("value", ["garbage", "null", "a.b.c", "%%%", "x" * 5000])
def test_junk_cookie_is_signed_out_not_an_error(platform: Platform, value: str) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        response = client.get("/signin", headers={"cookie": f"{COOKIE}={value}"}, follow_redirects=False)
        assert response.status_code == 200
        token = csrf_from(response.text)
        response = client.post(
            "/signin",
            data={"email": "owner@acme.test", "password": PASSWORD, "csrf_token": token},
            headers={"cookie": f"{COOKIE}={value}"},
            follow_redirects=False,
        )
        assert response.status_code == 403  # the token belongs to a session this junk cookie is not


# --- headers and page content ----------------------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in csp, csp
    assert "unsafe-inline" not in csp
    assert "http" not in csp  # no remote origin allowed
    assert response.headers.get("x-content-type-options") == "nosniff"


def test_pages_carry_security_headers_and_no_remote_assets(platform: Platform) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        page = client.get("/signin")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert_security_headers(page)
        html = page.text
        assert re.search(r"""<link[^>]+href=["']/static/""", html)
        assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I), html
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.I), "inline script (CSP would block it)"

        assert_security_headers(post_sign_in(client, "owner@acme.test", "wrong-password"))  # 401 page
        assert_security_headers(post_sign_in(client, "owner@acme.test", token="bad"))  # 403 page
        assert_security_headers(post_sign_in(client, "", token=page_csrf(client)))  # 400 page


def test_sign_in_page_escapes_what_it_echoes(platform: Platform) -> None:
    with web_client(platform) as client:
        response = post_sign_in(client, '"><script>alert(1)</script>', "wrong-password", org="<b>x</b>")
        assert response.status_code == 401
        assert "<script>alert(1)" not in response.text
        assert "<b>x</b>" not in response.text
        assert "&lt;script&gt;" in response.text


# --- invalid input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("", PASSWORD),
        ("   ", PASSWORD),
        ("owner@acme.test", ""),
        ("owner@acme.test", "p" * 2000),
        ("a" * 400, PASSWORD),
    ],
)
def test_invalid_input_is_a_400_page(platform: Platform, email: str, password: str) -> None:
    make_org(platform, "acme")
    with web_client(platform) as client:
        response = post_sign_in(client, email, password)
        assert response.status_code == 400, response.text
        assert error_message(response.text) == "enter your email and password"
        assert "uid" not in session_data(client)
        assert not is_signed_in(client)


def test_form_without_fields_is_a_400_page(platform: Platform) -> None:
    with web_client(platform) as client:
        token = page_csrf(client, "/signin")
        response = client.post("/signin", data={"csrf_token": token}, follow_redirects=False)
        assert response.status_code == 400
        assert error_message(response.text) == "enter your email and password"


def test_long_password_is_rejected_before_hashing(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    make_org(platform, "acme")

    def never(*_args: object) -> bool:
        raise AssertionError("a 2000-character password must not reach Argon2")

    monkeypatch.setattr(sign_in_module, "verify_password", never)
    with pytest.raises(InvalidInput):
        sign_in(platform.db, "owner@acme.test", "p" * 2000, "192.0.2.60")
