"""The signed-in person: a signed, HttpOnly, SameSite session cookie, and CSRF tokens for every state change."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.accounts.sign_in import SignedIn, session_person
from fleetprompt.errors import Forbidden
from fleetprompt.platform import Platform

SESSION_COOKIE = "fleetprompt_session"
SESSION_MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def session_middleware(platform: Platform) -> Middleware:
    """Starlette's signed-cookie sessions, keyed by a key derived from FLEETPROMPT_SECRET_KEY."""
    secret = platform.settings.resolved_secret_key()
    key = hashlib.sha256(b"fleetprompt-session:" + secret.encode()).hexdigest()
    return Middleware(
        SessionMiddleware,
        secret_key=key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,
        same_site="lax",
        https_only=platform.settings.public_url.startswith("https://"),
    )


@dataclass(frozen=True)
class Person:
    """A signed-in person acting in the web UI, as their membership is now."""

    who: SignedIn

    @property
    def user_id(self) -> uuid.UUID:
        return self.who.user_id

    @property
    def is_admin(self) -> bool:
        return self.who.is_admin

    def context(
        self, via: str = "web", correlation_id: str | None = None, causation_id: str | None = None
    ) -> RequestContext:
        """The person acting directly (approving, canceling): never an agent."""
        return self.request_context(Actor.user(self.user_id, via), correlation_id, causation_id)

    def agent_context(
        self, via: str, correlation_id: str | None = None, causation_id: str | None = None
    ) -> RequestContext:
        """An agent (the chat) acting for this person: it files requests, it never approves them."""
        return self.request_context(Actor.agent(self.user_id, via), correlation_id, causation_id)

    def request_context(self, actor: Actor, correlation_id: str | None, causation_id: str | None) -> RequestContext:
        if correlation_id is None:
            return RequestContext(org=self.who.org, actor=actor, causation_id=causation_id)
        return RequestContext(org=self.who.org, actor=actor, correlation_id=correlation_id, causation_id=causation_id)


def csrf_token(request: Request) -> str:
    """This session's CSRF token (created on first use, also before sign-in, for the sign-in form itself)."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def csrf_ok(request: Request, submitted: str | None) -> bool:
    expected = request.session.get("csrf")
    return isinstance(expected, str) and isinstance(submitted, str) and hmac.compare_digest(expected, submitted)


async def check_csrf(request: Request, form_value: str | None = None) -> None:
    """Refuse a state-changing request whose token (form field or X-CSRF-Token header) is not this session's."""
    submitted = form_value if form_value is not None else request.headers.get(CSRF_HEADER)
    if not csrf_ok(request, submitted):
        raise Forbidden("the form expired or did not come from this site (CSRF check failed); reload and try again")


def start_session(request: Request, who: SignedIn) -> None:
    """A new session for a new sign-in: fresh CSRF token, so one planted before sign-in is worthless after."""
    request.session.clear()
    request.session.update({"uid": str(who.user_id), "org": who.org.slug, "csrf": secrets.token_urlsafe(32)})


def end_session(request: Request) -> None:
    request.session.clear()


async def current_person(request: Request) -> Person | None:
    """The person this request's session belongs to, or None (signed out, removed, or disabled since)."""
    cached = request.scope.get("fleetprompt.person", False)
    if cached is not False:
        return cached
    person = None
    uid, org = request.session.get("uid"), request.session.get("org")
    if isinstance(uid, str) and isinstance(org, str):
        try:
            user_id = uuid.UUID(uid)
        except ValueError:
            user_id = None
        if user_id is not None:
            platform: Platform = request.app.state.platform
            who = await run_in_threadpool(session_person, platform.db, user_id, org)
            person = Person(who) if who is not None else None
        if person is None:
            request.session.clear()
    request.scope["fleetprompt.person"] = person
    return person
