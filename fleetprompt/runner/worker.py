"""Consumers: `fleetprompt worker` (a dedicated process) and the in-process runner of `fleetprompt serve`."""

from __future__ import annotations

import logging
import os
import threading

from huey.consumer import Consumer

from fleetprompt.runner.sweeper import Sweeper
from fleetprompt.runner.tasks import Runner

log = logging.getLogger(__name__)


def _consumer(runner: Runner, workers: int, consumer_class: type[Consumer] = Consumer) -> Consumer:
    # SQLite storage polls; keep the poll short so an idle queue still answers quickly.
    return consumer_class(
        runner.huey,
        workers=workers,
        worker_type="thread",
        periodic=False,
        initial_delay=0.05,
        backoff=1.5,
        max_delay=0.5,
        check_worker_health=True,
    )


def run_worker(runner: Runner, workers: int = 2, parent_pid: int | None = None) -> None:
    """Blocks in the main thread until SIGINT (graceful) or SIGTERM (interrupted work is handed back)."""
    sweeper = Sweeper(runner)
    sweeper.start()
    consumer = _consumer(runner, workers)
    if parent_pid:
        _exit_with_parent(parent_pid)
    try:
        consumer.run()
    finally:
        sweeper.stop()


def _exit_with_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(1.0)
        log.warning("parent process %d is gone; worker exiting", parent_pid)
        os._exit(0)

    threading.Thread(target=watch, name="fleetprompt-parent-watch", daemon=True).start()


class _EmbeddedConsumer(Consumer):
    """A consumer that lives in a server's threads: the server owns the process signals."""

    def _set_signal_handlers(self) -> None:
        return None


class EmbeddedRunner:
    """The runner `fleetprompt serve` starts for itself: consumer threads plus the sweeper."""

    def __init__(self, runner: Runner, workers: int = 2) -> None:
        self.runner = runner
        self.consumer = _consumer(runner, workers, _EmbeddedConsumer)
        self.sweeper = Sweeper(runner)

    def start(self) -> None:
        self.consumer.start()
        self.sweeper.start()

    def stop(self) -> None:
        self.sweeper.stop()
        self.consumer.stop(graceful=True)
        self.runner.huey.notify_interrupted_tasks()
