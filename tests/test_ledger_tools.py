"""Ledger tools through call_tool only: directive_get, directive_list, directive_cancel, directive_rerun and
audit_timeline (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from conftest import Org
from support.forum import (
    call,
    directive_ids,
    done,
    fast_password_hashing,
    new_category,
    new_thread,
    queued,
    reply,
    run,
    signal_names,
)

from fleetprompt.accounts.context import RequestContext
from fleetprompt.accounts.users import add_user
from fleetprompt.errors import Forbidden, InvalidInput, InvalidState, NotFound
from fleetprompt.platform import Platform
from fleetprompt.tools import Progress, call_tool


@pytest.fixture(autouse=True)
def _fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_password_hashing(monkeypatch)


def page_through(platform: Platform, ctx: RequestContext, tool: str, **arguments: object) -> list[list[uuid.UUID]]:
    """Every page of a paginated tool, following next_cursor until it runs out."""
    pages, cursor = [], None
    while True:
        page = call(platform, ctx, tool, cursor=cursor, **arguments)
        items = page.entries if tool == "audit_timeline" else page.items
        pages.append([item.id for item in items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_directive_get_reports_and_waits_for_the_outcome(platform: Platform, org: Org) -> None:
    admin = org.ctx("admin")
    thread_id, _ = new_thread(platform, org.ctx("member"), new_category(platform, admin))
    with queued(platform):
        lock = call(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
        started = time.monotonic()
        pending = call(platform, admin, "directive_get", directive_id=str(lock.directive_id), wait_seconds=0.3)
        assert time.monotonic() - started >= 0.3
        assert (pending.status, pending.result, pending.attempt, pending.started_at) == ("requested", None, 0, None)
        runner = threading.Timer(0.3, platform.runner.run_directive, args=("acme", str(lock.directive_id)))
        runner.start()
        updates: list[Progress] = []
        started = time.monotonic()
        finished = call_tool(
            platform.ledger,
            admin,
            "directive_get",
            {"directive_id": str(lock.directive_id), "wait_seconds": 10},
            progress=updates.append,
        )
        runner.join()
    assert time.monotonic() - started < 5
    assert finished.status == "succeeded"
    assert finished.result == {"thread_id": str(thread_id), "status": "locked", "changed": True}
    assert updates[0].status == "requested" and updates[-1].status == "succeeded"
    assert [u.step for u in updates] == list(range(1, len(updates) + 1))
    assert (finished.id, finished.type, finished.error) == (lock.directive_id, "forum.thread.lock", None)
    assert (finished.requested_by, finished.requested_by_type, finished.requested_via) == (
        str(org.users["admin"]),
        "user",
        "test",
    )
    assert (finished.attempt, finished.max_attempts, finished.run_number) == (1, 5, 1)
    assert finished.subject.model_dump() == {"type": "forum.thread", "id": str(thread_id)}
    assert finished.idempotency_key == lock.idempotency_key
    assert finished.created_at <= finished.started_at <= finished.completed_at
    with pytest.raises(NotFound, match="directive"):
        call(platform, admin, "directive_get", directive_id=str(uuid.uuid4()))
    with pytest.raises(InvalidInput, match="wait_seconds"):
        call(platform, admin, "directive_get", directive_id=str(lock.directive_id), wait_seconds=31)


def test_directive_list_filters_and_pages(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category = new_category(platform, admin)
    thread_id, _ = new_thread(platform, member, category)
    first_lock = done(platform, admin, "forum_lock_thread", thread_id=str(thread_id)).directive_id
    unlock = done(platform, admin, "forum_unlock_thread", thread_id=str(thread_id)).directive_id
    with queued(platform):
        doomed = call(platform, member, "forum_reply", thread_id=str(thread_id), content="too late").directive_id
        second_lock = call(platform, admin, "forum_lock_thread", thread_id=str(thread_id)).directive_id
        assert run(platform, second_lock).status == "succeeded"
        assert run(platform, doomed).status == "failed"
        waiting = call(platform, member, "forum_create_thread", category_id=str(category), title="t", content="c")
    everything = directive_ids(platform)
    assert len(everything) == 7

    for limit in (1, 2, 3):
        pages = page_through(platform, member, "directive_list", limit=limit)
        assert [len(p) for p in pages[:-1]] == [limit] * (len(pages) - 1)
        assert [d for p in pages for d in p] == everything

    def listed(**filters: object) -> list[uuid.UUID]:
        return [d.id for d in call(platform, member, "directive_list", **filters).items]

    assert listed(status="failed") == [doomed]
    assert listed(status="requested") == [waiting.directive_id]
    assert listed(type="forum.thread.lock") == [second_lock, first_lock]
    assert listed(type="forum.thread.lock", status="succeeded", limit=1) == [second_lock]
    assert listed(subject_type="forum.thread", subject_id=str(thread_id)) == [second_lock, doomed, unlock, first_lock]
    created_thread = everything[-2]
    assert listed(subject_type="forum.category", subject_id=str(category)) == [waiting.directive_id, created_thread]
    assert listed(type="no.such.type") == []
    for filters, field in [
        ({"status": "done"}, "status"),
        ({"subject_type": "user"}, "subject_type"),
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": 201}, "limit"),
        ({"requested_by": str(org.users["admin"])}, "requested_by"),
    ]:
        with pytest.raises(InvalidInput, match=field):
            call(platform, member, "directive_list", **filters)


def test_directive_cancel_rules(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    org.users["member2"] = add_user(platform.db, "member2@acme.test", "acme", "member", "password-123").user.id
    other = org.ctx("member2")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    finished = directive_ids(platform)[0]
    with queued(platform):
        mine = call(platform, member, "forum_reply", thread_id=str(thread_id), content="never mind").directive_id
        theirs = call(platform, other, "forum_reply", thread_id=str(thread_id), content="me too").directive_id
        with pytest.raises(Forbidden, match="canceling someone else's directive needs the admin role"):
            call(platform, other, "directive_cancel", directive_id=str(mine))
        canceled = call(platform, member, "directive_cancel", directive_id=str(mine), reason="typo")
        assert (canceled.directive_id, canceled.status, canceled.created, canceled.finished) == (
            mine,
            "canceled",
            True,
            True,
        )
        again = call(platform, member, "directive_cancel", directive_id=str(mine))
        assert (again.directive_id, again.status, again.created) == (mine, "canceled", False)
        with pytest.raises(InvalidState, match="canceled"):
            call(platform, admin, "directive_cancel", directive_id=str(mine))
        by_admin = call(platform, admin, "directive_cancel", directive_id=str(theirs))
        assert (by_admin.status, by_admin.created) == ("canceled", True)
        assert run(platform, mine).status == "canceled"  # a canceled directive never runs
        assert run(platform, theirs).status == "canceled"
    with pytest.raises(InvalidState, match="succeeded"):
        call(platform, member, "directive_cancel", directive_id=str(finished))
    with pytest.raises(NotFound):
        call(platform, member, "directive_cancel", directive_id=str(uuid.uuid4()))
    view = call(platform, member, "directive_get", directive_id=str(mine))
    assert (view.status, view.decided_by) == ("canceled", str(org.users["member"]))
    assert call(platform, member, "forum_get_thread", thread_id=str(thread_id)).thread.post_count == 1
    assert signal_names(platform, subject_type="directive", subject_id=str(mine)) == [
        "directive.requested",
        "directive.canceled",
    ]
    timeline = call(platform, member, "audit_timeline", subject_type="directive", subject_id=str(mine))
    [canceled_fact] = [e for e in timeline.entries if e.name == "directive.canceled"]
    assert (canceled_fact.payload["reason"], canceled_fact.actor_id) == ("typo", str(org.users["member"]))


def test_directive_rerun_is_admin_only_and_repeatable_with_a_key(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, post_id = new_thread(platform, member, new_category(platform, admin))
    lock = done(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
    with pytest.raises(Forbidden, match="directive_rerun needs the admin role"):
        call(platform, member, "directive_rerun", directive_id=str(lock.directive_id))
    first = call(
        platform, admin, "directive_rerun", directive_id=str(lock.directive_id), idempotency_key="rr-1", wait_seconds=5
    )
    assert (first.directive_id, first.created, first.status) == (lock.directive_id, True, "succeeded")
    assert first.idempotency_key == lock.idempotency_key  # a rerun keeps the directive's own key
    assert first.result == {"thread_id": str(thread_id), "status": "locked", "changed": False}
    repeat = call(platform, admin, "directive_rerun", directive_id=str(lock.directive_id), idempotency_key="rr-1")
    assert (repeat.directive_id, repeat.created, repeat.status) == (lock.directive_id, False, "succeeded")
    view = call(platform, admin, "directive_get", directive_id=str(lock.directive_id))
    assert (view.run_number, view.status, view.decided_by) == (2, "succeeded", str(org.users["admin"]))
    assert (
        signal_names(platform, subject_type="directive", subject_id=str(lock.directive_id))
        == [
            "directive.requested",
            "directive.started",
            "directive.succeeded",
        ]
        * 2
    )
    another = done(platform, admin, "directive_rerun", directive_id=str(lock.directive_id), idempotency_key="rr-2")
    assert (
        another.created and call(platform, admin, "directive_get", directive_id=str(lock.directive_id)).run_number == 3
    )

    with queued(platform):
        pending = call(platform, admin, "forum_unlock_thread", thread_id=str(thread_id)).directive_id
        with pytest.raises(InvalidState, match="only finished directives rerun"):
            call(platform, admin, "directive_rerun", directive_id=str(pending))
        run(platform, pending)
    # A rerun of a high-impact directive asked by an agent waits for a person, like the original would.
    deleted = done(platform, admin, "forum_delete_post", post_id=str(post_id))
    agent_rerun = call(
        platform, org.ctx("admin", kind="agent"), "directive_rerun", directive_id=str(deleted.directive_id)
    )
    assert (agent_rerun.status, agent_rerun.created) == ("awaiting_approval", True)
    assert signal_names(platform, name="forum.post.deleted") == ["forum.post.deleted"]


def test_audit_timeline_pages_cover_the_whole_history(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    for _ in range(3):
        for name in ("forum_lock_thread", "forum_unlock_thread"):
            done(platform, admin, name, thread_id=str(thread_id))
    reply(platform, member, thread_id, "one")
    reply(platform, org.ctx("owner"), thread_id, "two")

    full = call(platform, member, "audit_timeline", subject_type="forum.thread", subject_id=str(thread_id), limit=500)
    assert full.next_cursor is None
    everything = [e.id for e in full.entries]
    # create directive + thread.created, 6 lock/unlock directives + 6 signals, 2 reply directives
    assert len(everything) == len(set(everything)) == 16
    assert [(e.at, e.id) for e in full.entries] == sorted((e.at, e.id) for e in full.entries)
    kinds = [(e.kind, e.name) for e in full.entries]
    assert kinds.count(("directive", "forum.thread.lock")) == 3
    assert kinds.count(("signal", "forum.thread.unlocked")) == 3
    for limit in (1, 3, 5):
        pages = page_through(
            platform, member, "audit_timeline", subject_type="forum.thread", subject_id=str(thread_id), limit=limit
        )
        assert [len(p) for p in pages[:-1]] == [limit] * (len(pages) - 1)
        assert [e for p in pages for e in p] == everything

    with pytest.raises(NotFound, match="has any history"):
        call(platform, member, "audit_timeline", subject_type="forum.thread", subject_id=str(uuid.uuid4()))
    for arguments, field in [
        ({"subject_type": "user", "subject_id": str(thread_id)}, "subject_type"),
        ({"subject_type": "forum.thread", "subject_id": ""}, "subject_id"),
        ({"subject_type": "forum.thread", "subject_id": str(thread_id), "limit": 0}, "limit"),
        ({"subject_type": "forum.thread", "subject_id": str(thread_id), "cursor": "garbage"}, "cursor"),
    ]:
        with pytest.raises(InvalidInput, match=field):
            call(platform, member, "audit_timeline", **arguments)
