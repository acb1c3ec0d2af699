"""Edge cases found in review: retries of pending creations, NUL bytes, package history, vanished targets,
and unique-key races turned into conflicts (both backends)."""

from __future__ import annotations

import pytest
from conftest import Org
from sqlmodel import select
from support.forum import call, done, new_category, new_thread, queued, run, signal_names

from fleetprompt.db.rows import insert_unique
from fleetprompt.demo import demo_catalog
from fleetprompt.errors import Conflict, InvalidInput, InvalidState
from fleetprompt.models.forum import ForumCategory
from fleetprompt.platform import Platform
from fleetprompt.runner.catalog import publish_package


def test_retrying_a_pending_reply_returns_it_even_after_others_posted(platform: Platform, org: Org) -> None:
    member, owner = org.ctx("member"), org.ctx("owner")
    thread_id, _ = new_thread(platform, member, new_category(platform, org.ctx("admin")))
    with queued(platform):
        mine = call(platform, member, "forum_reply", thread_id=str(thread_id), content="my reply")
        theirs = call(platform, owner, "forum_reply", thread_id=str(thread_id), content="someone else")
        retry = call(platform, member, "forum_reply", thread_id=str(thread_id), content="my reply")
        assert (retry.directive_id, retry.created) == (mine.directive_id, False)
        for receipt in (mine, theirs):
            assert run(platform, receipt.directive_id).status == "succeeded"
    posts = call(platform, member, "forum_get_thread", thread_id=str(thread_id)).posts
    assert [p.content for p in posts] == ["First post", "my reply", "someone else"]
    # Once it has finished, the same words again are a new reply.
    again = done(platform, member, "forum_reply", thread_id=str(thread_id), content="my reply")
    assert again.created and again.directive_id != mine.directive_id


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("forum_create_category", {"slug": "x", "name": "a\x00b"}),
        ("forum_search", {"query": "a\x00"}),
        ("marketplace_install_package", {"slug": "community-starter", "config": {"k\x00": "v"}}),
        ("marketplace_search_packages", {"query": "a\x00"}),
        ("audit_timeline", {"subject_type": "forum.thread", "subject_id": "x\x00"}),
        ("directive_list", {"type": "a\x00"}),
    ],
)
def test_nul_characters_are_refused_as_invalid_input(platform: Platform, org: Org, tool: str, arguments: dict) -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        call(platform, org.ctx("admin"), tool, **arguments)
    assert platform.ledger.list("acme")[0] == []


def test_a_package_timeline_holds_every_install_and_its_facts(platform: Platform, org: Org) -> None:
    for spec in demo_catalog():
        publish_package(platform.db, spec)
    admin = org.ctx("admin")
    slug = "community-starter"
    done(platform, admin, "marketplace_install_package", slug=slug, version="1.0.0")
    done(platform, admin, "marketplace_upgrade_package", slug=slug)
    purge = done(platform, admin, "marketplace_uninstall_package", slug=slug, purge=True)
    done(platform, admin, "marketplace_install_package", slug=slug)
    timeline = call(platform, admin, "audit_timeline", subject_type="package", subject_id=slug).entries
    assert [(e.kind, e.name) for e in timeline] == [
        ("directive", "package.install"),
        ("signal", "package.installation.installed"),
        ("directive", "package.upgrade"),
        ("signal", "package.installation.upgraded"),
        ("directive", "package.uninstall"),
        ("signal", "package.installation.uninstalled"),
        ("directive", "package.install"),
        ("signal", "package.installation.installed"),
    ]
    # What purge removed is recorded on each category's own history too.
    # The upgrade dropped `help`; the purge removed the other three.
    assert signal_names(platform, name="forum.category.deleted") == ["forum.category.deleted"] * 4
    assert purge.result["removed"].count("forum_category:general") == 1


def test_targets_that_vanished_before_running_fail_clearly(platform: Platform, org: Org) -> None:
    for spec in demo_catalog():
        publish_package(platform.db, spec)
    admin = org.ctx("admin")
    done(platform, admin, "marketplace_install_package", slug="community-starter")
    with queued(platform):
        first = call(platform, admin, "marketplace_uninstall_package", slug="community-starter")
        second = call(platform, org.ctx("owner"), "marketplace_uninstall_package", slug="community-starter")
        assert run(platform, first.directive_id).status == "succeeded"
        failed = run(platform, second.directive_id)
    assert failed.status == "failed" and "not installed" in failed.last_error
    category = new_category(platform, admin, "old")
    done(platform, admin, "forum_archive_category", category_id=str(category))
    with pytest.raises(InvalidState, match="already archived"):
        call(platform, admin, "forum_archive_category", category_id=str(category))


def test_a_unique_key_taken_concurrently_is_a_conflict_and_the_transaction_survives(
    platform: Platform, org: Org
) -> None:
    new_category(platform, org.ctx("admin"), "taken")
    with platform.db.transaction("acme") as session:
        with pytest.raises(Conflict, match="already exists"):
            insert_unique(session, ForumCategory(slug="taken", name="Again"), "slug 'taken' already exists")
        insert_unique(session, ForumCategory(slug="free", name="Free"), "unused")
    with platform.db.reading("acme") as session:
        slugs = sorted(session.exec(select(ForumCategory.slug)).all())
    assert slugs == ["free", "taken"]
