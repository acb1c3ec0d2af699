"""Tenants: slug validation before storage, storage per tenant, isolation, tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import Org, make_org
from sqlalchemy import text
from sqlmodel import select

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.accounts.organizations import create_organization, get_organization, list_organizations
from fleetprompt.accounts.passwords import verify_password
from fleetprompt.accounts.tokens import InvalidToken, authenticate_token, create_token, hash_token, revoke_token
from fleetprompt.accounts.users import add_user
from fleetprompt.db.tenancy import schema_name
from fleetprompt.errors import Conflict, Forbidden, InvalidInput, NotFound
from fleetprompt.ledger import SignalFilter, emit
from fleetprompt.ledger.signals import SignalDraft
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Directive, Signal
from fleetprompt.models.tenancy import ApiToken, User
from fleetprompt.platform import Platform

BAD_SLUGS = ["../x", "A", "a_b", "a" * 41, "x; DROP TABLE organizations", "acme'--", "", "-a", "a-", "a--b", "a b"]


def storage_exists(platform: Platform, slug: str) -> bool:
    if platform.db.is_postgres:
        with platform.db.engine.connect() as connection:
            return (
                connection.execute(
                    text("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'org\\_%'")
                ).scalar_one()
                > 0
            )
    return any(Path(platform.settings.tenants_dir).iterdir())


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_bad_slugs_are_rejected_before_storage(platform: Platform, slug: str) -> None:
    with pytest.raises(InvalidInput, match="slug"):
        create_organization(platform.db, slug, "X")
    assert list_organizations(platform.db) == []
    assert not storage_exists(platform, slug)


def test_slug_limits_are_exact(platform: Platform) -> None:
    create_organization(platform.db, "a" * 40, "Forty")
    assert schema_name("acme-labs") == "org_acme_labs"
    with pytest.raises(Conflict, match="already exists"):
        create_organization(platform.db, "a" * 40, "Again")
    with pytest.raises(InvalidInput, match="tier"):
        create_organization(platform.db, "tiered", "T", tier="platinum")
    with pytest.raises(InvalidInput, match="name"):
        create_organization(platform.db, "nameless", "  ")
    assert [o.slug for o in list_organizations(platform.db)] == ["a" * 40]


def test_creating_an_org_creates_its_storage(platform: Platform) -> None:
    create_organization(platform.db, "acme-labs", "Acme Labs")
    if platform.db.is_postgres:
        with platform.db.engine.connect() as connection:
            tables = set(
                connection.execute(
                    text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'org_acme_labs'")
                ).scalars()
            )
        assert {"signals", "directives", "signal_deliveries", "alembic_version"} <= tables
    else:
        assert (platform.settings.tenants_dir / "acme-labs.db").exists()
    assert platform.ledger.list("acme-labs")[0] == []


def test_a_tenant_session_sees_only_its_own_rows(platform: Platform) -> None:
    acme, globex = make_org(platform, "acme"), make_org(platform, "globex")
    a = platform.ledger.file(acme.ctx(), "test.effect", {"label": "acme-only"}).directive
    b = platform.ledger.file(globex.ctx(), "test.effect", {"label": "globex-only"}).directive
    with platform.db.transaction("globex") as session:
        labels = {d.payload["label"] for d in session.exec(select(Directive)).all()}
        signal_subjects = {s.subject_id for s in session.exec(select(Signal)).all()}
        assert session.get(Directive, a.id) is None
    assert labels == {"globex-only"}
    assert str(a.id) not in signal_subjects
    # Reads and writes by id from the other tenant: not found, and nothing changes.
    with pytest.raises(NotFound):
        platform.ledger.get("globex", a.id)
    with pytest.raises(NotFound):
        platform.ledger.rerun(globex.ctx(), a.id)
    assert platform.ledger.get("acme", a.id).run_number == 1
    entries, _ = platform.ledger.timeline("globex", "directive", str(a.id))
    assert entries == []
    # A context naming acme for a globex user (which authentication never builds) is refused by role checks.
    forged = RequestContext(org=acme.ref, actor=Actor.user(globex.users["owner"], "test"))
    with pytest.raises(Forbidden, match="not an active member"):
        platform.ledger.file(forged, "test.effect", {"label": "sneaky"})
    with pytest.raises(Forbidden):
        platform.ledger.rerun(forged, a.id)
    # Writes stay in their own storage.
    with platform.db.transaction("acme") as session:
        emit(session, SignalDraft(name="test.only.acme", source="t", dedupe_key="same-key"))
    with platform.db.transaction("globex") as session:
        emit(session, SignalDraft(name="test.only.globex", source="t", dedupe_key="same-key"))
    assert [s.name for s in platform.ledger.signals("acme", SignalFilter(name="test.only.*"))[0]] == ["test.only.acme"]
    assert [s.name for s in platform.ledger.signals("globex", SignalFilter(name="test.only.*"))[0]] == [
        "test.only.globex"
    ]
    if platform.db.is_postgres:
        with platform.db.engine.connect() as connection:
            assert (
                connection.execute(
                    text("SELECT count(*) FROM org_acme.directives WHERE id = :i"), {"i": b.id}
                ).scalar_one()
                == 0
            )


def test_unknown_tenant_storage_is_never_created_on_read(platform: Platform) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the backend's own "does not exist" error
        platform.ledger.list("ghost")
    assert not storage_exists(platform, "ghost")


def test_passwords_are_hashed_and_emails_unique(platform: Platform, org: Org) -> None:
    with platform.db.transaction() as session:
        user = session.exec(select(User).where(User.email == "owner@acme.test")).one()
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, "password-123")
    assert not verify_password(user.password_hash, "password-124")
    with pytest.raises(Conflict, match="duplicate email"):
        add_user(platform.db, "OWNER@acme.test", "acme", "member", "password-123")
    with pytest.raises(InvalidInput, match="at least 8"):
        add_user(platform.db, "short@acme.test", "acme", "member", "short")
    with pytest.raises(InvalidInput, match="email"):
        add_user(platform.db, "not-an-email", "acme", "member", "password-123")
    with pytest.raises(InvalidInput, match="role"):
        add_user(platform.db, "r@acme.test", "acme", "boss", "password-123")
    make_org(platform, "globex")
    added = add_user(platform.db, "owner@acme.test", "globex", "member", "other-password")  # same person, 2nd org
    assert not added.created and added.generated_password is None
    with platform.db.transaction() as session:
        again = session.exec(select(User).where(User.email == "owner@acme.test")).one()
    assert verify_password(again.password_hash, "password-123")  # an existing user's password never changes here
    fresh = add_user(platform.db, "new@acme.test", "acme", "member")
    assert fresh.created and fresh.generated_password and len(fresh.generated_password) >= 16


def test_tokens_are_stored_hashed_and_checked(platform: Platform, org: Org) -> None:
    token = create_token(platform.db, "acme", "admin@acme.test", label="laptop")
    assert token.startswith("fp_") and len(token) > 40
    with platform.db.transaction() as session:
        row = session.exec(select(ApiToken)).one()
    assert row.token_hash == hash_token(token) and token not in row.token_hash
    assert row.prefix == token[:8] and row.label == "laptop"
    identity = authenticate_token(platform.db, token)
    assert (identity.org.slug, identity.user_id, identity.role.value) == ("acme", org.users["admin"], "admin")
    with platform.db.transaction() as session:
        assert session.get(ApiToken, row.id).last_used_at is not None
    for bad, reason in ((None, "missing"), ("nope", "malformed"), ("fp_" + "x" * 40, "unknown")):
        with pytest.raises(InvalidToken, match=reason):
            authenticate_token(platform.db, bad)
    with pytest.raises(InvalidToken, match="expired"):
        expiring = create_token(platform.db, "acme", "admin@acme.test", expires_at=utcnow() - timedelta(seconds=1))
        authenticate_token(platform.db, expiring)
    revoke_token(platform.db, row.id)
    with pytest.raises(InvalidToken, match="revoked"):
        authenticate_token(platform.db, token)
    with pytest.raises(NotFound):
        create_token(platform.db, "acme", "nobody@acme.test")
    with pytest.raises(NotFound):
        revoke_token(platform.db, uuid.uuid4())


def test_reads_do_not_wait_for_a_writer(platform: Platform, org: Org) -> None:
    """A read-only transaction takes no write lock (SQLite: plain BEGIN), so it runs while a writer holds one."""
    import threading

    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with platform.ledger.transaction("acme") as session:
            emit(session, SignalDraft(name="test.held.write", source="t", dedupe_key="held"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(10)
        rows, _ = platform.ledger.list("acme")
        signals, _ = platform.ledger.signals("acme", SignalFilter(name="test.held.write"))
        assert rows == [] and signals == []  # the writer has not committed yet
        assert get_organization(platform.db, "acme").slug == "acme"
    finally:
        release.set()
        thread.join()
    assert len(platform.ledger.signals("acme", SignalFilter(name="test.held.write"))[0]) == 1


def test_many_tenants_each_with_their_own_storage(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond SQLite's ATTACH limit (10) and the engine cache, every tenant stays usable and separate."""
    monkeypatch.setattr("fleetprompt.db.engine.SQLITE_ENGINE_CACHE", 5)
    slugs = [f"tenant-{i}" for i in range(24)]
    for slug in slugs:
        create_organization(platform.db, slug, slug)
        with platform.ledger.transaction(slug) as session:
            emit(session, SignalDraft(name="test.tenant.hello", source="t", dedupe_key="hello", payload={"org": slug}))
    for slug in reversed(slugs):
        rows, _ = platform.ledger.signals(slug, SignalFilter(name="test.tenant.hello"))
        assert [r.payload["org"] for r in rows] == [slug]
