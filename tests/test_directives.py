"""Directive semantics: filing, idempotency, lifecycle, retries, approvals, roles (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
from conftest import Org, run_concurrently
from sqlmodel import select

from fleetprompt.accounts.users import set_membership
from fleetprompt.errors import Forbidden, IdempotencyKeyReused, InvalidInput, InvalidState, NotFound
from fleetprompt.ledger import DirectiveFilter, SignalFilter
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Directive, Signal
from fleetprompt.platform import Platform


def signal_names(platform: Platform, directive_id: uuid.UUID) -> list[str]:
    rows, _ = platform.ledger.signals(
        "acme", SignalFilter(subject_type="directive", subject_id=str(directive_id)), limit=500
    )
    return [s.name for s in rows]


def effects(platform: Platform, directive_id: uuid.UUID) -> int:
    with platform.db.transaction("acme") as session:
        rows = session.exec(
            select(Signal).where(Signal.name == "test.effect.applied", Signal.causation_id == str(directive_id))
        ).all()
    return len(rows)


class FrozenClock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(platform: Platform) -> FrozenClock:
    frozen = FrozenClock()
    platform.ledger.clock = frozen
    return frozen


def test_filing_runs_and_records_every_step(platform: Platform, org: Org) -> None:
    ctx = org.ctx("member", correlation_id="corr-1")
    filed = platform.ledger.file(ctx, "test.effect", {"label": "one"})
    assert filed.created
    directive = platform.ledger.get("acme", filed.directive.id)
    assert directive.status == "succeeded"
    assert directive.result == {"label": "one", "attempt": 1}
    assert directive.requested_by == str(org.users["member"])
    assert (directive.subject_type, directive.subject_id) == ("test.subject", "one")
    assert signal_names(platform, directive.id) == ["directive.requested", "directive.started", "directive.succeeded"]
    rows, _ = platform.ledger.signals("acme", SignalFilter(correlation_id="corr-1"))
    assert {s.name for s in rows} == {
        "directive.requested",
        "directive.started",
        "directive.succeeded",
        "test.effect.applied",
    }
    applied = next(s for s in rows if s.name == "test.effect.applied")
    assert applied.causation_id == str(directive.id)
    assert applied.actor_id == str(org.users["member"])


def test_invalid_payload_and_unknown_type_write_nothing(platform: Platform, org: Org) -> None:
    with pytest.raises(InvalidInput, match="label"):
        platform.ledger.file(org.ctx(), "test.effect", {"label": ""})
    with pytest.raises(InvalidInput, match="unknown directive type"):
        platform.ledger.file(org.ctx(), "no.such.type", {})
    with pytest.raises(InvalidInput, match=r"unknown field.*api_key"):
        platform.ledger.file(org.ctx(), "test.effect", {"label": "x", "api_key": "k"})
    assert platform.ledger.list("acme")[0] == []
    assert platform.ledger.signals("acme")[0] == []


def test_fifty_concurrent_filings_with_one_key_make_one_directive(platform: Platform, org: Org) -> None:
    results = run_concurrently(
        50,
        lambda: platform.ledger.file(org.ctx("member"), "test.effect", {"label": "k"}, idempotency_key="key-1"),
    )
    results = [(filed.directive.id, filed.created) for filed in results]
    assert len({directive_id for directive_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    rows, _ = platform.ledger.list("acme")
    assert len(rows) == 1
    assert effects(platform, rows[0].id) == 1
    assert signal_names(platform, rows[0].id).count("directive.requested") == 1
    with pytest.raises(IdempotencyKeyReused, match="key-1"):
        platform.ledger.file(org.ctx("member"), "test.effect", {"label": "other"}, idempotency_key="key-1")
    with pytest.raises(IdempotencyKeyReused):
        platform.ledger.file(org.ctx("admin"), "test.admin_effect", {"label": "k"}, idempotency_key="key-1")


def test_same_key_same_args_returns_existing_whatever_its_state(platform: Platform, org: Org) -> None:
    first = platform.ledger.file(org.ctx(), "test.effect", {"label": "a"}, idempotency_key="k")
    again = platform.ledger.file(org.ctx(), "test.effect", {"label": "a"}, idempotency_key="k")
    assert again.directive.id == first.directive.id and not again.created
    assert again.directive.status == "succeeded"
    assert effects(platform, first.directive.id) == 1


def test_derived_key_allows_a_second_legitimate_action(platform: Platform, org: Org, clock: FrozenClock) -> None:
    # While pending, the same request is the same directive (a double click files once) ...
    pending = platform.ledger.file(org.ctx(), "test.effect", {"label": "lock"}, not_before=clock.now + timedelta(1))
    double = platform.ledger.file(org.ctx(), "test.effect", {"label": "lock"})
    assert double.directive.id == pending.directive.id and not double.created
    platform.ledger.cancel(org.ctx(), pending.directive.id)
    # ... once finished, the same arguments again (lock -> unlock -> lock) are a new directive that runs.
    lock = platform.ledger.file(org.ctx(), "test.effect", {"label": "lock"})
    unlock = platform.ledger.file(org.ctx(), "test.effect", {"label": "unlock"})
    lock_again = platform.ledger.file(org.ctx(), "test.effect", {"label": "lock"})
    assert lock_again.created and lock_again.directive.id not in {lock.directive.id, pending.directive.id}
    for filed in (lock, unlock, lock_again):
        assert platform.ledger.get("acme", filed.directive.id).status == "succeeded"
    # While pending too: lock, unlock, lock again on one subject must end locked, so the third is new.
    later = clock.now + timedelta(hours=1)
    on = platform.ledger.file(org.ctx(), "test.toggle", {"target": "t", "state": "on"}, not_before=later)
    off = platform.ledger.file(org.ctx(), "test.toggle", {"target": "t", "state": "off"}, not_before=later)
    on_again = platform.ledger.file(org.ctx(), "test.toggle", {"target": "t", "state": "on"}, not_before=later)
    assert on_again.created and on_again.directive.id not in {on.directive.id, off.directive.id}
    # Another user asking for the same thing is their own request.
    other = platform.ledger.file(org.ctx("member"), "test.effect", {"label": "lock"})
    assert other.created and other.directive.requested_by == str(org.users["member"])


def test_retries_back_off_until_max_attempts(
    platform: Platform, org: Org, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "flaky", "fail_times": 2})
    first = platform.ledger.get("acme", filed.directive.id)
    assert (first.status, first.attempt) == ("requested", 1)
    assert first.scheduled_at == clock.now + timedelta(seconds=2)
    # Unexpected errors are recorded by type and log reference only (their text may carry internals).
    assert first.last_error.startswith("internal error (RuntimeError); see the worker log, reference ")
    assert "transient failure" not in first.last_error
    reference = first.last_error.rsplit(" ", 1)[-1]
    assert any(reference in r.getMessage() and "transient failure" in str(r.exc_info[1]) for r in caplog.records)
    platform.runner.run_directive("acme", str(first.id))  # not due yet: nothing happens
    assert platform.ledger.get("acme", first.id).attempt == 1
    clock.advance(2)
    platform.runner.run_directive("acme", str(first.id))
    second = platform.ledger.get("acme", first.id)
    assert (second.status, second.attempt) == ("requested", 2)
    assert second.scheduled_at == clock.now + timedelta(seconds=4)
    clock.advance(4)
    platform.runner.run_directive("acme", str(first.id))
    done = platform.ledger.get("acme", first.id)
    assert (done.status, done.attempt, done.last_error) == ("succeeded", 3, None)
    assert signal_names(platform, done.id).count("directive.failed") == 2
    assert effects(platform, done.id) == 1


def test_retries_stop_at_max_attempts(platform: Platform, org: Org, clock: FrozenClock) -> None:
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "doomed", "fail_times": 10})
    for _ in range(5):
        clock.advance(3600)
        platform.runner.run_directive("acme", str(filed.directive.id))
    final = platform.ledger.get("acme", filed.directive.id)
    assert (final.status, final.attempt) == ("failed", 3)
    rows, _ = platform.ledger.signals(
        "acme", SignalFilter(name="directive.failed", subject_type="directive", subject_id=str(final.id))
    )
    assert [s.payload["will_retry"] for s in rows] == [True, True, False]
    assert effects(platform, final.id) == 0


def test_permanent_failure_does_not_retry(platform: Platform, org: Org) -> None:
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "never", "permanent": True})
    final = platform.ledger.get("acme", filed.directive.id)
    assert (final.status, final.attempt, final.last_error) == ("failed", 1, "never cannot be done")
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "clash", "conflict": True})
    final = platform.ledger.get("acme", filed.directive.id)
    assert (final.status, final.attempt) == ("failed", 1)
    assert final.last_error == "conflict: clash conflicts with the current state"


def test_a_handler_states_one_fact_per_subject(platform: Platform, org: Org) -> None:
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "multi", "touch": ["a", "b"]})
    assert platform.ledger.get("acme", filed.directive.id).status == "succeeded"
    touched, _ = platform.ledger.signals("acme", SignalFilter(name="test.item.touched"))
    assert sorted(s.subject_id for s in touched) == ["a", "b"]
    assert all(s.causation_id == str(filed.directive.id) for s in touched)


def test_scheduled_at_in_the_future_is_honoured(platform: Platform, org: Org, clock: FrozenClock) -> None:
    filed = platform.ledger.file(
        org.ctx(), "test.effect", {"label": "later"}, not_before=clock.now + timedelta(seconds=60)
    )
    assert platform.ledger.claim("acme", filed.directive.id) is None
    assert platform.ledger.get("acme", filed.directive.id).status == "requested"
    clock.advance(60)
    platform.runner.run_directive("acme", str(filed.directive.id))
    assert platform.ledger.get("acme", filed.directive.id).status == "succeeded"


def test_terminal_states_stay_terminal(platform: Platform, org: Org) -> None:
    done = platform.ledger.file(org.ctx(), "test.effect", {"label": "t"}).directive
    assert platform.ledger.claim("acme", done.id) is None
    platform.runner.run_directive("acme", str(done.id))
    with pytest.raises(InvalidState, match="succeeded"):
        platform.ledger.cancel(org.ctx(), done.id)
    with pytest.raises(InvalidState):
        platform.ledger.approve(org.ctx(), done.id)
    assert platform.ledger.get("acme", done.id).status == "succeeded"
    assert effects(platform, done.id) == 1


def test_rerun_keeps_id_and_key_and_needs_admin(platform: Platform, org: Org) -> None:
    done = platform.ledger.file(org.ctx("member"), "test.effect", {"label": "r"}, idempotency_key="rk").directive
    with pytest.raises(Forbidden, match="admin"):
        platform.ledger.rerun(org.ctx("member"), done.id)
    rerun = platform.ledger.rerun(org.ctx("admin"), done.id).directive
    assert (rerun.id, rerun.idempotency_key, rerun.run_number) == (done.id, "rk", 2)
    final = platform.ledger.get("acme", done.id)
    assert (final.status, final.run_number) == ("succeeded", 2)
    assert effects(platform, done.id) == 2
    assert signal_names(platform, done.id).count("directive.succeeded") == 2
    with pytest.raises(InvalidState):
        platform.ledger.rerun(
            org.ctx("admin"),
            platform.ledger.file(
                org.ctx(), "test.effect", {"label": "p"}, not_before=utcnow() + timedelta(1)
            ).directive.id,
        )


def test_cancel_by_requester_or_admin_only(platform: Platform, org: Org) -> None:
    later = utcnow() + timedelta(hours=1)
    mine = platform.ledger.file(org.ctx("member"), "test.effect", {"label": "c1"}, not_before=later).directive
    theirs = platform.ledger.file(org.ctx("admin"), "test.effect", {"label": "c2"}, not_before=later).directive
    with pytest.raises(Forbidden):
        platform.ledger.cancel(org.ctx("member"), theirs.id)
    assert platform.ledger.cancel(org.ctx("member"), mine.id).status == "canceled"
    assert platform.ledger.cancel(org.ctx("owner"), theirs.id).status == "canceled"
    assert platform.ledger.claim("acme", mine.id) is None
    assert signal_names(platform, mine.id) == ["directive.requested", "directive.canceled"]


def test_high_impact_from_an_agent_waits_for_a_person(platform: Platform, org: Org) -> None:
    filed = platform.ledger.file(org.ctx("admin", kind="agent"), "test.destroy", {"label": "d"})
    assert filed.directive.status == "awaiting_approval"
    assert platform.ledger.claim("acme", filed.directive.id) is None
    with pytest.raises(Forbidden, match="only a person"):
        platform.ledger.approve(org.ctx("admin", kind="agent"), filed.directive.id)
    with pytest.raises(Forbidden, match="admin"):
        platform.ledger.approve(org.ctx("member"), filed.directive.id)
    approved = platform.ledger.approve(org.ctx("admin"), filed.directive.id)
    assert approved.decided_by == str(org.users["admin"])
    final = platform.ledger.get("acme", filed.directive.id)
    assert final.status == "succeeded"
    assert signal_names(platform, final.id) == [
        "directive.requested",
        "directive.approved",
        "directive.started",
        "directive.succeeded",
    ]
    # A person filing the same type directly does not need a second person.
    direct = platform.ledger.file(org.ctx("admin"), "test.destroy", {"label": "d2"})
    assert platform.ledger.get("acme", direct.directive.id).status == "succeeded"


def test_approval_keeps_not_before(platform: Platform, org: Org, clock: FrozenClock) -> None:
    due = clock.now + timedelta(hours=2)
    filed = platform.ledger.file(org.ctx("admin", kind="agent"), "test.destroy", {"label": "late"}, not_before=due)
    approved = platform.ledger.approve(org.ctx("owner"), filed.directive.id)
    assert (approved.status, approved.scheduled_at) == ("requested", due)
    assert platform.ledger.claim("acme", filed.directive.id) is None
    clock.advance(2 * 3600)
    platform.runner.run_directive("acme", str(filed.directive.id))
    assert platform.ledger.get("acme", filed.directive.id).status == "succeeded"


def test_reject_cancels_and_records_why(platform: Platform, org: Org) -> None:
    filed = platform.ledger.file(org.ctx("admin", kind="agent"), "test.destroy", {"label": "x"})
    rejected = platform.ledger.reject(org.ctx("owner"), filed.directive.id, reason="not today")
    assert rejected.status == "canceled" and "not today" in rejected.last_error
    with pytest.raises(InvalidState):
        platform.ledger.approve(org.ctx("owner"), filed.directive.id)
    assert signal_names(platform, filed.directive.id) == ["directive.requested", "directive.rejected"]
    assert effects(platform, filed.directive.id) == 0


def test_role_checked_at_filing(platform: Platform, org: Org) -> None:
    with pytest.raises(Forbidden, match="needs the admin role"):
        platform.ledger.file(org.ctx("member"), "test.admin_effect", {"label": "a"})
    assert platform.ledger.list("acme")[0] == []


def test_role_checked_again_when_running(platform: Platform, org: Org, clock: FrozenClock) -> None:
    filed = platform.ledger.file(
        org.ctx("admin"), "test.admin_effect", {"label": "a"}, not_before=clock.now + timedelta(seconds=5)
    )
    set_membership(platform.db, org.ref.id, org.users["admin"], role="member")
    clock.advance(5)
    platform.runner.run_directive("acme", str(filed.directive.id))
    final = platform.ledger.get("acme", filed.directive.id)
    assert final.status == "failed" and final.attempt == 1
    assert "forbidden" in final.last_error and "admin" in final.last_error
    assert effects(platform, final.id) == 0
    # A disabled membership fails the same way.
    filed = platform.ledger.file(
        org.ctx("member"), "test.effect", {"label": "m"}, not_before=clock.now + timedelta(seconds=5)
    )
    set_membership(platform.db, org.ref.id, org.users["member"], status="disabled")
    clock.advance(5)
    platform.runner.run_directive("acme", str(filed.directive.id))
    assert platform.ledger.get("acme", filed.directive.id).status == "failed"
    with pytest.raises(Forbidden, match="not an active member"):
        platform.ledger.file(org.ctx("member"), "test.effect", {"label": "m2"})


def test_list_filters_and_paginates(platform: Platform, org: Org) -> None:
    ids = [platform.ledger.file(org.ctx(), "test.effect", {"label": f"l{i}"}).directive.id for i in range(7)]
    platform.ledger.file(org.ctx(), "test.effect", {"label": "bad", "permanent": True})
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        rows, cursor = platform.ledger.list("acme", DirectiveFilter(status="succeeded"), cursor=cursor, limit=3)
        seen += [r.id for r in rows]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    failed, _ = platform.ledger.list("acme", DirectiveFilter(status="failed"))
    assert [d.payload["label"] for d in failed] == ["bad"]
    with pytest.raises(InvalidInput):
        platform.ledger.list("acme", DirectiveFilter(status="nonsense"))
    with pytest.raises(InvalidInput, match="cursor"):
        platform.ledger.list("acme", cursor="garbage")
    forged = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "nope"]).encode()).decode()
    for read in (
        lambda: platform.ledger.list("acme", cursor=forged),
        lambda: platform.ledger.signals("acme", cursor=forged),
        lambda: platform.ledger.timeline("acme", "test.subject", "x", cursor=forged),
    ):
        with pytest.raises(InvalidInput, match="cursor"):
            read()
    with pytest.raises(NotFound):
        platform.ledger.get("acme", uuid.uuid4())
    with pytest.raises(NotFound):
        platform.ledger.get("acme", "not-a-uuid")


def test_timeline_merges_signals_and_directives(platform: Platform, org: Org) -> None:
    ctx = org.ctx(correlation_id="tl")
    first = platform.ledger.file(ctx, "test.effect", {"label": "subj"}).directive
    platform.ledger.file(ctx, "test.effect", {"label": "subj", "sleep_ms": 1})
    entries, cursor = platform.ledger.timeline("acme", "test.subject", "subj", limit=500)
    assert cursor is None
    kinds = [(e.kind, e.name) for e in entries]
    assert kinds.count(("directive", "test.effect")) == 2
    assert kinds.count(("signal", "test.effect.applied")) == 2
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert all(e.correlation_id == "tl" for e in entries)
    page, cursor = platform.ledger.timeline("acme", "test.subject", "subj", limit=3)
    rest, end = platform.ledger.timeline("acme", "test.subject", "subj", cursor=cursor, limit=500)
    assert [e.id for e in page + rest] == [e.id for e in entries] and end is None
    own, _ = platform.ledger.timeline("acme", "directive", str(first.id))
    assert [e.name for e in own] == ["test.effect", "directive.requested", "directive.started", "directive.succeeded"]


def test_directive_rows_are_plain_data(platform: Platform, org: Org) -> None:
    filed = platform.ledger.file(org.ctx(), "test.effect", {"label": "row"})
    with platform.db.transaction("acme") as session:
        row = session.exec(select(Directive).where(Directive.id == filed.directive.id)).one()
    assert row.args_hash and len(row.args_hash) == 64
    assert row.idempotency_key.startswith("auto:test.effect:")
