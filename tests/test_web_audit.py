"""The /audit pages through the real app: sign-in, timelines, directive detail, approve / reject / cancel / rerun,
CSRF, replay, tenancy and escaping (both backends)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from conftest import Org, make_org
from starlette.testclient import TestClient
from support.forum import call, done, new_category, new_thread, reply, signal_ids
from support.plugin import fanout_calls
from support.web import sign_in, web_client

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.ledger import SignalDraft, SignalFilter, emit
from fleetprompt.models.base import utcnow
from fleetprompt.platform import Platform

TENANT = "acme"


@pytest.fixture
def forum(platform: Platform, org: Org) -> dict[str, uuid.UUID]:
    """A category, a thread with its first post and one reply (all filed by people, all done)."""
    category_id = new_category(platform, org.ctx("admin"))
    thread_id, first_post = new_thread(platform, org.ctx("member"), category_id, title="Release notes")
    answer = reply(platform, org.ctx("member"), thread_id, "the answer")
    return {"category": category_id, "thread": thread_id, "post": first_post, "reply": answer}


@pytest.fixture
def acting(platform: Platform, org: Org) -> Iterator[dict[str, tuple[TestClient, str]]]:
    """One signed-in browser per role of acme: (client, csrf token)."""
    with web_client(platform) as owner, web_client(platform) as admin, web_client(platform) as member:
        yield {
            "owner": (owner, sign_in(owner, "owner@acme.test")),
            "admin": (admin, sign_in(admin, "admin@acme.test")),
            "member": (member, sign_in(member, "member@acme.test")),
        }


def waiting_delete(platform: Platform, org: Org, post_id: uuid.UUID) -> uuid.UUID:
    """An assistant (acting for the admin) asks to delete a post: high-impact, so it waits for a person."""
    receipt = call(platform, org.ctx("admin", kind="agent"), "forum_delete_post", post_id=str(post_id))
    assert receipt.status == "awaiting_approval"
    return receipt.directive_id


def status_of(platform: Platform, directive_id: uuid.UUID, tenant: str = TENANT) -> str:
    return str(platform.ledger.get(tenant, directive_id).status)


def post(client: TestClient, path: str, token: str | None, **data: str) -> httpx.Response:
    form = dict(data) if token is None else {"csrf_token": token, **data}
    return client.post(path, data=form, follow_redirects=False)


def text_of(response: httpx.Response) -> str:
    """The page's text with tags removed and entities decoded (for assertions about what a person reads)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", response.text))


def lifecycle_signals(platform: Platform, directive_id: uuid.UUID, name: str) -> list:
    rows, _ = platform.ledger.signals(
        TENANT, SignalFilter(name=name, subject_type="directive", subject_id=str(directive_id)), limit=100
    )
    return rows


# ---------------------------------------------------------------- sign-in


def test_every_page_and_action_needs_a_signed_in_person(platform: Platform, org: Org, forum: dict) -> None:
    waiting = waiting_delete(platform, org, forum["reply"])
    with web_client(platform) as client:
        for path in ("/audit", f"/audit/forum.thread/{forum['thread']}", f"/audit/directives/{waiting}"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/signin?next=/audit"), path
        refused = client.post(f"/audit/directives/{waiting}/approve", data={}, follow_redirects=False)
        assert refused.status_code == 303 and refused.headers["location"].startswith("/signin?next=/audit/directives/")
        replay = client.post("/audit/signals/replay", data={"signal_id": str(uuid.uuid4())}, follow_redirects=False)
        assert replay.status_code == 303 and replay.headers["location"].startswith("/signin")
        assert status_of(platform, waiting) == "awaiting_approval"
        sign_in(client, "member@acme.test")
        assert client.get("/audit", follow_redirects=False).status_code == 200


# ---------------------------------------------------------------- reading


def test_a_threads_timeline_merges_its_signals_and_directives(
    platform: Platform, org: Org, forum: dict, acting: dict
) -> None:
    lock = done(platform, org.ctx("admin"), "forum_lock_thread", thread_id=str(forum["thread"]))
    client, _ = acting["member"]
    page = client.get(f"/audit/forum.thread/{forum['thread']}")
    assert page.status_code == 200
    body = page.text
    # The directive that created it (filed about the category) and the lock (filed about the thread) are here,
    # merged in time order with the facts they caused.
    order = [
        body.index("forum.thread.create<"),
        body.index("forum.thread.created<"),
        body.index("forum.thread.lock<"),
        body.index("forum.thread.locked<"),
    ]
    assert order == sorted(order)
    assert f'href="/audit/directives/{lock.directive_id}"' in body
    assert "kind-signal" in body and "kind-directive" in body
    assert 'class="badge status-succeeded"' in body
    assert str(org.users["admin"]) in body  # the actor of the lock
    assert f"/audit/directives/{lock.directive_id}" in body.split("forum.thread.locked<", 1)[1]  # its causation
    assert "Replay" not in body  # members do not replay
    # Short names work too; the page's own links use the full subject type.
    alias = client.get(f"/audit/thread/{forum['thread']}", follow_redirects=False)
    assert (alias.status_code, alias.headers["location"]) == (303, f"/audit/forum.thread/{forum['thread']}")


def test_the_timeline_pages_with_a_cursor(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    done(platform, org.ctx("admin"), "forum_lock_thread", thread_id=str(forum["thread"]))
    client, _ = acting["admin"]
    path = f"/audit/forum.thread/{forum['thread']}"
    everything = client.get(path)
    names = re.findall(r"<code>(forum\.[a-z_.]+)</code>", everything.text)
    assert len(names) == 5
    seen: list[str] = []
    page = client.get(f"{path}?limit=2")
    for _ in range(len(names)):  # never more pages than entries
        assert page.status_code == 200
        rows = re.findall(r"<code>(forum\.[a-z_.]+)</code>", page.text)
        assert 1 <= len(rows) <= 2
        seen += rows
        found = re.search(r'<a href="([^"]+)" rel="next">', page.text)
        if found is None:
            break
        target = html.unescape(found.group(1))
        assert "cursor=" in target and "limit=2" in target
        page = client.get(target)
    assert seen == names  # every entry once, in order, over three pages
    bad = client.get(f"{path}?cursor=not-a-cursor")
    assert bad.status_code == 400 and "invalid cursor" in bad.text


def test_unknown_subjects_are_a_404_page(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    client, _ = acting["admin"]
    missing = uuid.uuid4()
    page = client.get(f"/audit/forum.thread/{missing}")
    assert page.status_code == 404
    assert f"no forum.thread '{missing}' has any history" in text_of(page)
    unknown_type = client.get(f"/audit/spaceship/{missing}")
    assert unknown_type.status_code == 404 and "unknown subject type 'spaceship'" in text_of(unknown_type)
    assert client.get("/audit/installation/nothing-here").status_code == 404


def test_the_find_form_and_the_forum_search(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    client, _ = acting["member"]
    to_thread = client.get(f"/audit?type=thread&id={forum['thread']}", follow_redirects=False)
    assert (to_thread.status_code, to_thread.headers["location"]) == (303, f"/audit/forum.thread/{forum['thread']}")
    some_id = uuid.uuid4()
    to_directive = client.get(f"/audit?type=directive&id={some_id}", follow_redirects=False)
    assert to_directive.headers["location"] == f"/audit/directives/{some_id}"
    empty = client.get("/audit?type=thread&id=")
    assert empty.status_code == 400 and "enter the id" in empty.text
    no_install = client.get("/audit?type=installation&id=nope")
    assert no_install.status_code == 404 and "no installation" in text_of(no_install)
    found = client.get("/audit?q=release")
    assert found.status_code == 200
    assert f'href="/audit/forum.thread/{forum["thread"]}"' in found.text and "Release notes" in found.text
    posts = client.get("/audit?q=answer")
    assert f'href="/audit/forum.post/{forum["reply"]}"' in posts.text
    nothing = client.get("/audit?q=zeppelin")
    assert nothing.status_code == 200 and "Nothing in the forum matches" in text_of(nothing)
    not_words = client.get("/audit?q=%21%21%21")
    assert not_words.status_code == 400 and "at least one word" in not_words.text


def test_the_index_lists_recent_and_waiting_directives(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    waiting = waiting_delete(platform, org, forum["reply"])
    admin, _ = acting["admin"]
    member, _ = acting["member"]
    admin_page = admin.get("/audit").text
    waiting_section = admin_page.split('id="waiting-heading"', 1)[1].split("</section>", 1)[0]
    assert f'action="/audit/directives/{waiting}/approve"' in waiting_section
    assert f'action="/audit/directives/{waiting}/reject"' in waiting_section
    recent = admin_page.split('id="recent-heading"', 1)[1]
    assert "forum.thread.create" in recent and 'class="badge status-succeeded"' in recent
    member_page = member.get("/audit").text
    assert f'href="/audit/directives/{waiting}"' in member_page
    assert "/approve" not in member_page and "/reject" not in member_page
    only_waiting = admin.get("/audit?status=awaiting_approval").text.split('id="recent-heading"', 1)[1]
    assert "status-succeeded" not in only_waiting and f"/audit/directives/{waiting}" in only_waiting
    assert admin.get("/audit?status=sleeping").status_code == 400


def test_the_directive_page_shows_what_was_asked_by_whom_and_why(
    platform: Platform, org: Org, forum: dict, acting: dict
) -> None:
    from_chat = RequestContext(
        org=org.ref,
        actor=Actor.agent(org.users["member"], "chat"),
        correlation_id="corr-from-chat-42",
        causation_id="chat:conv-7:msg-9",
    )
    receipt = call(
        platform,
        from_chat,
        "forum_reply",
        thread_id=str(forum["thread"]),
        content="a reply from the chat",
        wait_seconds=5,
    )
    assert receipt.status == "succeeded"
    client, _ = acting["member"]
    page = client.get(f"/audit/directives/{receipt.directive_id}")
    assert page.status_code == 200
    body, text = page.text, text_of(page)
    assert "forum.post.create" in body and 'class="badge status-succeeded"' in body
    assert "a reply from the chat" in text  # payload (the member asked for it, so it is not redacted)
    assert receipt.result is not None and receipt.result["post_id"] in text  # result
    assert f"agent for user {org.users['member']} (you) via chat" in text
    assert "corr-from-chat-42" in text and "chat:conv-7:msg-9" in text
    assert '<a href="/chat/conv-7#m-msg-9">caused by chat message</a>' in body
    assert f'href="/audit/forum.thread/{forum["thread"]}"' in body  # the subject's timeline
    assert re.search(r"Attempts\s*</dt>\s*<dd>\s*1/\d+", body)
    assert "run 1" in text
    # Its own timeline: requested, started, succeeded.
    for name in ("directive.requested", "directive.started", "directive.succeeded"):
        assert f"<code>{name}</code>" in body
    assert "/rerun" not in body and "/approve" not in body  # members get no lifecycle buttons
    # A directive a person filed directly has no chat link.
    lock = done(platform, org.ctx("admin"), "forum_lock_thread", thread_id=str(forum["thread"]))
    plain = client.get(f"/audit/directives/{lock.directive_id}")
    assert plain.status_code == 200 and "caused by chat message" not in plain.text


# ---------------------------------------------------------------- decisions


def test_an_admin_approves_a_waiting_directive_and_it_runs(
    platform: Platform, org: Org, forum: dict, acting: dict
) -> None:
    waiting = waiting_delete(platform, org, forum["reply"])
    client, token = acting["admin"]
    page = client.get(f"/audit/directives/{waiting}")
    assert page.status_code == 200 and 'class="badge status-awaiting_approval"' in page.text
    assert f'action="/audit/directives/{waiting}/approve"' in page.text
    response = post(client, f"/audit/directives/{waiting}/approve", token)
    assert response.status_code == 303
    assert response.headers["location"] == f"/audit/directives/{waiting}?done=approved"
    directive = platform.ledger.get(TENANT, waiting)
    assert (directive.status, directive.decided_by) == ("succeeded", str(org.users["admin"]))
    [approved] = lifecycle_signals(platform, waiting, "directive.approved")
    assert (approved.actor_type, approved.actor_id, approved.source) == ("user", str(org.users["admin"]), "web")
    assert len(signal_ids(platform, name="forum.post.deleted", subject_id=str(forum["reply"]))) == 1
    after = client.get(response.headers["location"])
    assert 'class="flash ok"' in after.text and "Approved" in after.text
    assert 'class="badge status-succeeded"' in after.text and "/approve" not in after.text
    again = post(client, f"/audit/directives/{waiting}/approve", token)
    assert again.status_code == 409 and "not awaiting_approval" in text_of(again)


def test_a_member_cannot_decide_and_nothing_changes(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    waiting = waiting_delete(platform, org, forum["reply"])
    client, token = acting["member"]
    page = client.get(f"/audit/directives/{waiting}")
    assert page.status_code == 200
    assert "/approve" not in page.text and "/reject" not in page.text and "/cancel" not in page.text
    for action in ("approve", "reject", "cancel"):
        refused = post(client, f"/audit/directives/{waiting}/{action}", token)
        assert refused.status_code == 403, action
        assert 'class="flash error"' in refused.text
        assert status_of(platform, waiting) == "awaiting_approval"
    assert lifecycle_signals(platform, waiting, "directive.approved") == []
    assert lifecycle_signals(platform, waiting, "directive.rejected") == []
    assert signal_ids(platform, name="forum.post.deleted") == []
    finished = done(platform, org.ctx("admin"), "forum_lock_thread", thread_id=str(forum["thread"]))
    assert post(client, f"/audit/directives/{finished.directive_id}/rerun", token).status_code == 403
    assert platform.ledger.get(TENANT, finished.directive_id).run_number == 1


def test_a_member_cancels_their_own_request(platform: Platform, org: Org, acting: dict) -> None:
    # Filed by the member's assistant for tomorrow: it has not run, so it can still be canceled.
    later = platform.ledger.file(
        org.ctx("member", kind="agent"), "test.effect", {"label": "tomorrow"}, not_before=utcnow() + timedelta(days=1)
    ).directive
    assert status_of(platform, later.id) == "requested"
    someone_elses = platform.ledger.file(
        org.ctx("admin"), "test.effect", {"label": "admin's"}, not_before=utcnow() + timedelta(days=1)
    ).directive
    client, token = acting["member"]
    page = client.get(f"/audit/directives/{later.id}")
    assert f'action="/audit/directives/{later.id}/cancel"' in page.text and "/rerun" not in page.text
    assert "/cancel" not in client.get(f"/audit/directives/{someone_elses.id}").text
    refused = post(client, f"/audit/directives/{someone_elses.id}/cancel", token)
    assert refused.status_code == 403 and status_of(platform, someone_elses.id) == "requested"
    response = post(client, f"/audit/directives/{later.id}/cancel", token, reason="changed my mind")
    assert response.headers["location"] == f"/audit/directives/{later.id}?done=canceled"
    assert status_of(platform, later.id) == "canceled"
    [canceled] = lifecycle_signals(platform, later.id, "directive.canceled")
    assert (canceled.actor_type, canceled.actor_id, canceled.payload["reason"]) == (
        "user",
        str(org.users["member"]),
        "changed my mind",
    )


def test_csrf_is_checked_before_anything_else(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    waiting = waiting_delete(platform, org, forum["reply"])
    client, token = acting["admin"]
    for action in ("approve", "reject", "cancel"):
        missing = post(client, f"/audit/directives/{waiting}/{action}", None)
        wrong = post(client, f"/audit/directives/{waiting}/{action}", "x" * 43)
        assert (missing.status_code, wrong.status_code) == (403, 403), action
        assert "CSRF" in wrong.text
    assert status_of(platform, waiting) == "awaiting_approval"
    assert lifecycle_signals(platform, waiting, "directive.approved") == []
    finished = done(platform, org.ctx("admin"), "forum_lock_thread", thread_id=str(forum["thread"]))
    assert post(client, f"/audit/directives/{finished.directive_id}/rerun", "forged").status_code == 403
    assert platform.ledger.get(TENANT, finished.directive_id).run_number == 1
    before = sum(fanout_calls.values())
    replay = post(client, "/audit/signals/replay", None, subject_type="forum.thread", subject_id=str(forum["thread"]))
    assert replay.status_code == 403 and sum(fanout_calls.values()) == before
    # Another session's token is not this session's.
    with web_client(platform) as other:
        other_token = sign_in(other, "owner@acme.test")
    assert post(client, f"/audit/directives/{waiting}/approve", other_token).status_code == 403
    assert status_of(platform, waiting) == "awaiting_approval"
    assert post(client, f"/audit/directives/{waiting}/approve", token).status_code == 303


def test_reject_and_cancel_end_a_waiting_directive(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    first = waiting_delete(platform, org, forum["reply"])
    second = waiting_delete(platform, org, forum["post"])
    client, token = acting["owner"]
    rejected = post(client, f"/audit/directives/{first}/reject", token, reason="keep <b>this</b> answer")
    assert rejected.headers["location"] == f"/audit/directives/{first}?done=rejected"
    directive = platform.ledger.get(TENANT, first)
    assert (directive.status, directive.decided_by) == ("canceled", str(org.users["owner"]))
    assert directive.last_error == "rejected: keep <b>this</b> answer"
    [signal] = lifecycle_signals(platform, first, "directive.rejected")
    assert (signal.actor_type, signal.source, signal.payload["reason"]) == ("user", "web", "keep <b>this</b> answer")
    page = client.get(rejected.headers["location"])
    assert "Rejected" in page.text and "keep &lt;b&gt;this&lt;/b&gt; answer" in page.text
    assert "keep <b>" not in page.text
    assert f'action="/audit/directives/{first}/rerun"' in page.text  # a finished directive can run again
    canceled = post(client, f"/audit/directives/{second}/cancel", token)
    assert canceled.headers["location"] == f"/audit/directives/{second}?done=canceled"
    assert status_of(platform, second) == "canceled"
    assert len(lifecycle_signals(platform, second, "directive.canceled")) == 1
    too_late = post(client, f"/audit/directives/{second}/cancel", token)
    assert too_late.status_code == 409 and "can be canceled" in text_of(too_late)
    assert signal_ids(platform, name="forum.post.deleted") == []


def test_rerun_of_a_succeeded_and_of_a_failed_directive(
    platform: Platform, org: Org, forum: dict, acting: dict
) -> None:
    succeeded = platform.ledger.file(org.ctx("admin"), "test.effect", {"label": "again"}).directive
    failed = platform.ledger.file(org.ctx("admin"), "test.effect", {"label": "never", "permanent": True}).directive
    assert (status_of(platform, succeeded.id), status_of(platform, failed.id)) == ("succeeded", "failed")
    client, token = acting["admin"]
    page = client.get(f"/audit/directives/{succeeded.id}")
    key = re.search(r'name="rerun_key" value="([^"]+)"', page.text)
    assert key is not None
    response = post(client, f"/audit/directives/{succeeded.id}/rerun", token, rerun_key=key.group(1))
    assert response.headers["location"] == f"/audit/directives/{succeeded.id}?done=rerun"
    rerun = platform.ledger.get(TENANT, succeeded.id)
    assert (rerun.status, rerun.run_number) == ("succeeded", 2)
    assert len(signal_ids(platform, name="test.effect.applied")) == 2
    # The same form sent twice reruns once.
    twice = post(client, f"/audit/directives/{succeeded.id}/rerun", token, rerun_key=key.group(1))
    assert twice.headers["location"].endswith("?done=rerun_already")
    assert platform.ledger.get(TENANT, succeeded.id).run_number == 2
    shown = client.get(f"/audit/directives/{succeeded.id}")
    assert "run 2" in shown.text and shown.text.count("<code>directive.requested</code>") == 2
    response = post(client, f"/audit/directives/{failed.id}/rerun", token)
    assert response.headers["location"] == f"/audit/directives/{failed.id}?done=rerun"
    again = platform.ledger.get(TENANT, failed.id)
    assert (again.status, again.run_number) == ("failed", 2)
    assert "never cannot be done" in text_of(client.get(f"/audit/directives/{failed.id}"))
    waiting = waiting_delete(platform, org, forum["reply"])
    not_finished = post(client, f"/audit/directives/{waiting}/rerun", token)
    assert not_finished.status_code == 409 and "only finished directives rerun" in text_of(not_finished)
    assert status_of(platform, waiting) == "awaiting_approval"


# ---------------------------------------------------------------- replay


def ping(platform: Platform, thread_id: uuid.UUID) -> uuid.UUID:
    """A fact about the thread with a fanout handler (tests.pong): replay has something to run."""
    with platform.ledger.transaction(TENANT) as session:
        draft = SignalDraft(
            name="test.ping.sent",
            source="test",
            payload={},
            dedupe_key=f"ping:{uuid.uuid4()}",
            subject_type="forum.thread",
            subject_id=str(thread_id),
        )
        return emit(session, draft).signal.id


def test_replay_is_for_admins_and_says_how_many(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    pings = [ping(platform, forum["thread"]), ping(platform, forum["thread"])]
    assert [fanout_calls[str(p)] for p in pings] == [1, 1]
    subject = {"subject_type": "forum.thread", "subject_id": str(forum["thread"])}
    member, member_token = acting["member"]
    refused = post(member, "/audit/signals/replay", member_token, **subject)
    assert refused.status_code == 403 and "admin" in refused.text
    assert post(member, "/audit/signals/replay", member_token, signal_id=str(pings[0])).status_code == 403
    assert [fanout_calls[str(p)] for p in pings] == [1, 1]
    admin, token = acting["admin"]
    timeline = admin.get(f"/audit/forum.thread/{forum['thread']}").text
    assert 'action="/audit/signals/replay"' in timeline
    response = post(admin, "/audit/signals/replay", token, **subject)
    assert response.headers["location"] == f"/audit/forum.thread/{forum['thread']}?replayed=2"
    assert [fanout_calls[str(p)] for p in pings] == [2, 2]
    page = admin.get(response.headers["location"])
    assert 'class="flash ok"' in page.text and "Replayed fanout of 2 signals." in page.text
    one = post(admin, "/audit/signals/replay", token, signal_id=str(pings[1]), **subject)
    assert one.headers["location"].endswith("?replayed=1")
    assert [fanout_calls[str(p)] for p in pings] == [2, 3]
    assert "Replayed fanout of 1 signal." in admin.get(one.headers["location"]).text
    bad = post(admin, "/audit/signals/replay", token, signal_id="not-an-id")
    assert bad.status_code == 400 and "not a signal id" in text_of(bad)
    nothing = post(admin, "/audit/signals/replay", token)
    assert nothing.status_code == 400 and "choose what to replay" in nothing.text


# ---------------------------------------------------------------- tenancy, malformed ids, escaping


def test_another_organizations_directive_is_not_found(platform: Platform, org: Org, forum: dict) -> None:
    make_org(platform, "globex")
    waiting = waiting_delete(platform, org, forum["reply"])
    with web_client(platform) as client:
        token = sign_in(client, "owner@globex.test")
        page = client.get(f"/audit/directives/{waiting}")
        assert page.status_code == 404 and f"directive {waiting} not found" in text_of(page)
        for action in ("approve", "reject", "cancel", "rerun"):
            assert post(client, f"/audit/directives/{waiting}/{action}", token).status_code == 404, action
        assert client.get(f"/audit/forum.thread/{forum['thread']}").status_code == 404
        assert str(waiting) not in client.get("/audit").text
    assert status_of(platform, waiting) == "awaiting_approval"
    assert lifecycle_signals(platform, waiting, "directive.approved") == []


def test_a_malformed_directive_id_is_a_404_not_a_500(platform: Platform, org: Org, acting: dict) -> None:
    client, token = acting["admin"]
    for raw in ("not-a-uuid", "1234", "x" * 300, "%00"):
        page = client.get(f"/audit/directives/{raw}")
        assert page.status_code == 404, raw
        assert "a directive id looks like" in page.text
        assert post(client, f"/audit/directives/{raw}/approve", token).status_code == 404, raw
    unknown = uuid.uuid4()
    assert client.get(f"/audit/directives/{unknown}").status_code == 404
    assert post(client, f"/audit/directives/{unknown}/approve", token).status_code == 404
    assert post(client, f"/audit/directives/{unknown}/explode", token).status_code == 404


def test_untrusted_forum_text_is_escaped_everywhere(platform: Platform, org: Org, acting: dict) -> None:
    evil = "<script>alert(1)</script>"
    category_id = new_category(platform, org.ctx("admin"))
    title = f"{evil} launch plans"  # PostgreSQL's parser skips what sits inside tags: search for the plain words
    thread_id, _ = new_thread(platform, org.ctx("member"), category_id, title=title, content=f"look {evil} here")
    client, _ = acting["admin"]
    pages = {
        "search": client.get("/audit?q=launch"),
        "timeline": client.get(f"/audit/forum.thread/{thread_id}"),
        "index": client.get("/audit"),
    }
    created = call(platform, org.ctx("admin"), "directive_list", type="forum.thread.create").items[0]
    pages["directive"] = client.get(f"/audit/directives/{created.id}")
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert "<script>" not in page.text, name
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["search"].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["timeline"].text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["directive"].text
    assert pages["timeline"].headers["content-security-policy"].startswith("default-src 'self'")


def test_pages_load_nothing_from_elsewhere(platform: Platform, org: Org, forum: dict, acting: dict) -> None:
    client, _ = acting["admin"]
    waiting = waiting_delete(platform, org, forum["reply"])
    for path in ("/audit", f"/audit/forum.thread/{forum['thread']}", f"/audit/directives/{waiting}"):
        body = client.get(path).text
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", body), path
        assert "<script" not in body, path
    css = client.get("/static/app.css")
    assert css.status_code == 200 and ".status-awaiting_approval" in css.text and "url(" not in css.text
