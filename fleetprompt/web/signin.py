"""GET/POST /signin and POST /signout: email and password, a fresh session, a limit on failed attempts."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fleetprompt.accounts.sign_in import sign_in
from fleetprompt.errors import FleetPromptError, TooManyAttempts
from fleetprompt.platform import Platform
from fleetprompt.web.pages import render, safe_next
from fleetprompt.web.session import CSRF_FIELD, csrf_ok, current_person, end_session, start_session


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def sign_in_page(request: Request) -> Response:
    person = await current_person(request)
    target = safe_next(request.query_params.get("next"))
    if person is not None:
        return RedirectResponse(target, status_code=303)
    return render(request, "signin.html", None, next=target)


async def sign_in_submit(request: Request) -> Response:
    form = await request.form()
    email, org = str(form.get("email") or ""), str(form.get("org") or "").strip() or None
    target = safe_next(str(form.get("next") or ""))

    def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
        response = render(request, "signin.html", None, status, error=error, email=email, org=org, next=target)
        response.headers.update(headers or {})
        return response

    if not csrf_ok(request, form.get(CSRF_FIELD) if isinstance(form.get(CSRF_FIELD), str) else None):
        return again("The form expired or did not come from this site. Please sign in again.", 403)
    platform: Platform = request.app.state.platform
    try:
        who = await run_in_threadpool(
            sign_in, platform.db, email, str(form.get("password") or ""), client_ip(request), org
        )
    except TooManyAttempts as exc:
        return again(exc.message, 429, {"retry-after": str(exc.retry_after)})
    except FleetPromptError as exc:
        return again(exc.message, 400 if exc.code == "invalid_input" else 401)
    start_session(request, who)
    return RedirectResponse(target, status_code=303)


async def sign_out(request: Request) -> Response:
    form = await request.form()
    value = form.get(CSRF_FIELD)
    if not csrf_ok(request, value if isinstance(value, str) else None):
        return Response("CSRF check failed: reload the page and try again.", status_code=403)
    end_session(request)
    return RedirectResponse("/signin", status_code=303)


routes = [
    Route("/signin", sign_in_page, methods=["GET"]),
    Route("/signin", sign_in_submit, methods=["POST"]),
    Route("/signout", sign_out, methods=["POST"]),
]
