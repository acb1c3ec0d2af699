"""Forum tools through call_tool only: reads, directives, role gates, redaction, limits, tenancy (both backends)."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from conftest import Org, make_org
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
    signal_ids,
    signal_names,
)

from fleetprompt.accounts.context import RequestContext
from fleetprompt.accounts.users import set_membership
from fleetprompt.errors import Conflict, Forbidden, IdempotencyKeyReused, InvalidInput, InvalidState, NotFound
from fleetprompt.ledger import SignalFilter
from fleetprompt.ledger.dispatch import NoDispatch
from fleetprompt.platform import Platform
from fleetprompt.runner.execute import execute_directive
from fleetprompt.tools.ledger import REDACTED

HIDDEN = "[hidden by a moderator]"
DELETED = "[deleted]"


@pytest.fixture(autouse=True)
def _fast_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    fast_password_hashing(monkeypatch)


def thread_of(platform: Platform, ctx: RequestContext, thread_id: uuid.UUID, **arguments: object):
    return call(platform, ctx, "forum_get_thread", thread_id=str(thread_id), **arguments)


def posts_of(platform: Platform, ctx: RequestContext, thread_id: uuid.UUID) -> dict[uuid.UUID, tuple[str, str, bool]]:
    """post id -> (status, content as this caller sees it, redacted)"""
    return {p.id: (p.status, p.content, p.redacted) for p in thread_of(platform, ctx, thread_id).posts}


def hits(platform: Platform, ctx: RequestContext, query: str, **arguments: object) -> list[tuple[str, uuid.UUID]]:
    found = call(platform, ctx, "forum_search", query=query, **arguments).hits
    return [(h.kind, h.post_id if h.kind == "post" else h.thread_id) for h in found]


def test_categories_threads_replies_and_edits(platform: Platform, org: Org) -> None:
    admin, member, owner = org.ctx("admin"), org.ctx("member"), org.ctx("owner")
    filed = call(platform, admin, "forum_create_category", slug=" general ", name="General talk", description="Any")
    assert (filed.type, filed.status, filed.created, filed.finished) == (
        "forum.category.create",
        "requested",
        True,
        False,
    )
    assert filed.subject is None and filed.idempotency_key.startswith("auto:forum.category.create:")
    category = call(platform, member, "directive_get", directive_id=str(filed.directive_id))
    assert category.status == "succeeded" and category.result["slug"] == "general"
    category_id = uuid.UUID(category.result["category_id"])
    [listed] = call(platform, member, "forum_list_categories").items
    assert (listed.id, listed.slug, listed.name, listed.description, listed.status, listed.thread_count) == (
        category_id,
        "general",
        "General talk",
        "Any",
        "active",
        0,
    )

    thread_id, first = new_thread(platform, member, category_id, title="  Welcome  ", content="Say hi")
    answer = reply(platform, owner, thread_id, "Hi from the owner")
    detail = thread_of(platform, member, thread_id)
    assert (detail.thread.title, detail.thread.status, detail.thread.post_count) == ("Welcome", "open", 2)
    assert (detail.thread.author_type, detail.thread.author_id) == ("human", str(org.users["member"]))
    assert (detail.category.id, detail.category.thread_count) == (category_id, 1)
    assert [(p.id, p.content, p.author_id, p.redacted) for p in detail.posts] == [
        (first, "Say hi", str(org.users["member"]), False),
        (answer, "Hi from the owner", str(org.users["owner"]), False),
    ]
    assert detail.next_cursor is None
    assert call(platform, member, "forum_list_categories").items[0].thread_count == 1

    edited = done(platform, member, "forum_edit_post", post_id=str(first), content="Say hello")
    assert edited.result == {"post_id": str(first), "thread_id": str(thread_id), "changed": True}
    again = done(platform, member, "forum_edit_post", post_id=str(first), content="Say hello")
    assert again.created and again.directive_id != edited.directive_id and again.result["changed"] is False
    done(platform, admin, "forum_edit_post", post_id=str(answer), content="Edited by an admin")
    [mine, theirs] = thread_of(platform, member, thread_id).posts
    assert (mine.content, theirs.content) == ("Say hello", "Edited by an admin")
    assert mine.edited_at is not None and theirs.edited_at is not None
    assert signal_names(platform, name="forum.post.edited") == ["forum.post.edited", "forum.post.edited"]

    filed_so_far = directive_ids(platform)
    with pytest.raises(Forbidden, match="author or an admin"):
        call(platform, member, "forum_edit_post", post_id=str(answer), content="not mine")
    with pytest.raises(Conflict, match="'general' already exists"):
        call(platform, admin, "forum_create_category", slug="general", name="Again")
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFound, match="forum category"):
        call(platform, member, "forum_create_thread", category_id=unknown, title="t", content="c")
    with pytest.raises(NotFound, match="forum category"):
        call(platform, admin, "forum_archive_category", category_id=unknown)
    with pytest.raises(NotFound, match="forum category"):
        call(platform, member, "forum_list_threads", category_id=unknown)
    assert directive_ids(platform) == filed_so_far

    archived = done(platform, admin, "forum_archive_category", category_id=str(category_id))
    assert archived.result == {"category_id": str(category_id), "status": "archived", "changed": True}
    assert [c.status for c in call(platform, member, "forum_list_categories").items] == ["archived"]
    filed_so_far = directive_ids(platform)
    with pytest.raises(InvalidState, match="archived"):
        call(platform, member, "forum_create_thread", category_id=str(category_id), title="t", content="c")
    with pytest.raises(InvalidState, match="archived"):
        call(platform, member, "forum_reply", thread_id=str(thread_id), content="late")
    with pytest.raises(InvalidState, match="archived"):
        call(platform, admin, "forum_archive_category", category_id=str(category_id))
    assert directive_ids(platform) == filed_so_far
    # The archived category's threads stay readable.
    assert thread_of(platform, member, thread_id).category.status == "archived"
    assert signal_names(platform, name="forum.category.*") == ["forum.category.created", "forum.category.archived"]


def test_moderation_tools_and_their_errors(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, first = new_thread(platform, member, new_category(platform, admin))
    answer = reply(platform, member, thread_id, "a reply")

    locked = done(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
    assert locked.subject.model_dump() == {"type": "forum.thread", "id": str(thread_id)}
    assert locked.result == {"thread_id": str(thread_id), "status": "locked", "changed": True}
    assert thread_of(platform, member, thread_id).thread.status == "locked"
    filed_so_far = directive_ids(platform)
    with pytest.raises(InvalidState, match="locked; replies need an open thread"):
        call(platform, member, "forum_reply", thread_id=str(thread_id), content="blocked")
    with pytest.raises(InvalidState, match="locked"):
        call(platform, admin, "forum_reply", thread_id=str(thread_id), content="blocked too")
    with pytest.raises(InvalidState, match="locked"):
        call(platform, member, "forum_edit_post", post_id=str(first), content="members cannot edit in a locked thread")
    assert directive_ids(platform) == filed_so_far
    done(platform, admin, "forum_edit_post", post_id=str(first), content="admins can")
    unlocked = done(platform, admin, "forum_unlock_thread", thread_id=str(thread_id))
    assert unlocked.result == {"thread_id": str(thread_id), "status": "open", "changed": True}
    reply(platform, member, thread_id, "open again")

    assert done(platform, admin, "forum_hide_post", post_id=str(answer)).result["status"] == "hidden"
    assert done(platform, admin, "forum_unhide_post", post_id=str(answer)).result["status"] == "published"
    deleted = done(platform, admin, "forum_delete_post", post_id=str(answer))
    assert deleted.result == {"post_id": str(answer), "thread_id": str(thread_id), "status": "deleted", "changed": True}
    assert posts_of(platform, member, thread_id)[answer] == ("deleted", DELETED, True)
    assert signal_names(platform, subject_type="forum.post", subject_id=str(answer)) == [
        "forum.post.created",
        "forum.post.hidden",
        "forum.post.unhidden",
        "forum.post.deleted",
    ]

    filed_so_far = directive_ids(platform)
    for name in ("forum_hide_post", "forum_unhide_post"):
        with pytest.raises(InvalidState, match="deleted"):
            call(platform, admin, name, post_id=str(answer))
    with pytest.raises(InvalidState, match="deleted"):
        call(platform, admin, "forum_edit_post", post_id=str(answer), content="resurrect")
    unknown = str(uuid.uuid4())
    for name in ("forum_lock_thread", "forum_unlock_thread"):
        with pytest.raises(NotFound, match=f"forum thread {unknown} not found"):
            call(platform, admin, name, thread_id=unknown)
    with pytest.raises(NotFound, match="forum thread"):
        call(platform, member, "forum_reply", thread_id=unknown, content="hello?")
    with pytest.raises(NotFound, match="forum thread"):
        call(platform, member, "forum_get_thread", thread_id=unknown)
    for name in ("forum_hide_post", "forum_unhide_post", "forum_delete_post"):
        with pytest.raises(NotFound, match=f"forum post {unknown} not found"):
            call(platform, admin, name, post_id=unknown)
    with pytest.raises(NotFound, match="forum post"):
        call(platform, member, "forum_edit_post", post_id=unknown, content="x")
    assert directive_ids(platform) == filed_so_far


def test_members_cannot_use_admin_tools_and_nothing_is_filed(platform: Platform, org: Org) -> None:
    category_id = new_category(platform, org.ctx("admin"))
    thread_id, post_id = new_thread(platform, org.ctx("member"), category_id)
    filed_so_far, facts = directive_ids(platform), signal_ids(platform)
    admin_only = [
        ("forum_create_category", {"slug": "news", "name": "News"}),
        ("forum_archive_category", {"category_id": str(category_id)}),
        ("forum_lock_thread", {"thread_id": str(thread_id)}),
        ("forum_unlock_thread", {"thread_id": str(thread_id)}),
        ("forum_hide_post", {"post_id": str(post_id)}),
        ("forum_unhide_post", {"post_id": str(post_id)}),
        ("forum_delete_post", {"post_id": str(post_id)}),
    ]
    for ctx in (org.ctx("member"), org.ctx("member", kind="agent")):
        for name, arguments in admin_only:
            with pytest.raises(Forbidden, match=f"{name} needs the admin role; you are member"):
                call(platform, ctx, name, **arguments)
    assert directive_ids(platform) == filed_so_far
    assert signal_ids(platform) == facts
    assert thread_of(platform, org.ctx("member"), thread_id).thread.status == "open"


def test_a_reply_filed_before_a_lock_fails_when_it_runs(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    with queued(platform):
        late = call(platform, member, "forum_reply", thread_id=str(thread_id), content="too late")
        double_click = call(platform, member, "forum_reply", thread_id=str(thread_id), content="too late")
        assert (double_click.directive_id, double_click.created) == (late.directive_id, False)
        lock = call(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
        assert (late.status, lock.status) == ("requested", "requested")
        assert run(platform, lock.directive_id).status == "succeeded"
        failed = run(platform, late.directive_id)
    assert (failed.status, failed.attempt) == ("failed", 1)
    assert f"thread {thread_id} is locked" in failed.last_error
    view = call(platform, member, "directive_get", directive_id=str(late.directive_id))
    assert view.status == "failed" and "locked" in view.error and view.result is None
    assert thread_of(platform, member, thread_id).thread.post_count == 1
    [fact] = platform.ledger.signals(
        "acme", SignalFilter(name="directive.failed", subject_type="directive", subject_id=str(late.directive_id))
    )[0]
    assert fact.payload["will_retry"] is False and "locked" in fact.payload["error"]


def test_a_role_lost_between_filing_and_running_fails_the_directive(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    with queued(platform):
        lock = call(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
        answer = call(platform, member, "forum_reply", thread_id=str(thread_id), content="gone soon")
        set_membership(platform.db, org.ref.id, org.users["admin"], role="member")
        set_membership(platform.db, org.ref.id, org.users["member"], status="disabled")
        demoted, disabled = run(platform, lock.directive_id), run(platform, answer.directive_id)
    assert demoted.status == "failed" and demoted.last_error.startswith("forbidden")
    assert "now member" in demoted.last_error and "needs admin" in demoted.last_error
    assert disabled.status == "failed" and disabled.last_error.startswith("forbidden")
    assert "not an active member" in disabled.last_error
    detail = thread_of(platform, org.ctx("owner"), thread_id)
    assert (detail.thread.status, len(detail.posts)) == ("open", 1)
    assert signal_names(platform, name="forum.thread.locked") == []
    with pytest.raises(Forbidden, match="you are member"):
        call(platform, admin, "forum_lock_thread", thread_id=str(thread_id))


def test_one_correlation_id_runs_from_request_to_audit_timeline(platform: Platform, org: Org) -> None:
    category_id = new_category(platform, org.ctx("admin"))
    member_id = str(org.users["member"])
    ctx = org.ctx("member", correlation_id="corr-forum-1")
    receipt = call(
        platform,
        ctx,
        "forum_create_thread",
        category_id=str(category_id),
        title="Traced",
        content="Follow me",
        wait_seconds=5,
    )
    assert (receipt.status, receipt.finished, receipt.created, receipt.error) == ("succeeded", True, True, None)
    assert receipt.subject.model_dump() == {"type": "forum.category", "id": str(category_id)}
    assert receipt.summary == "start thread 'Traced' - done"
    thread_id, post_id = receipt.result["thread_id"], receipt.result["post_id"]
    detail = thread_of(platform, org.ctx("owner"), uuid.UUID(thread_id))
    assert (detail.thread.title, [p.content for p in detail.posts]) == ("Traced", ["Follow me"])
    assert str(detail.posts[0].id) == post_id

    traced, _ = platform.ledger.signals("acme", SignalFilter(correlation_id="corr-forum-1"), limit=500)
    assert sorted(s.name for s in traced) == [
        "directive.requested",
        "directive.started",
        "directive.succeeded",
        "forum.post.created",
        "forum.thread.created",
    ]
    by_name = {s.name: s for s in traced}
    for name in ("forum.thread.created", "forum.post.created"):
        fact = by_name[name]
        assert (fact.causation_id, fact.actor_id, fact.actor_type) == (str(receipt.directive_id), member_id, "user")
    assert (by_name["forum.thread.created"].subject_type, by_name["forum.thread.created"].subject_id) == (
        "forum.thread",
        thread_id,
    )
    assert by_name["forum.post.created"].subject_id == post_id
    assert "content" not in by_name["forum.post.created"].payload  # facts never carry post text

    timeline = call(platform, ctx, "audit_timeline", subject_type="forum.thread", subject_id=thread_id)
    assert timeline.next_cursor is None
    assert [(e.kind, e.name, e.id) for e in timeline.entries] == [
        ("directive", "forum.thread.create", receipt.directive_id),
        ("signal", "forum.thread.created", by_name["forum.thread.created"].id),
    ]
    assert [e.at for e in timeline.entries] == sorted(e.at for e in timeline.entries)
    assert {(e.correlation_id, e.actor_id) for e in timeline.entries} == {("corr-forum-1", member_id)}
    assert timeline.entries[0].status == "succeeded" and timeline.entries[0].payload["content"] == "Follow me"

    own = call(platform, ctx, "audit_timeline", subject_type="directive", subject_id=str(receipt.directive_id))
    assert [(e.name, e.actor_id) for e in own.entries] == [
        ("forum.thread.create", member_id),
        ("directive.requested", member_id),
        ("directive.started", "system:runner"),
        ("directive.succeeded", "system:runner"),
    ]
    assert {e.correlation_id for e in own.entries} == {"corr-forum-1"}
    assert [e.at for e in own.entries] == sorted(e.at for e in own.entries)
    post = call(platform, ctx, "audit_timeline", subject_type="forum.post", subject_id=post_id)
    assert [(e.kind, e.name, e.correlation_id) for e in post.entries] == [
        ("directive", "forum.thread.create", "corr-forum-1"),
        ("signal", "forum.post.created", "corr-forum-1"),
    ]


def test_lock_unlock_lock_and_hide_unhide_hide_each_run(platform: Platform, org: Org) -> None:
    admin = org.ctx("admin")
    thread_id, post_id = new_thread(platform, org.ctx("member"), new_category(platform, admin))
    steps = [
        done(platform, admin, name, thread_id=str(thread_id))
        for name in ("forum_lock_thread", "forum_unlock_thread", "forum_lock_thread")
    ]
    steps += [
        done(platform, admin, name, post_id=str(post_id))
        for name in ("forum_hide_post", "forum_unhide_post", "forum_hide_post")
    ]
    assert all(step.created for step in steps)
    assert len({step.directive_id for step in steps}) == 6
    assert [step.result["changed"] for step in steps] == [True] * 6
    detail = thread_of(platform, admin, thread_id)
    assert (detail.thread.status, detail.posts[0].status) == ("locked", "hidden")
    assert signal_names(platform, subject_type="forum.thread", subject_id=str(thread_id)) == [
        "forum.thread.created",
        "forum.thread.locked",
        "forum.thread.unlocked",
        "forum.thread.locked",
    ]
    assert signal_names(platform, subject_type="forum.post", subject_id=str(post_id)) == [
        "forum.post.created",
        "forum.post.hidden",
        "forum.post.unhidden",
        "forum.post.hidden",
    ]


def test_idempotency_keys_return_the_original_receipt(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, first = new_thread(platform, member, new_category(platform, admin))
    arguments = {"thread_id": str(thread_id), "content": "exactly once", "idempotency_key": "reply-1"}
    original = done(platform, member, "forum_reply", **arguments)
    assert (original.created, original.idempotency_key) == (True, "reply-1")
    repeat = done(platform, member, "forum_reply", **arguments)
    assert (repeat.directive_id, repeat.created, repeat.result) == (original.directive_id, False, original.result)
    assert repeat.summary.startswith("already filed: ")
    done(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
    after_lock = call(platform, member, "forum_reply", **arguments)  # the thread is locked now: still no error
    assert (after_lock.directive_id, after_lock.created, after_lock.status) == (
        original.directive_id,
        False,
        "succeeded",
    )
    filed_so_far = directive_ids(platform)
    with pytest.raises(IdempotencyKeyReused, match="'reply-1' was already used for a different request"):
        call(platform, member, "forum_reply", **{**arguments, "content": "something else"})
    with pytest.raises(IdempotencyKeyReused, match="reply-1"):
        call(platform, member, "forum_edit_post", post_id=str(first), content="exactly once", idempotency_key="reply-1")
    with pytest.raises(InvalidInput, match="reserved"):
        call(platform, member, "forum_edit_post", post_id=str(first), content="x", idempotency_key="auto:mine")
    with pytest.raises(InvalidInput, match="idempotency_key"):
        call(platform, member, "forum_edit_post", post_id=str(first), content="x", idempotency_key="   ")
    assert directive_ids(platform) == filed_so_far
    assert thread_of(platform, member, thread_id).thread.post_count == 2


def test_hidden_and_deleted_posts_are_redacted_for_members(platform: Platform, org: Org) -> None:
    admin, member, owner = org.ctx("admin"), org.ctx("member"), org.ctx("owner")
    thread_id, _ = new_thread(platform, owner, new_category(platform, admin), title="Zoo", content="Opening words")
    hidden = reply(platform, member, thread_id, "zebras are striped")
    deleted = reply(platform, owner, thread_id, "giraffes are tall")
    done(platform, admin, "forum_hide_post", post_id=str(hidden))
    done(platform, admin, "forum_delete_post", post_id=str(deleted))

    seen_by_member = posts_of(platform, member, thread_id)
    assert seen_by_member[hidden] == ("hidden", HIDDEN, True)
    assert seen_by_member[deleted] == ("deleted", DELETED, True)
    for moderator in (admin, owner):
        seen = posts_of(platform, moderator, thread_id)
        assert seen[hidden] == ("hidden", "zebras are striped", False)
        assert seen[deleted] == ("deleted", "giraffes are tall", False)
    assert thread_of(platform, member, thread_id).thread.post_count == 1

    assert hits(platform, member, "zebras") == [] and hits(platform, member, "giraffes") == []
    assert hits(platform, admin, "zebras") == [("post", hidden)]
    [admin_hit] = call(platform, admin, "forum_search", query="giraffes").hits
    assert (admin_hit.status, admin_hit.snippet) == ("deleted", "giraffes are tall")
    assert hits(platform, member, "opening") != []

    # The audit trail: someone else's request text is not shown to a member; its requester and admins see it.
    member_reply = call(platform, member, "directive_list", type="forum.post.create", subject_id=str(thread_id))
    by_author = {d.requested_by: d.id for d in member_reply.items}
    owners_reply, members_reply = by_author[str(org.users["owner"])], by_author[str(org.users["member"])]
    assert call(platform, member, "directive_get", directive_id=str(owners_reply)).payload["content"] == REDACTED
    assert (
        call(platform, owner, "directive_get", directive_id=str(owners_reply)).payload["content"] == "giraffes are tall"
    )
    assert (
        call(platform, admin, "directive_get", directive_id=str(owners_reply)).payload["content"] == "giraffes are tall"
    )
    assert call(platform, member, "directive_get", directive_id=str(members_reply)).payload["content"] == (
        "zebras are striped"
    )
    listed = {d.id: d.payload["content"] for d in member_reply.items}
    assert listed == {owners_reply: REDACTED, members_reply: "zebras are striped"}

    def texts(ctx: RequestContext, subject_type: str, subject_id: uuid.UUID) -> list[str]:
        page = call(platform, ctx, "audit_timeline", subject_type=subject_type, subject_id=str(subject_id))
        return [e.payload["content"] for e in page.entries if e.kind == "directive" and "content" in e.payload]

    assert texts(member, "forum.post", deleted) == [REDACTED]
    assert texts(owner, "forum.post", deleted) == ["giraffes are tall"]
    assert texts(admin, "forum.post", deleted) == ["giraffes are tall"]
    assert texts(member, "forum.thread", thread_id) == [REDACTED, "zebras are striped", REDACTED]


def test_deleting_a_post_is_high_impact_for_agents(platform: Platform, org: Org) -> None:
    member = org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, org.ctx("admin")))
    first, second = reply(platform, member, thread_id, "one"), reply(platform, member, thread_id, "two")
    agent = org.ctx("admin", kind="agent")
    waiting = call(platform, agent, "forum_delete_post", post_id=str(first), wait_seconds=5)
    assert (waiting.status, waiting.finished, waiting.result) == ("awaiting_approval", False, None)
    assert "approve" in waiting.summary
    assert posts_of(platform, member, thread_id)[first] == ("published", "one", False)
    assert signal_names(platform, name="forum.post.deleted") == []
    with pytest.raises(Forbidden, match="only a person"):
        platform.ledger.approve(agent, waiting.directive_id)
    platform.ledger.approve(org.ctx("owner"), waiting.directive_id)
    final = call(platform, member, "directive_get", directive_id=str(waiting.directive_id), wait_seconds=5)
    assert (final.status, final.decided_by, final.requested_by_type) == ("succeeded", str(org.users["owner"]), "agent")
    assert posts_of(platform, member, thread_id)[first] == ("deleted", DELETED, True)
    # Moderation that destroys nothing runs at once for an agent, and a person deleting needs no second person.
    by_agent = reply(platform, org.ctx("member", kind="agent"), thread_id, "written by an assistant")
    [(author_type, author_id)] = [
        (p.author_type, p.author_id) for p in thread_of(platform, member, thread_id).posts if p.id == by_agent
    ]
    assert (author_type, author_id) == ("agent", str(org.users["member"]))
    assert done(platform, agent, "forum_hide_post", post_id=str(second)).result["status"] == "hidden"
    direct = done(platform, org.ctx("admin"), "forum_delete_post", post_id=str(second))
    assert direct.result["status"] == "deleted"
    assert signal_names(platform, name="forum.post.deleted") == ["forum.post.deleted", "forum.post.deleted"]


def test_another_tenants_ids_are_not_found_through_every_tool(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category_id = new_category(platform, admin)
    thread_id, post_id = new_thread(platform, member, category_id, title="Acme secrets", content="acme only")
    with queued(platform):
        pending_reply = call(platform, member, "forum_reply", thread_id=str(thread_id), content="pending").directive_id
    finished = directive_ids(platform)[-1]  # the oldest: the category's creation
    globex = make_org(platform, "globex")
    acme_directives, acme_facts = directive_ids(platform), signal_ids(platform)
    outsider = globex.ctx("owner")
    category, thread, post = str(category_id), str(thread_id), str(post_id)
    not_found = [
        ("forum_list_threads", {"category_id": category}),
        ("forum_get_thread", {"thread_id": thread}),
        ("forum_create_thread", {"category_id": category, "title": "t", "content": "c"}),
        ("forum_archive_category", {"category_id": category}),
        ("forum_reply", {"thread_id": thread, "content": "c"}),
        ("forum_edit_post", {"post_id": post, "content": "c"}),
        ("forum_lock_thread", {"thread_id": thread}),
        ("forum_unlock_thread", {"thread_id": thread}),
        ("forum_hide_post", {"post_id": post}),
        ("forum_unhide_post", {"post_id": post}),
        ("forum_delete_post", {"post_id": post}),
        ("directive_get", {"directive_id": str(finished)}),
        ("directive_cancel", {"directive_id": str(pending_reply)}),
        ("directive_rerun", {"directive_id": str(finished)}),
    ]
    for name, arguments in not_found:
        with pytest.raises(NotFound):
            call(platform, outsider, name, **arguments)
    assert call(platform, outsider, "forum_list_categories").items == []
    assert call(platform, outsider, "forum_list_threads").items == []
    assert call(platform, outsider, "forum_search", query="acme secrets").hits == []
    assert call(platform, outsider, "directive_list").items == []
    assert call(platform, outsider, "directive_list", subject_type="forum.thread", subject_id=thread).items == []
    for subject_type, subject_id in [
        ("forum.category", category),
        ("forum.thread", thread),
        ("forum.post", post),
        ("directive", str(finished)),
    ]:
        with pytest.raises(NotFound, match="has any history"):
            call(platform, outsider, "audit_timeline", subject_type=subject_type, subject_id=subject_id)
    # Naming acme as the organization does not help either: the tenant comes from the membership.
    intruder = RequestContext(org=org.ref, actor=outsider.actor)
    with pytest.raises(Forbidden, match="not an active member"):
        call(platform, intruder, "forum_get_thread", thread_id=thread)
    assert directive_ids(platform, "globex") == [] and signal_ids(platform, "globex") == []
    assert directive_ids(platform) == acme_directives and signal_ids(platform) == acme_facts
    assert platform.ledger.get("acme", pending_reply).status == "requested"


def test_input_limits_are_enforced_before_anything_is_filed(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category_id = new_category(platform, admin)
    thread_id, post_id = new_thread(platform, member, category_id)
    category, thread, post = str(category_id), str(thread_id), str(post_id)
    filed_so_far, facts = directive_ids(platform), signal_ids(platform)
    refused = [
        ("forum_create_thread", {"category_id": category, "title": "x" * 201, "content": "c"}, "title"),
        ("forum_create_thread", {"category_id": category, "title": "", "content": "c"}, "title"),
        ("forum_create_thread", {"category_id": category, "title": " \t\n ", "content": "c"}, "title"),
        ("forum_create_thread", {"category_id": category, "title": "t", "content": ""}, "content"),
        ("forum_create_thread", {"category_id": category, "title": "t", "content": "x" * 20_001}, "content"),
        ("forum_reply", {"thread_id": thread, "content": ""}, "content"),
        ("forum_reply", {"thread_id": thread, "content": "   "}, "content"),
        ("forum_reply", {"thread_id": thread, "content": "x" * 20_001}, "content"),
        ("forum_edit_post", {"post_id": post, "content": "x" * 20_001}, "content"),
        ("forum_create_category", {"slug": "Bad Slug", "name": "n"}, "slug"),
        ("forum_create_category", {"slug": "-x", "name": "n"}, "slug"),
        ("forum_create_category", {"slug": "x-", "name": "n"}, "slug"),
        ("forum_create_category", {"slug": "", "name": "n"}, "slug"),
        ("forum_create_category", {"slug": "a" * 65, "name": "n"}, "slug"),
        ("forum_create_category", {"slug": "ok", "name": " "}, "name"),
        ("forum_reply", {"thread_id": thread, "content": "c", "author_id": str(org.users["owner"])}, "author_id"),
        ("forum_create_thread", {"category_id": category, "title": "t", "content": "c", "tenant": "globex"}, "tenant"),
        ("forum_create_category", {"slug": "ok", "name": "n", "organization": "globex"}, "organization"),
        ("forum_lock_thread", {"thread_id": "not-a-uuid"}, "thread_id"),
        ("forum_reply", {"content": "c"}, "thread_id"),
        ("forum_reply", {"thread_id": thread, "content": "c", "wait_seconds": 31}, "wait_seconds"),
        ("forum_reply", {"thread_id": thread, "content": "c", "idempotency_key": ""}, "idempotency_key"),
        ("forum_list_threads", {"limit": 0}, "limit"),
        ("forum_list_threads", {"limit": 101}, "limit"),
        ("forum_list_threads", {"status": "closed"}, "status"),
        ("forum_list_threads", {"cursor": "garbage"}, "cursor"),
        ("forum_get_thread", {"thread_id": thread, "cursor": "garbage"}, "cursor"),
        ("forum_list_categories", {"org": "globex"}, "org"),
        ("forum_search", {"query": ""}, "query"),
        ("forum_search", {"query": "x" * 201}, "query"),
        ("forum_search", {"query": "!!!"}, "at least one word"),
    ]
    for name, arguments, field in refused:
        ctx = admin if name in ("forum_create_category", "forum_lock_thread") else member
        with pytest.raises(InvalidInput, match=field):
            call(platform, ctx, name, **arguments)
    assert directive_ids(platform) == filed_so_far and signal_ids(platform) == facts

    longest_title, longest_post = "T" * 200, "p" * 20_000
    longest, first = new_thread(platform, member, category_id, title=longest_title, content=longest_post)
    answer = reply(platform, member, longest, "q" * 20_000)
    detail = thread_of(platform, member, longest)
    assert detail.thread.title == longest_title
    assert [(p.id, len(p.content)) for p in detail.posts] == [(first, 20_000), (answer, 20_000)]
    assert new_category(platform, admin, slug="a" * 64) != category_id


def test_thread_lists_and_posts_paginate(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category_id = new_category(platform, admin)
    created = [new_thread(platform, member, category_id, title=f"Thread {i}")[0] for i in range(5)]
    for thread_id in (created[1], created[3]):
        done(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
    elsewhere, _ = new_thread(platform, member, new_category(platform, admin, slug="other"))

    pages, cursor = [], None
    while True:
        page = call(platform, member, "forum_list_threads", category_id=str(category_id), limit=2, cursor=cursor)
        pages.append([t.id for t in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [t for p in pages for t in p] == list(reversed(created))

    def listed(**arguments: object) -> list[uuid.UUID]:
        return [t.id for t in call(platform, member, "forum_list_threads", **arguments).items]

    assert listed(category_id=str(category_id), status="locked") == [created[3], created[1]]
    assert listed(category_id=str(category_id), status="open") == [created[4], created[2], created[0]]
    assert listed() == [elsewhere, *reversed(created)]
    assert listed(status="archived") == []

    thread_id = created[0]
    answers = [reply(platform, member, thread_id, f"answer {i}") for i in range(4)]
    everything = [p.id for p in thread_of(platform, member, thread_id).posts]
    assert everything[1:] == answers and len(everything) == 5
    seen, cursor = [], None
    while True:
        page = thread_of(platform, member, thread_id, limit=2, cursor=cursor)
        assert page.thread.post_count == 5
        seen.append([p.id for p in page.posts])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in seen] == [2, 2, 1]
    assert [p for page in seen for p in page] == everything


def test_search_is_stemmed_ranked_and_limited(platform: Platform, org: Org) -> None:
    member = org.ctx("member")
    category_id = new_category(platform, org.ctx("admin"))
    policy, policy_post = new_thread(
        platform, member, category_id, title="Moderation policy", content="We are locking old threads"
    )
    garden, garden_post = new_thread(
        platform, member, category_id, title="Gardening", content="Growing tomatoes and tomato sauce with tomatoes"
    )
    weather = reply(platform, member, garden, "One tomato, and otherwise a long note about rain, wind and the weather")

    assert hits(platform, member, "locked") == [("post", policy_post)]
    assert hits(platform, member, "policies") == [("thread", policy)]
    assert hits(platform, member, "gardens") == [("thread", garden)]
    assert hits(platform, member, "tomato") == [("post", garden_post), ("post", weather)]
    assert hits(platform, member, "tomato", limit=1) == [("post", garden_post)]
    assert hits(platform, member, "tomatoes weather") == [("post", weather)]  # every word must match
    [hit] = call(platform, member, "forum_search", query="locked").hits
    assert (hit.thread_id, hit.title, hit.snippet, hit.status) == (
        policy,
        "Moderation policy",
        "We are locking old threads",
        "published",
    )
    assert hits(platform, member, "nothing-like-this") == []
    assert hits(platform, member, 'tomato") OR title:* NEAR(') == []  # search syntax is text, not operators
    assert hits(platform, member, '"tomato*"') == hits(platform, member, "tomato")
    with pytest.raises(InvalidInput, match="at least one word"):
        call(platform, member, "forum_search", query="!!!")
    # The index follows edits: the old words are gone, the new ones are found.
    done(platform, member, "forum_edit_post", post_id=str(policy_post), content="We are archiving old threads")
    assert hits(platform, member, "locked") == []
    assert hits(platform, member, "archived") == [("post", policy_post)]


def test_rerunning_a_finished_forum_directive_changes_nothing_more(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category_id = new_category(platform, admin)
    created = done(platform, member, "forum_create_thread", category_id=str(category_id), title="Once", content="Only")
    rerun = platform.ledger.rerun(admin, created.directive_id).directive
    assert (rerun.id, rerun.run_number) == (created.directive_id, 2)
    again = platform.ledger.get("acme", created.directive_id)
    assert (again.status, again.run_number, again.result) == ("succeeded", 2, created.result)
    [thread] = call(platform, member, "forum_list_threads").items
    assert str(thread.id) == created.result["thread_id"] and thread.post_count == 1
    assert signal_names(platform, name="forum.thread.created") == ["forum.thread.created"]
    assert signal_names(platform, name="forum.post.created") == ["forum.post.created"]

    lock = done(platform, admin, "forum_lock_thread", thread_id=str(thread.id))
    platform.ledger.rerun(admin, lock.directive_id)
    relocked = platform.ledger.get("acme", lock.directive_id)
    assert (relocked.status, relocked.run_number) == ("succeeded", 2)
    assert relocked.result == {"thread_id": str(thread.id), "status": "locked", "changed": False}
    assert signal_names(platform, name="forum.thread.locked") == ["forum.thread.locked"]
    assert (
        signal_names(platform, subject_type="directive", subject_id=str(lock.directive_id)).count("directive.succeeded")
        == 2
    )


def test_review_fixes_slugs_keys_hidden_edits_and_search_limits(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    category = done(platform, admin, "forum_create_category", slug=" News ", name="News")
    assert category.result["slug"] == "news"  # lowercased before the pattern is checked
    thread_id, first_post = new_thread(platform, member, uuid.UUID(category.result["category_id"]))

    # An idempotency key belongs to its requester: another member repeating it is refused, not served.
    mine = call(platform, member, "forum_reply", thread_id=str(thread_id), content="same", idempotency_key="k-1")
    with pytest.raises(IdempotencyKeyReused, match="another requester"):
        call(platform, admin, "forum_reply", thread_id=str(thread_id), content="same", idempotency_key="k-1")
    again = call(platform, member, "forum_reply", thread_id=str(thread_id), content="same", idempotency_key="k-1")
    assert (again.directive_id, again.created) == (mine.directive_id, False)

    # A post hidden by a moderator can no longer be edited by its author; an admin still can.
    done(platform, admin, "forum_hide_post", post_id=str(first_post))
    with pytest.raises(InvalidState, match="hidden by a moderator"):
        call(platform, member, "forum_edit_post", post_id=str(first_post), content="sneaky")
    done(platform, admin, "forum_edit_post", post_id=str(first_post), content="edited by admin")

    # Hidden matches never crowd out visible ones, even when they rank higher (more occurrences of the word).
    hidden = [reply(platform, member, thread_id, f"zebra zebra zebra {i}") for i in range(6)]
    for post_id in hidden:
        done(platform, admin, "forum_hide_post", post_id=str(post_id))
    visible = [reply(platform, member, thread_id, f"zebra stripes {i}") for i in range(2)]
    assert sorted(i for _, i in hits(platform, member, "zebra", limit=2)) == sorted(visible)
    assert len(hits(platform, admin, "zebra", limit=10)) == 8


def test_a_rerun_reply_answers_with_its_post_even_once_the_thread_is_locked(platform: Platform, org: Org) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    first = done(platform, member, "forum_reply", thread_id=str(thread_id), content="Only once")
    done(platform, admin, "forum_lock_thread", thread_id=str(thread_id))
    platform.ledger.rerun(admin, first.directive_id)
    again = platform.ledger.get("acme", first.directive_id)
    assert (again.status, again.run_number, again.result) == ("succeeded", 2, first.result)
    assert list(posts_of(platform, member, thread_id)).count(uuid.UUID(first.result["post_id"])) == 1
    assert len(signal_ids(platform, name="forum.post.created")) == 2  # the thread's first post and this reply


def test_a_reply_attempt_whose_claim_was_taken_over_adds_nothing(
    platform: Platform, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    """The sweeper handed the claim to a new attempt, which made the post; the old attempt, finishing late, finds
    that post instead of adding another (no duplicate-key error), and its transaction rolls back."""
    admin, member = org.ctx("admin"), org.ctx("member")
    thread_id, _ = new_thread(platform, member, new_category(platform, admin))
    platform.ledger.dispatcher = NoDispatch()  # this test runs each attempt itself
    receipt = call(platform, member, "forum_reply", thread_id=str(thread_id), content="Late or not")
    stale = platform.ledger.claim("acme", receipt.directive_id)
    assert stale is not None and stale.lease_expires_at is not None
    platform.ledger.clock = lambda: stale.lease_expires_at + timedelta(seconds=1)
    assert [d.id for d in platform.ledger.reclaim_expired("acme")] == [receipt.directive_id]
    fresh = platform.ledger.claim("acme", receipt.directive_id)
    assert fresh is not None and fresh.attempt == 2
    finished = execute_directive(platform.ledger, "acme", fresh)
    assert finished is not None and finished.status == "succeeded"
    with caplog.at_level(logging.WARNING):
        assert execute_directive(platform.ledger, "acme", stale) is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "claim lost" in caplog.text
    assert len(posts_of(platform, member, thread_id)) == 2  # the first post and one reply
    assert platform.ledger.get("acme", receipt.directive_id).result == finished.result
    assert len(signal_ids(platform, name="forum.post.created")) == 2
