"""Assembles one FleetPrompt process from settings: database, queue, runner and ledger."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fleetprompt.config import ConfigError, Settings, load_settings
from fleetprompt.db.engine import Database
from fleetprompt.ledger import Ledger
from fleetprompt.runner.queue import build_huey
from fleetprompt.runner.tasks import Runner


def load_plugins(modules: list[str]) -> None:
    """Import FLEETPROMPT_PLUGINS so their directive types and fanout handlers register in this process."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"FLEETPROMPT_PLUGINS: cannot import {module!r} ({exc})") from None


@dataclass
class Platform:
    settings: Settings
    db: Database
    runner: Runner

    @property
    def ledger(self) -> Ledger:
        return self.runner.ledger

    @classmethod
    def build(cls, settings: Settings | None = None) -> Platform:
        settings = settings or load_settings()
        settings.resolved_secret_key()  # generated into DATA_DIR on the first start
        load_plugins(settings.plugins)
        db = Database(settings)
        return cls(settings=settings, db=db, runner=Runner(settings, db, build_huey(settings)))

    def close(self) -> None:
        self.db.dispose()
