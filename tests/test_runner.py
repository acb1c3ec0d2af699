"""The runner against a real queue (Huey on SQLite or PostgreSQL storage): exclusive claims, fencing, recovery."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import Org, build_platform, make_org
from sqlmodel import func, select

from fleetprompt.ledger import SignalFilter
from fleetprompt.ledger.dispatch import NoDispatch
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Signal
from fleetprompt.platform import Platform
from fleetprompt.runner.execute import execute_directive
from fleetprompt.runner.sweeper import Leadership, Sweeper
from fleetprompt.runner.worker import EmbeddedRunner


def effect_count(platform: Platform, tenant: str, directive_id: uuid.UUID) -> int:
    with platform.db.transaction(tenant) as session:
        return session.exec(
            select(func.count())
            .select_from(Signal)
            .where(Signal.name == "test.effect.applied", Signal.causation_id == str(directive_id))
        ).one()


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def queued_platform(database_url: str, tmp_path: Path):
    """A platform whose queue is the real one for its backend, as in production."""
    built = build_platform(database_url, tmp_path / "var", queue="auto")
    yield built
    built.close()


def test_same_directive_enqueued_three_times_runs_once(queued_platform: Platform) -> None:
    platform = queued_platform
    org = make_org(platform, "acme")
    platform.ledger.dispatcher = NoDispatch()
    ids = [
        platform.ledger.file(org.ctx(), "test.effect", {"label": f"x{i}", "sleep_ms": 100}).directive.id
        for i in range(6)
    ]
    platform.ledger.dispatcher = platform.runner
    for directive_id in ids:
        for _ in range(3):
            platform.runner.enqueue_directive("acme", directive_id)
    assert platform.runner.huey.pending_count() == 18
    embedded = EmbeddedRunner(platform.runner, workers=2)
    embedded.start()
    try:
        wait_for(lambda: all(platform.ledger.get("acme", i).status == "succeeded" for i in ids))
        wait_for(lambda: platform.runner.huey.pending_count() == 0)
    finally:
        embedded.stop()
    for directive_id in ids:
        assert effect_count(platform, "acme", directive_id) == 1
        names = [
            s.name
            for s in platform.ledger.signals(
                "acme", SignalFilter(subject_type="directive", subject_id=str(directive_id))
            )[0]
        ]
        assert names.count("directive.started") == 1 and names.count("directive.succeeded") == 1
        assert platform.ledger.get("acme", directive_id).attempt == 1


def test_a_late_worker_whose_lease_was_reclaimed_changes_nothing(platform: Platform, org: Org) -> None:
    platform.ledger.dispatcher = NoDispatch()
    directive = platform.ledger.file(org.ctx(), "test.effect", {"label": "lease"}).directive
    stale_claim = platform.ledger.claim("acme", directive.id)
    assert stale_claim is not None and stale_claim.lease_expires_at is not None
    later = stale_claim.lease_expires_at + timedelta(seconds=1)
    platform.ledger.clock = lambda: later
    reclaimed = platform.ledger.reclaim_expired("acme")
    assert [r.id for r in reclaimed] == [directive.id] and reclaimed[0].status == "requested"
    fresh_claim = platform.ledger.claim("acme", directive.id)
    assert fresh_claim is not None and fresh_claim.attempt == 2
    assert execute_directive(platform.ledger, "acme", stale_claim) is None
    assert effect_count(platform, "acme", directive.id) == 0
    done = execute_directive(platform.ledger, "acme", fresh_claim)
    assert done is not None and done.status == "succeeded"
    assert effect_count(platform, "acme", directive.id) == 1
    failed = platform.ledger.signals("acme", SignalFilter(name="directive.failed"))[0]
    assert [s.payload["error"] for s in failed] == [
        "lease expired: the worker running it stopped or exceeded the lease"
    ]


def test_sweeper_recovers_lost_and_abandoned_work(platform: Platform, org: Org) -> None:
    now = [utcnow()]
    platform.ledger.clock = lambda: now[0]
    platform.ledger.dispatcher = NoDispatch()
    spent = platform.ledger.file(org.ctx(), "test.effect", {"label": "spent"}).directive
    for attempt in (1, 2):  # two workers died running it ...
        claim = platform.ledger.claim("acme", spent.id)
        assert claim is not None and claim.attempt == attempt and claim.lease_expires_at is not None
        now[0] = claim.lease_expires_at + timedelta(seconds=1)
        assert [(r.id, r.status) for r in platform.ledger.reclaim_expired("acme")] == [(spent.id, "requested")]
    third = platform.ledger.claim("acme", spent.id)  # ... and a third: its attempts are used up
    assert third is not None and third.attempt == 3
    lost = platform.ledger.file(org.ctx(), "test.effect", {"label": "lost"}).directive  # its enqueue was lost
    abandoned = platform.ledger.file(org.ctx(), "test.effect", {"label": "abandoned"}).directive
    assert platform.ledger.claim("acme", abandoned.id) is not None  # its worker died
    platform.ledger.dispatcher = platform.runner
    now[0] += timedelta(seconds=platform.settings.lease_seconds + 60)
    report = Sweeper(platform.runner).sweep_once()
    assert (report.reclaimed, report.requeued, report.tenants) == (2, 1, 1)
    assert platform.ledger.get("acme", lost.id).status == "succeeded"
    assert platform.ledger.get("acme", abandoned.id).status == "succeeded"
    final = platform.ledger.get("acme", spent.id)
    assert (final.status, final.attempt) == ("failed", 3) and "lease expired" in final.last_error
    assert effect_count(platform, "acme", spent.id) == 0


def test_only_one_process_leads_the_sweep(platform: Platform) -> None:
    first, second = Leadership(platform.runner), Leadership(platform.runner)
    try:
        assert first.acquire()
        assert not second.acquire()
        first.release()
        assert second.acquire()
    finally:
        first.release()
        second.release()


def test_a_future_directive_runs_when_due_without_the_sweeper(queued_platform: Platform) -> None:
    platform = queued_platform
    org = make_org(platform, "acme")
    due = utcnow() + timedelta(seconds=1.5)
    directive = platform.ledger.file(org.ctx(), "test.effect", {"label": "soon"}, not_before=due).directive
    assert platform.runner.huey.pending_count() == 1  # a task with an eta; the consumer parks it in its schedule
    embedded = EmbeddedRunner(platform.runner, workers=1)
    embedded.sweeper.leadership.acquire = lambda: False  # prove the queue's own schedule runs it
    embedded.start()
    try:
        wait_for(lambda: platform.ledger.get("acme", directive.id).status == "succeeded", timeout=15)
    finally:
        embedded.stop()
    done = platform.ledger.get("acme", directive.id)
    assert done.started_at is not None and done.started_at >= due


def test_stopping_work_is_canceling_its_directive_not_revoking_its_task(queued_platform: Platform) -> None:
    """Huey's revocation is off (it cost a query per task): a canceled directive's task runs and finds nothing."""
    platform = queued_platform
    org = make_org(platform, "acme")
    with pytest.raises(NotImplementedError, match="cancel the directive"):
        platform.runner.directive_task.revoke()
    canceled = platform.ledger.file(org.ctx(), "test.effect", {"label": "stop"}).directive
    kept = platform.ledger.file(org.ctx(), "test.effect", {"label": "go"}).directive
    platform.ledger.cancel(org.ctx(), canceled.id, "changed my mind")
    assert platform.runner.huey.pending_count() == 2  # both tasks are queued; only one directive can be claimed
    embedded = EmbeddedRunner(platform.runner, workers=1)
    embedded.start()
    try:
        wait_for(lambda: platform.ledger.get("acme", kept.id).status == "succeeded")
        wait_for(lambda: platform.runner.huey.pending_count() == 0)
    finally:
        embedded.stop()
    assert platform.ledger.get("acme", canceled.id).status == "canceled"
    assert effect_count(platform, "acme", canceled.id) == 0 and effect_count(platform, "acme", kept.id) == 1
