"""The PostgreSQL queue storage (runner/queue.py): enqueue in one statement, one LISTEN connection per process.

SQLite uses Huey's own SqliteHuey (polling), which the runner tests cover; this storage exists only on PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from conftest import make_settings

from fleetprompt.runner.queue import PostgresQueueStorage, build_huey, libpq_dsn, prepare_queue

pytestmark = pytest.mark.parametrize("backend", ["postgres"])


@pytest.fixture
def dsn(database_url: str, tmp_path: Path) -> str:
    prepare_queue(build_huey(make_settings(database_url, tmp_path, queue="auto")))
    return libpq_dsn(database_url)


def storage(dsn: str, read_timeout: float = 5.0) -> PostgresQueueStorage:
    return PostgresQueueStorage("fleetprompt", dsn=dsn, read_timeout=read_timeout, create_tables=False)


def listening_sessions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() and query ilike 'listen %'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_enqueued_tasks_come_out_once_in_order(dsn: str) -> None:
    producer, consumer = storage(dsn), storage(dsn)
    try:
        for data in (b"one", b"two", b"three"):
            producer.enqueue(data)
        assert consumer.queue_size() == 3
        assert [consumer.dequeue() for _ in range(3)] == [b"one", b"two", b"three"]
        assert consumer.queue_size() == 0
    finally:
        producer.close()
        consumer.close()


def test_a_waiting_consumer_is_woken_by_an_enqueue_elsewhere(dsn: str) -> None:
    """The consumer looked (empty) before the task existed, so only the NOTIFY can hand it over within its wait."""
    producer, consumer = storage(dsn), storage(dsn, read_timeout=10.0)
    got: list[bytes | None] = []
    waiter = threading.Thread(target=lambda: got.append(consumer.dequeue()))
    try:
        waiter.start()
        deadline = time.monotonic() + 10
        while listening_sessions(dsn) == 0:
            assert time.monotonic() < deadline, "the consumer never started listening"
            time.sleep(0.02)
        producer.enqueue(b"wake")
        waiter.join(timeout=15)
        assert got == [b"wake"]
    finally:
        producer.close()
        consumer.close()


def test_waiting_threads_share_one_listen_connection_and_each_task_goes_to_one(dsn: str) -> None:
    producer, consumer = storage(dsn), storage(dsn, read_timeout=1.0)
    received: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            data = consumer.dequeue()
            if data is not None:
                with lock:
                    received.append(data)

    threads = [threading.Thread(target=consume) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while listening_sessions(dsn) == 0:
            assert time.monotonic() < deadline, "no consumer thread started listening"
            time.sleep(0.02)
        time.sleep(0.3)  # every thread is now either listening or waiting its turn
        assert listening_sessions(dsn) == 1
        sent = [f"task-{i}".encode() for i in range(20)]
        for data in sent:
            producer.enqueue(data)
        deadline = time.monotonic() + 20
        while len(received) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(received) == sorted(sent)  # each task exactly once
        assert listening_sessions(dsn) == 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        producer.close()
        consumer.close()
