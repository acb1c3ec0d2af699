"""The chat and audit pages in a real browser (Debian's Chromium through Playwright) against the real app under
uvicorn, with its embedded runner on a real queue (SqliteHuey / PostgresHuey, both backends): sign in, a streamed
reply whose directive goes from requested to succeeded live, an approval answered with the page's buttons, the
directive's audit page, and the conversation rendered by the server (also with JavaScript off). Screenshots go to
artifacts/browser/ (SQLite) and artifacts/browser/postgres/."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import Org, build_platform, make_org
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, expect, sync_playwright
from pydantic_ai.messages import ModelMessage, ModelRequest, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from support.forum import call, new_category, new_thread
from support.serving import uvicorn_thread
from support.web import PASSWORD

from fleetprompt.ledger import SignalFilter
from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

pytestmark = pytest.mark.slow

TIMEOUT_MS = 30_000  # every wait for the page (a directive runs in well under a second)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "browser"
TENANT = "acme"
ADMIN = "admin@acme.test"
CREATE_PROMPT = "create a category news"
DELETE_PROMPT = "delete the post"


# ---------------------------------------------------------------------------------------------- the model


@dataclass
class ScriptedModel:
    """A FunctionModel stream scripted by the person's prompt (and by the tool results that come back)."""

    post_id: str = ""
    prompts: list[str] = field(default_factory=list)

    async def stream(self, messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        last = messages[-1]
        assert isinstance(last, ModelRequest), last
        returned = [part.tool_name for part in last.parts if isinstance(part, ToolReturnPart)]
        prompts = [part.content for part in last.parts if isinstance(part, UserPromptPart)]
        if returned == ["forum_create_category"]:
            yield "I filed "
            yield "it."
        elif returned == ["forum_delete_post"]:
            yield "Deleted."
        elif prompts == [CREATE_PROMPT]:
            self.prompts.append(CREATE_PROMPT)
            # No wait_seconds: the receipt says "requested", the data-directive parts then report it running/done.
            yield {0: DeltaToolCall(name="forum_create_category", tool_call_id="call-create")}
            yield {0: DeltaToolCall(json_args=json.dumps({"slug": "news", "name": "News"}))}
        elif prompts == [DELETE_PROMPT]:
            self.prompts.append(DELETE_PROMPT)
            args = json.dumps({"post_id": self.post_id})
            yield {0: DeltaToolCall(name="forum_delete_post", json_args=args, tool_call_id="call-delete")}
        else:
            yield f"Unexpected request: returned={returned} prompts={prompts}"

    def model(self) -> FunctionModel:
        return FunctionModel(stream_function=self.stream)


# ---------------------------------------------------------------------------------------------- the server


@contextmanager
def serving(platform: Platform, model: FunctionModel) -> Iterator[str]:
    """The real app with its embedded runner under uvicorn in a thread; yields its base URL."""
    try:
        with uvicorn_thread(create_app(platform, run_runner=True, workers=2, chat_model=model)) as port:
            yield f"http://127.0.0.1:{port}"
    finally:
        platform.close()


# ---------------------------------------------------------------------------------------------- the browser


@dataclass
class Watch:
    """What the pages did that a person would not see: console errors, failed requests, other hosts."""

    console_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        page.on("requestfailed", lambda request: self.failed.append(f"{request.url}: {request.failure}"))
        page.on("request", self._request)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        url = message.location.get("url") or ""
        if message.type == "error" and urlsplit(url).path != "/favicon.ico":  # Chromium asks; the app has none
            self.console_errors.append(f"{message.text} ({url})")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and urlsplit(response.url).path != "/favicon.ico":
            self.failed.append(f"{response.request.method} {response.url}: HTTP {response.status}")

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "blob", "about"):
            return
        if parts.hostname != "127.0.0.1":
            self.foreign.append(request.url)

    def check(self) -> None:
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"
        assert self.console_errors == [], f"console errors: {self.console_errors}"
        assert self.failed == [], f"failed requests: {self.failed}"


def launch(playwright: Any) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests use Debian's Chromium, which .ci/run installs "
            "(apt-get install chromium); on a workstation run `sudo apt-get install chromium`. "
            "Never `playwright install`.",
            pytrace=False,
        )
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


class Shots:
    """Numbered screenshots in artifacts/browser/ (SQLite) and artifacts/browser/postgres/, fresh for each run."""

    def __init__(self, root: Path, backend: str) -> None:
        folder = root if backend == "sqlite" else root / backend
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("[0-9][0-9]-*.png"):
            old.unlink()
        self.folder = folder
        self.count = 0
        self.paths: list[Path] = []

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        print(f"screenshot: {path}")
        return path

    def failure(self, browser: Browser) -> None:
        """The last open page as the test failed (the step that broke is in the traceback)."""
        pages = [page for context in browser.contexts for page in context.pages]
        if pages:
            try:
                self.take(pages[-1], "failure")
            except Exception as exc:  # a screenshot must not hide the failure itself
                print(f"no failure screenshot: {exc}")


class SoftChecks:
    """Checks of details (a stale badge, an anchor) that fail the test at its end, after every step and screenshot
    has run; a broken step fails at once."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    @contextmanager
    def check(self, what: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            first = str(exc).strip().splitlines()[0]
            self.failures.append(f"{what}: {first}")
            print(f"soft check failed: {what}: {first}")

    def check_all(self) -> None:
        assert self.failures == [], "details the pages got wrong:\n" + "\n".join(self.failures)


def directive_line(page: Page, directive_id: str) -> Any:
    return page.locator(f'.directive[data-directive-id="{directive_id}"]')


# ---------------------------------------------------------------------------------------------- the test


def forum_with_a_post(platform: Platform, org: Org) -> tuple[uuid.UUID, uuid.UUID]:
    """A category and a thread with its first post, filed through the tools (the embedded runner runs them)."""
    category_id = new_category(platform, org.ctx("admin"), "general")
    thread_id, post_id = new_thread(platform, org.ctx("member"), category_id, title="Old news", content="stale")
    return thread_id, post_id


def test_chat_streams_asks_for_approval_and_links_to_the_audit(database_url: str, backend: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    platform = build_platform(database_url, data_dir, queue="auto")  # SqliteHuey or PostgresHuey: a real queue
    org = make_org(platform, TENANT)
    script = ScriptedModel()
    shots = Shots(ARTIFACTS, backend)
    watch = Watch()
    soft = SoftChecks()
    expect.set_options(timeout=TIMEOUT_MS)
    with serving(platform, script.model()) as base, sync_playwright() as playwright:
        thread_id, post_id = forum_with_a_post(platform, org)
        script.post_id = str(post_id)
        browser = launch(playwright)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            watch.attach(page)

            # Sign in: /chat sends a stranger to the form, and the form back to a new conversation.
            page.goto(f"{base}/chat")
            expect(page).to_have_url(re.compile(r"/signin\b"))
            expect(page.locator("h1")).to_have_text("Sign in")
            shots.take(page, "signin")
            page.fill('input[name="email"]', ADMIN)
            page.fill('input[name="password"]', PASSWORD)
            page.click('form[action="/signin"] button[type="submit"]')
            page.wait_for_url(re.compile(r"/chat/[0-9a-f]{32}$"))
            conversation_url = page.url
            expect(page.locator(".who")).to_contain_text(ADMIN)

            # A directive filed without waiting: streamed text, then its status line moves on to succeeded.
            page.fill("#message", CREATE_PROMPT)
            page.click("#send")
            expect(page).to_have_url(conversation_url)
            assistant = page.locator(".message.assistant").nth(0)
            expect(assistant.locator(".text")).to_have_text("I filed it.")
            expect(assistant.locator(".tool code")).to_have_text("forum_create_category")
            expect(assistant.locator(".tool .tool-head .badge")).to_have_text("done")
            create_line = assistant.locator(".directive")
            expect(create_line).to_have_count(1)
            expect(create_line.locator(".badge")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
            expect(create_line.locator(".badge")).to_have_text("succeeded")
            expect(page.locator(".message")).to_have_count(2)
            create_id = create_line.get_attribute("data-directive-id")
            assert create_id
            expect(page.locator("#send")).to_be_enabled()
            shots.take(page, "chat-directive-succeeded")

            # A high-impact directive: the page asks, the admin approves with the button, the turn goes on.
            page.fill("#message", DELETE_PROMPT)
            page.click("#send")
            approval = page.locator(".approval")
            expect(approval.locator("button.approve")).to_be_visible()
            expect(approval.locator("button.deny")).to_be_visible()
            asking = page.locator(".message.assistant").nth(1)
            expect(asking.locator(".tool code")).to_have_text("forum_delete_post")
            delete_line = asking.locator(".directive")
            expect(delete_line.locator(".badge")).to_have_class(re.compile(r"\bstatus-awaiting_approval\b"))
            expect(page.locator(".message")).to_have_count(4)
            delete_id = delete_line.get_attribute("data-directive-id")
            assert delete_id and delete_id != create_id
            expect(page.locator("#send")).to_be_enabled()
            shots.take(page, "chat-approval-requested")

            approval.locator("button.approve").click()
            expect(page.locator(".approval")).to_have_count(0)
            # The card that asked no longer says it waits (the server renders it as answered after a reload).
            with soft.check("the asking card's badge after Approve"):
                expect(asking.locator(".tool .tool-head .badge")).not_to_have_text("approval-requested", timeout=5000)
            answered = page.locator(".message.assistant").nth(2)
            expect(answered.locator(".text")).to_have_text("Deleted.")
            expect(page.locator(".message")).to_have_count(5)
            output = answered.locator('.tool[data-tool-call-id="call-delete"]')
            expect(output.locator(".tool-head .badge")).to_have_text("done")
            expect(output.locator("details pre")).to_contain_text(delete_id)
            expect(directive_line(page, delete_id)).to_have_count(1)
            expect(directive_line(page, delete_id).locator(".badge")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
            expect(directive_line(page, create_id).locator(".badge")).to_have_text("succeeded")
            shots.take(page, "chat-approved-and-deleted")

            # The status line links to the directive's audit page.
            directive_line(page, delete_id).locator("a").click()
            page.wait_for_url(f"{base}/audit/directives/{delete_id}")
            expect(page.locator("h1")).to_contain_text("forum.post.delete")
            expect(page.locator("h1 .badge")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
            expect(page.locator("dl.facts")).to_contain_text(delete_id)
            expect(page.locator("dl.facts")).to_contain_text(str(org.users["admin"]))
            timeline = page.locator("table.timeline")
            for name in ("directive.requested", "directive.approved", "directive.succeeded"):
                expect(timeline.locator("td code", has_text=re.compile(rf"^{re.escape(name)}$"))).to_have_count(1)
            shots.take(page, "audit-directive")

            # Its "caused by chat message" link leads back to the message in this conversation.
            cause = page.locator("p a", has_text="caused by chat message").first
            href = cause.get_attribute("href") or ""
            assert href.startswith(urlsplit(conversation_url).path + "#m-"), href
            cause.click()
            page.wait_for_url(f"{base}{href}")
            with soft.check("the chat page's anchor for the audit's 'caused by chat message' link"):
                expect(page.locator(f'[id="{href.partition("#")[2]}"]')).to_have_count(1, timeout=5000)

            # Back in the chat after a reload, the server renders the whole conversation itself.
            page.goto(conversation_url)
            check_rendered_conversation(page, create_id, delete_id)
            expect(page.locator(".approval")).to_have_count(0)
            shots.take(page, "chat-reloaded")

            # And it is readable without JavaScript, with the same session.
            quiet = browser.new_context(java_script_enabled=False, storage_state=context.storage_state())
            quiet.set_default_timeout(TIMEOUT_MS)
            plain = quiet.new_page()
            watch.attach(plain)
            plain.goto(conversation_url)
            check_rendered_conversation(plain, create_id, delete_id)
            expect(plain.locator("noscript .flash.info")).to_contain_text("need JavaScript")
            shots.take(plain, "chat-without-javascript")
            quiet.close()
            context.close()
        except Exception:
            shots.failure(browser)
            raise
        finally:
            browser.close()
        watch.check()

        # The ledger agrees with what the pages showed.
        categories = call(platform, org.ctx("member"), "forum_list_categories").items
        assert "news" in {c.slug for c in categories}
        posts = {
            p.id: p.status for p in call(platform, org.ctx("admin"), "forum_get_thread", thread_id=str(thread_id)).posts
        }
        assert posts[post_id] == "deleted"
        assert platform.ledger.get(TENANT, uuid.UUID(create_id)).status == "succeeded"
        deleted = platform.ledger.get(TENANT, uuid.UUID(delete_id))
        assert (deleted.status, deleted.requested_by_type, deleted.decided_by) == (
            "succeeded",
            "agent",
            str(org.users["admin"]),
        )
        approvals, _ = platform.ledger.signals(
            TENANT, SignalFilter(name="directive.approved", subject_type="directive", subject_id=delete_id), limit=10
        )
        assert [(s.actor_type, s.actor_id) for s in approvals] == [("user", str(org.users["admin"]))]
        assert script.prompts == [CREATE_PROMPT, DELETE_PROMPT]
    for path in shots.paths:
        assert path.stat().st_size > 0, path
    print("screenshots:\n" + "\n".join(f"  {path}" for path in shots.paths))
    soft.check_all()


def check_rendered_conversation(page: Page, create_id: str, delete_id: str) -> None:
    """The conversation as the server renders it: both prompts, both replies, both directives succeeded."""
    users = page.locator(".message.user .text")
    expect(users).to_have_text([CREATE_PROMPT, DELETE_PROMPT])
    replies = page.locator(".message.assistant .text")
    expect(replies).to_have_text(["I filed it.", "Deleted."])
    for directive_id in (create_id, delete_id):
        line = directive_line(page, directive_id)
        expect(line).to_have_count(1)
        expect(line.locator(".badge")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
        expect(line.locator("a")).to_have_attribute("href", f"/audit/directives/{directive_id}")
    expect(page.locator(".tool code")).to_contain_text(["forum_create_category", "forum_delete_post"])
