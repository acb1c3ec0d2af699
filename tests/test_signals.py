"""Signals: dedupe under concurrency, immutability of facts, no secrets, fanout at least once, replay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import Org, run_concurrently
from sqlmodel import select
from support.plugin import fanout_calls

from fleetprompt.errors import Conflict, InvalidInput
from fleetprompt.ledger import SignalFilter, emit
from fleetprompt.ledger.signals import SignalDraft
from fleetprompt.models.base import utcnow
from fleetprompt.models.ledger import Signal, SignalDelivery
from fleetprompt.platform import Platform
from fleetprompt.runner.sweeper import Sweeper


def draft(**overrides: object) -> SignalDraft:
    values: dict[str, object] = {
        "name": "forum.thread.locked",
        "source": "test",
        "payload": {"thread": 1},
        "dedupe_key": "lock:1",
        "subject_type": "forum.thread",
        "subject_id": "1",
    }
    values.update(overrides)
    return SignalDraft(**values)  # type: ignore[arg-type]


def count(platform: Platform, name: str) -> int:
    with platform.db.transaction("acme") as session:
        return len(session.exec(select(Signal).where(Signal.name == name)).all())


def test_twenty_concurrent_emits_with_one_key_make_one_row(platform: Platform, org: Org) -> None:
    def emit_once() -> tuple[str, bool]:
        with platform.ledger.transaction("acme") as session:
            result = emit(session, draft())
        return str(result.signal.id), result.created

    results = run_concurrently(20, emit_once)
    assert count(platform, "forum.thread.locked") == 1
    assert len({signal_id for signal_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_a_repeat_with_different_content_is_refused(platform: Platform, org: Org) -> None:
    with platform.ledger.transaction("acme") as session:
        emit(session, draft())
    with pytest.raises(Conflict, match="lock:1"), platform.ledger.transaction("acme") as session:
        emit(session, draft(payload={"thread": 2}))
    assert count(platform, "forum.thread.locked") == 1


def test_emit_joins_the_callers_transaction(platform: Platform, org: Org) -> None:
    with pytest.raises(RuntimeError), platform.ledger.transaction("acme") as session:
        emit(session, draft(dedupe_key="rolled-back"))
        raise RuntimeError("the caller's work failed")
    assert count(platform, "forum.thread.locked") == 0


def test_signals_refuse_secrets_and_bad_names(platform: Platform, org: Org) -> None:
    with pytest.raises(InvalidInput, match=r"secrets.*password"), platform.ledger.transaction("acme") as session:
        emit(session, draft(payload={"user": {"password": "hunter2"}}))
    with pytest.raises(InvalidInput, match=r"secrets.*api_key"), platform.ledger.transaction("acme") as session:
        emit(session, draft(metadata={"api_key": "x"}))
    with pytest.raises(Exception, match="dotted lowercase"):
        draft(name="Bad Name")
    assert count(platform, "forum.thread.locked") == 0


def test_list_signals_pages_and_filters(platform: Platform, org: Org) -> None:
    base = utcnow()
    with platform.ledger.transaction("acme") as session:
        for i in range(9):
            emit(
                session,
                draft(
                    dedupe_key=f"k{i}", payload={"i": i}, occurred_at=base + timedelta(seconds=i), subject_id=str(i % 3)
                ),
            )
    pages, cursor = [], None
    while True:
        rows, cursor = platform.ledger.signals("acme", SignalFilter(name="forum.thread.locked"), cursor, limit=4)
        pages.append([r.payload["i"] for r in rows])
        if cursor is None:
            break
    assert pages == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    rows, _ = platform.ledger.signals("acme", SignalFilter(subject_type="forum.thread", subject_id="1"))
    assert [r.payload["i"] for r in rows] == [1, 4, 7]
    rows, _ = platform.ledger.signals("acme", SignalFilter(since=base + timedelta(seconds=7)))
    assert [r.payload["i"] for r in rows] == [7, 8]
    rows, _ = platform.ledger.signals("acme", SignalFilter(name="forum.*"))
    assert len(rows) == 9


def ping(platform: Platform, key: str, **payload: object) -> Signal:
    with platform.ledger.transaction("acme") as session:
        return emit(session, draft(name="test.ping.sent", dedupe_key=key, payload=payload)).signal


def test_fanout_runs_after_commit_and_replay_runs_it_again(platform: Platform, org: Org) -> None:
    signal = ping(platform, "p1")
    assert fanout_calls[str(signal.id)] == 1
    assert count(platform, "test.pong.received") == 1
    with platform.db.transaction("acme") as session:
        delivery = session.get(SignalDelivery, (signal.id, "tests.pong"))
        assert delivery is not None and delivery.status == "delivered"
    replayed = platform.ledger.replay("acme", SignalFilter(ids=[signal.id]))
    assert [s.id for s in replayed] == [signal.id]
    assert fanout_calls[str(signal.id)] == 2
    assert count(platform, "test.pong.received") == 1  # the handler is idempotent
    assert platform.ledger.replay("acme", SignalFilter(name="forum.thread.locked")) == []
    later = ping(platform, "p1-later")
    by_subject = platform.ledger.replay("acme", SignalFilter(subject_type="forum.thread", subject_id="1"))
    assert {s.id for s in by_subject} == {signal.id, later.id}
    by_time = platform.ledger.replay("acme", SignalFilter(since=later.occurred_at))
    assert [s.id for s in by_time] == [later.id]
    assert fanout_calls[str(signal.id)] == 3 and fanout_calls[str(later.id)] == 3
    with pytest.raises(InvalidInput, match="selection"):
        platform.ledger.replay("acme", SignalFilter())


def test_failed_or_lost_fanout_is_retried_by_the_sweeper(
    platform: Platform, org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    signal = ping(platform, "p2", explode=True)
    assert fanout_calls[str(signal.id)] == 1
    with platform.db.transaction("acme") as session:
        delivery = session.get(SignalDelivery, (signal.id, "tests.pong"))
        assert delivery is not None
        assert (delivery.status, delivery.attempts) == ("pending", 1)
        error = delivery.last_error or ""
        assert error.startswith("internal error (RuntimeError); see the worker log, reference ")
        assert "handler exploded" not in error
    reference = error.rsplit(" ", 1)[-1]
    assert any(reference in record.getMessage() and record.exc_info for record in caplog.records)
    platform.settings.requeue_after = 0
    Sweeper(platform.runner).sweep_once()
    assert fanout_calls[str(signal.id)] == 2
    # A pending delivery whose wake-up was lost is found by the sweeper too.
    with platform.db.transaction("acme") as session:
        emit(session, draft(name="test.other.lost", dedupe_key="lost"))  # no fanout subscribed: nothing pending
        lost = emit(session, draft(name="test.ping.sent", dedupe_key="p3")).signal  # no dispatcher on this session
    assert fanout_calls[str(lost.id)] == 0
    report = Sweeper(platform.runner).sweep_once()
    assert report.fanout >= 1 and fanout_calls[str(lost.id)] == 1
    assert count(platform, "test.pong.received") == 1
