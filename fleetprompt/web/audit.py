"""The /audit pages: find a subject, its merged timeline (signals and directives), a directive's detail with
approve / reject / cancel / rerun, and signal replay for admins. Server-rendered, readable without JavaScript.

Data comes from the tool registry (the same reads MCP and chat use); lifecycle actions go to the ledger as the
signed-in person acting directly (never as an agent), and the ledger checks their role itself.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fleetprompt.errors import FleetPromptError, Forbidden, InvalidInput, NotFound
from fleetprompt.ledger import SignalFilter
from fleetprompt.platform import Platform
from fleetprompt.tools import call_tool
from fleetprompt.web.pages import render, to_sign_in
from fleetprompt.web.session import CSRF_FIELD, Person, check_csrf, current_person

# Subject types of the audit timeline, with the short names people type (and the find form offers).
SUBJECT_TYPES = {
    "forum.thread": "thread",
    "forum.post": "post",
    "forum.category": "category",
    "package": "package",
    "directive": "directive",
}
ALIASES = {short: full for full, short in SUBJECT_TYPES.items()}
FIND_TYPES = [
    ("thread", "Forum thread"),
    ("post", "Forum post"),
    ("category", "Forum category"),
    ("installation", "Package installation (id or package slug)"),
    ("package", "Package (slug)"),
    ("directive", "Directive"),
]
STATUSES = ["awaiting_approval", "requested", "running", "succeeded", "failed", "canceled"]
TERMINAL = {"succeeded", "failed", "canceled"}
ACTIONS = ("approve", "reject", "cancel", "rerun")
DONE_MESSAGES = {
    "approved": "Approved: the directive is queued to run.",
    "rejected": "Rejected: the directive will not run.",
    "canceled": "Canceled: the directive will not run.",
    "rerun": "Rerun requested: the directive runs again.",
    "rerun_waiting": "Rerun requested: it waits for approval first.",
    "rerun_already": "This rerun was already requested (the form was sent twice).",
}
HTTP_STATUS = {
    "not_found": 404,
    "forbidden": 403,
    "invalid_input": 400,
    "invalid_state": 409,
    "conflict": 409,
    "idempotency_key_reused": 409,
    "too_many_attempts": 429,
    "internal_error": 500,
}
MAX_REASON = 500
RERUN_KEY = re.compile(r"^web-rerun:[A-Za-z0-9_-]{8,64}$")
RECENT = 20
TIMELINE_PAGE = 100
MAX_TIMELINE_PAGE = 500


def status_for(exc: FleetPromptError) -> int:
    return HTTP_STATUS.get(exc.code, 400)


def _platform(request: Request) -> Platform:
    return request.app.state.platform


async def _tool(request: Request, person: Person, name: str, **arguments: Any) -> Any:
    """A registry tool as this person (tool calls are synchronous: they run on the thread pool)."""
    ledger = _platform(request).ledger
    return await run_in_threadpool(call_tool, ledger, person.context(), name, arguments)


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _error_page(request: Request, person: Person | None, exc: FleetPromptError, title: str = "") -> Response:
    status = status_for(exc)
    heading = title or {404: "Not found", 403: "Not allowed", 409: "Not possible now"}.get(status, "Something is wrong")
    return render(request, "audit_error.html", person, status, heading=heading, flash=exc.message, flash_kind="error")


# ---------------------------------------------------------------- presentation helpers


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """JSON for a <pre>: the page escapes it (forum text is untrusted)."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def actor_label(kind: str | None, actor_id: str | None, person: Person, via: str | None = None) -> str:
    """`user <id> (you)`, `agent for <id> via mcp`, `system:runner`."""
    if not actor_id:
        return kind or "unknown"
    you = " (you)" if actor_id == str(person.user_id) else ""
    if kind == "agent":
        text = f"agent for user {actor_id}{you}"
    elif kind == "user":
        text = f"user {actor_id}{you}"
    else:
        text = actor_id
    return f"{text} via {via}" if via else text


def timeline_href(subject_type: str, subject_id: str) -> str:
    if subject_type == "directive":
        return directive_href(subject_id)
    return f"/audit/{quote(subject_type, safe='')}/{quote(subject_id, safe='')}"


def directive_href(directive_id: uuid.UUID | str) -> str:
    return f"/audit/directives/{quote(str(directive_id), safe='')}"


def chat_href(causation_id: str | None) -> str | None:
    """`chat:{conversation_id}:{message_id}` -> the message in its conversation."""
    if not causation_id or not causation_id.startswith("chat:"):
        return None
    conversation, sep, message = causation_id.removeprefix("chat:").partition(":")
    if not sep or not conversation or not message:
        return None
    return f"/chat/{quote(conversation, safe='')}#m-{quote(message, safe='')}"


def link_for(value: str | None, directive_ids: set[str]) -> dict[str, Any] | None:
    """A correlation or causation id, linked when it names a chat message or a directive we know of."""
    if not value:
        return None
    href = chat_href(value)
    if href is not None:
        return {"text": value, "href": href, "label": "caused by chat message"}
    if value in directive_ids:
        return {"text": value, "href": directive_href(value), "label": "directive"}
    return {"text": value, "href": None, "label": None}


def subject_label(subject_type: str) -> str:
    return SUBJECT_TYPES.get(subject_type, subject_type)


def timeline_rows(entries: list[Any], person: Person, known: set[str] | None = None) -> list[dict[str, Any]]:
    directive_ids = {str(e.id) for e in entries if e.kind == "directive"} | (known or set())
    rows = []
    for e in entries:
        rows.append(
            {
                "kind": e.kind,
                "id": str(e.id),
                "at": fmt_time(e.at),
                "at_iso": e.at.isoformat(),
                "name": e.name,
                "status": e.status,
                "href": directive_href(e.id) if e.kind == "directive" else None,
                "actor": actor_label(e.actor_type, e.actor_id, person),
                "correlation": e.correlation_id,
                "causation": link_for(e.causation_id, directive_ids),
                "payload": pretty(e.payload),
                "result": pretty(e.result),
                "error": e.error,
            }
        )
    return rows


def directive_row(d: Any, person: Person) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "href": directive_href(d.id),
        "type": d.type,
        "status": d.status,
        "subject": _subject(d),
        "actor": actor_label(d.requested_by_type, d.requested_by, person, d.requested_via),
        "created": fmt_time(d.created_at),
        "created_iso": d.created_at.isoformat(),
    }


def _subject(d: Any) -> dict[str, str] | None:
    if d.subject is None:
        return None
    return {
        "type": d.subject.type,
        "label": subject_label(d.subject.type),
        "id": d.subject.id,
        "href": timeline_href(d.subject.type, d.subject.id),
    }


def _page_href(path: str, **params: str | None) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def _page_limit(request: Request) -> tuple[int, str | None]:
    """The timeline's page size: `?limit=` (1-500) when given, kept in the next-page link."""
    raw = request.query_params.get("limit")
    if raw and raw.isdigit() and 1 <= int(raw) <= MAX_TIMELINE_PAGE:
        return int(raw), raw
    return TIMELINE_PAGE, None


def _replayed_flash(request: Request) -> tuple[str | None, str | None]:
    raw = request.query_params.get("replayed")
    if raw is not None and raw.isdigit() and len(raw) < 10:
        count = int(raw)
        return f"Replayed fanout of {count} signal{'' if count == 1 else 's'}.", "ok"
    return None, None


# ---------------------------------------------------------------- GET /audit


async def audit_index(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return to_sign_in(request)
    params = request.query_params
    find_type, find_id = (params.get("type") or "").strip(), (params.get("id") or "").strip()
    if "id" in params:
        found = await _find(request, person, find_type, find_id)
        if isinstance(found, RedirectResponse):
            return found
        flash, flash_kind, status = found.message, "error", status_for(found)
    else:
        flash, flash_kind, status = None, None, 200
        if replayed := _replayed_flash(request)[0]:
            flash, flash_kind = replayed, "ok"

    query = (params.get("q") or "").strip()
    hits: list[dict[str, Any]] | None = None
    if query:
        try:
            results = await _tool(request, person, "forum_search", query=query[:200], limit=20)
            hits = [_hit(h) for h in results.hits]
        except FleetPromptError as exc:
            flash, flash_kind, status = exc.message, "error", status_for(exc)

    status_filter = params.get("status") or None
    cursor = params.get("before") or None
    try:
        waiting = await _tool(request, person, "directive_list", status="awaiting_approval", limit=50)
        recent = await _tool(request, person, "directive_list", status=status_filter, cursor=cursor, limit=RECENT)
    except FleetPromptError as exc:
        return _error_page(request, person, exc)
    older = _page_href("/audit", status=status_filter, before=recent.next_cursor) if recent.next_cursor else None
    return render(
        request,
        "audit_index.html",
        person,
        status,
        flash=flash,
        flash_kind=flash_kind,
        find_types=FIND_TYPES,
        find_type=find_type or "thread",
        find_id=find_id,
        query=query,
        hits=hits,
        waiting=[directive_row(d, person) for d in waiting.items],
        waiting_more=waiting.next_cursor is not None,
        recent=[directive_row(d, person) for d in recent.items],
        statuses=STATUSES,
        status_filter=status_filter,
        older=older,
    )


def _hit(hit: Any) -> dict[str, Any]:
    thread_href = timeline_href("forum.thread", str(hit.thread_id))
    return {
        "kind": hit.kind,
        "title": hit.title,
        "snippet": hit.snippet,
        "status": hit.status,
        "thread_href": thread_href,
        "href": timeline_href("forum.post", str(hit.post_id)) if hit.post_id else thread_href,
    }


async def _find(request: Request, person: Person, find_type: str, find_id: str) -> RedirectResponse | FleetPromptError:
    """The find form: a redirect to the subject's page, or the error to show on the index."""
    if not find_id:
        return InvalidInput("enter the id of the thread, post, category, installation, package or directive")
    if find_type == "directive":
        return RedirectResponse(directive_href(find_id), status_code=303)
    if find_type == "installation":
        try:
            slug = await _installation_slug(request, person, find_id)
        except FleetPromptError as exc:
            return exc
        return RedirectResponse(timeline_href("package", slug), status_code=303)
    subject_type = ALIASES.get(find_type, find_type)
    if subject_type not in SUBJECT_TYPES:
        return InvalidInput(f"unknown subject type {find_type!r}: choose one of the list")
    return RedirectResponse(timeline_href(subject_type, find_id), status_code=303)


async def _installation_slug(request: Request, person: Person, value: str) -> str:
    """An installation's history is its package's history in this organization (by installation id or slug)."""
    installations = await _tool(request, person, "marketplace_list_installations")
    for item in installations.items:
        if value in (str(item.id), item.package_slug):
            return str(item.package_slug)
    raise NotFound(f"no installation {value!r} in this organization")


# ---------------------------------------------------------------- GET /audit/{subject_type}/{subject_id}


async def timeline_page(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return to_sign_in(request)
    raw_type, subject_id = request.path_params["subject_type"], request.path_params["subject_id"]
    if raw_type == "installation":
        try:
            slug = await _installation_slug(request, person, subject_id)
        except FleetPromptError as exc:
            return _error_page(request, person, exc)
        return RedirectResponse(timeline_href("package", slug), status_code=303)
    subject_type = ALIASES.get(raw_type, raw_type)
    if subject_type not in SUBJECT_TYPES:
        return _error_page(request, person, NotFound(f"unknown subject type {raw_type!r}"))
    if subject_type != raw_type:
        query = f"?{request.url.query}" if request.url.query else ""
        return RedirectResponse(timeline_href(subject_type, subject_id) + query, status_code=303)
    cursor = request.query_params.get("cursor") or None
    limit, kept_limit = _page_limit(request)
    try:
        page = await _tool(
            request,
            person,
            "audit_timeline",
            subject_type=subject_type,
            subject_id=subject_id,
            cursor=cursor,
            limit=limit,
        )
    except FleetPromptError as exc:
        return _error_page(request, person, exc)
    path = timeline_href(subject_type, subject_id)
    flash, flash_kind = _replayed_flash(request)
    return render(
        request,
        "audit_timeline.html",
        person,
        flash=flash,
        flash_kind=flash_kind,
        subject={"type": subject_type, "label": subject_label(subject_type), "id": subject_id, "href": path},
        entries=timeline_rows(page.entries, person),
        next_href=_page_href(path, cursor=page.next_cursor, limit=kept_limit) if page.next_cursor else None,
        first_href=_page_href(path, limit=kept_limit) if cursor else None,
    )


# ---------------------------------------------------------------- GET /audit/directives/{directive_id}


async def directive_page(request: Request) -> Response:
    person = await current_person(request)
    if person is None:
        return to_sign_in(request)
    directive_id = _parse_uuid(request.path_params["directive_id"])
    if directive_id is None:
        return _error_page(request, person, _malformed(request.path_params["directive_id"]))
    done = request.query_params.get("done")
    flash, flash_kind = (DONE_MESSAGES[done], "ok") if done in DONE_MESSAGES else _replayed_flash(request)
    return await _render_directive(request, person, directive_id, flash=flash, flash_kind=flash_kind)


def _malformed(raw: str) -> NotFound:
    shown = raw if len(raw) <= 64 else raw[:64] + "…"
    return NotFound(f"no directive {shown!r}: a directive id looks like 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")


async def _render_directive(
    request: Request,
    person: Person,
    directive_id: uuid.UUID,
    *,
    flash: str | None = None,
    flash_kind: str | None = None,
    status_code: int = 200,
) -> Response:
    cursor = request.query_params.get("cursor") or None
    limit, kept_limit = _page_limit(request)
    try:
        d = await _tool(request, person, "directive_get", directive_id=str(directive_id))
        page = await _tool(
            request,
            person,
            "audit_timeline",
            subject_type="directive",
            subject_id=str(d.id),
            cursor=cursor,
            limit=limit,
        )
    except FleetPromptError as exc:
        return _error_page(request, person, exc)
    path = directive_href(d.id)
    own = d.requested_by == str(person.user_id)
    can = {
        "approve": person.is_admin and d.status == "awaiting_approval",
        "reject": person.is_admin and d.status == "awaiting_approval",
        "cancel": (person.is_admin or own) and d.status in ("awaiting_approval", "requested"),
        "rerun": person.is_admin and d.status in TERMINAL,
    }
    return render(
        request,
        "audit_directive.html",
        person,
        status_code,
        flash=flash,
        flash_kind=flash_kind,
        d=d,
        path=path,
        subject=_subject(d),
        requested_by=actor_label(d.requested_by_type, d.requested_by, person, d.requested_via),
        decided_by=actor_label("user", d.decided_by, person) if d.decided_by else None,
        chat_href=chat_href(d.causation_id),
        payload=pretty(d.payload),
        result=pretty(d.result),
        times=[
            ("Created", fmt_time(d.created_at)),
            ("Scheduled", fmt_time(d.scheduled_at)),
            ("Started", fmt_time(d.started_at)),
            ("Completed", fmt_time(d.completed_at)),
        ],
        can=can,
        any_action=any(can.values()),
        rerun_key=f"web-rerun:{uuid.uuid4().hex}",
        entries=timeline_rows(page.entries, person, {str(d.id)}),
        next_href=_page_href(path, cursor=page.next_cursor, limit=kept_limit) if page.next_cursor else None,
        first_href=_page_href(path, limit=kept_limit) if cursor else None,
    )


# ---------------------------------------------------------------- POST actions


def _sign_in_then(path: str) -> RedirectResponse:
    """A signed-out POST: sign in, then come back to the page the form was on (never replay the POST)."""
    return RedirectResponse(f"/signin?next={quote(path, safe='/')}", status_code=303)


async def _checked_form(request: Request, person: Person) -> FormData | Response:
    """The posted form, once its CSRF token is this session's (checked before anything else)."""
    form = await request.form()
    try:
        await check_csrf(request, _field(form, CSRF_FIELD))
    except Forbidden as exc:
        return _error_page(request, person, exc, "Form refused")
    return form


def _act(platform: Platform, person: Person, action: str, directive_id: uuid.UUID, form: dict[str, str]) -> str:
    """One lifecycle step as the person acting directly; returns the `done` flash key."""
    ledger, ctx = platform.ledger, person.context()
    reason = (form.get("reason") or "").strip()[:MAX_REASON] or None
    if action == "approve":
        ledger.approve(ctx, directive_id)
        return "approved"
    if action == "reject":
        ledger.reject(ctx, directive_id, reason)
        return "rejected"
    if action == "cancel":
        ledger.cancel(ctx, directive_id, reason)
        return "canceled"
    key = form.get("rerun_key")
    filed = ledger.rerun(ctx, directive_id, key if key and RERUN_KEY.match(key) else None)
    if not filed.created:
        return "rerun_already"
    return "rerun_waiting" if filed.directive.status == "awaiting_approval" else "rerun"


async def directive_action(request: Request) -> Response:
    raw_id, action = request.path_params["directive_id"], request.path_params["action"]
    person = await current_person(request)
    if person is None:
        return _sign_in_then(directive_href(raw_id))
    form = await _checked_form(request, person)
    if isinstance(form, Response):
        return form
    if action not in ACTIONS:
        return _error_page(request, person, NotFound(f"unknown action {action!r}"))
    directive_id = _parse_uuid(raw_id)
    if directive_id is None:
        return _error_page(request, person, _malformed(raw_id))
    values = {k: v for k in ("reason", "rerun_key") if (v := _field(form, k)) is not None}
    try:
        done = await run_in_threadpool(_act, _platform(request), person, action, directive_id, values)
    except FleetPromptError as exc:  # shown on the directive page (or the error page when there is none)
        return await _render_directive(
            request, person, directive_id, flash=exc.message, flash_kind="error", status_code=status_for(exc)
        )
    return RedirectResponse(f"{directive_href(directive_id)}?done={done}", status_code=303)


async def replay_signals(request: Request) -> Response:
    """Admins re-run fanout for one signal (signal_id) or for every signal of one subject."""
    person = await current_person(request)
    if person is None:
        return _sign_in_then("/audit")
    form = await _checked_form(request, person)
    if isinstance(form, Response):
        return form
    if not person.is_admin:
        return _error_page(request, person, Forbidden("replaying signals needs the admin role"))
    raw_type = (_field(form, "subject_type") or "").strip()
    subject_type = ALIASES.get(raw_type, raw_type)
    subject_id = (_field(form, "subject_id") or "").strip()
    raw_signal = (_field(form, "signal_id") or "").strip()
    has_subject = subject_type in SUBJECT_TYPES and bool(subject_id) and len(subject_id) <= 255
    if raw_signal:
        signal_id = _parse_uuid(raw_signal)
        if signal_id is None:
            return _error_page(request, person, InvalidInput(f"{raw_signal[:64]!r} is not a signal id"))
        filters = SignalFilter(ids=[signal_id])
    elif has_subject:
        filters = SignalFilter(subject_type=subject_type, subject_id=subject_id)
    else:
        missing = InvalidInput("choose what to replay: a signal id, or a subject type and id")
        return _error_page(request, person, missing)
    platform = _platform(request)
    try:
        replayed = await run_in_threadpool(platform.ledger.replay, person.who.org.slug, filters)
    except FleetPromptError as exc:
        return _error_page(request, person, exc)
    back = timeline_href(subject_type, subject_id) if has_subject else "/audit"
    return RedirectResponse(f"{back}?replayed={len(replayed)}", status_code=303)


# POST routes first: /audit/signals/replay must never be read as the timeline of a subject type "signals".
routes = [
    Route("/audit/signals/replay", replay_signals, methods=["POST"]),
    Route("/audit/directives/{directive_id}/{action}", directive_action, methods=["POST"]),
    Route("/audit", audit_index, methods=["GET"]),
    Route("/audit/directives/{directive_id}", directive_page, methods=["GET"]),
    Route("/audit/{subject_type}/{subject_id}", timeline_page, methods=["GET"]),
]
