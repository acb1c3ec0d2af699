"""Server-rendered pages: Jinja2 with autoescaping (forum and marketplace text is untrusted), no remote assets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from fleetprompt.web.session import Person, csrf_token

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
_env = Environment(
    loader=FileSystemLoader(WEB_DIR / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

# Pages send only same-origin resources; inline scripts and remote loads are refused by the browser.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def render(
    request: Request, template: str, person: Person | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    html = _env.get_template(template).render(request=request, person=person, csrf_token=csrf_token(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def to_sign_in(request: Request) -> RedirectResponse:
    """Pages need a signed-in person: send them to sign in and back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/signin?next={_quote(target)}", status_code=303)


def safe_next(value: str | None) -> str:
    """Only a local path: `next` must never send a person to another site after signing in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/chat"
    return value


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")
