"""Registries the ledger consults: directive types (what may be filed and how it runs) and fanout handlers."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from fleetprompt.models.tenancy import Role

if TYPE_CHECKING:
    from fleetprompt.ledger.execution import DirectiveRun, FanoutEvent

DirectiveHandler = Callable[["DirectiveRun"], BaseModel | dict[str, Any] | None]
SubjectOf = Callable[[Any], tuple[str, str] | None]
HighImpact = bool | Callable[[Any], bool]
FanoutHandler = Callable[["FanoutEvent"], None]


@dataclass
class DirectiveType:
    name: str
    payload_model: type[BaseModel]
    required_role: Role = Role.member
    high_impact: HighImpact = False
    subject: SubjectOf = field(default=lambda _payload: None)
    max_attempts: int = 5
    handler: DirectiveHandler | None = None
    description: str = ""
    # Sets a state of its subject (lock, hide, enable): a newer request about the same subject supersedes a
    # pending one, so asking again files anew (lock -> unlock -> lock locks). Creating types (a reply) never are:
    # retrying a pending reply returns it, whatever else happened in the thread meanwhile.
    sets_state: bool = False

    def is_high_impact(self, payload: BaseModel) -> bool:
        """Some types destroy data only with certain arguments (uninstall with purge)."""
        return self.high_impact(payload) if callable(self.high_impact) else self.high_impact


class DirectiveRegistry:
    """name -> DirectiveType. Types are declared where tools can see them; the runner binds handlers."""

    def __init__(self) -> None:
        self._types: dict[str, DirectiveType] = {}

    def register(self, directive_type: DirectiveType) -> DirectiveType:
        existing = self._types.get(directive_type.name)
        if existing is not None and existing is not directive_type:
            raise ValueError(f"directive type {directive_type.name!r} is already registered")
        self._types[directive_type.name] = directive_type
        return directive_type

    def handles(self, name: str) -> Callable[[DirectiveHandler], DirectiveHandler]:
        """Decorator for runner modules: bind the handler of an already declared type (unknown names fail now)."""
        directive_type = self.get(name)

        def bind(handler: DirectiveHandler) -> DirectiveHandler:
            directive_type.handler = handler
            return handler

        return bind

    def get(self, name: str) -> DirectiveType:
        try:
            return self._types[name]
        except KeyError:
            raise KeyError(f"unknown directive type {name!r}") from None

    def find(self, name: str) -> DirectiveType | None:
        return self._types.get(name)

    def names(self) -> list[str]:
        return sorted(self._types)


@dataclass(frozen=True)
class FanoutSubscription:
    name: str
    pattern: str
    handler: FanoutHandler


class FanoutRegistry:
    """Signal-name patterns (fnmatch: `forum.thread.*`) -> handlers that run from the runner, at least once."""

    def __init__(self) -> None:
        self._subscriptions: dict[str, FanoutSubscription] = {}

    def subscribe(self, pattern: str, name: str | None = None) -> Callable[[FanoutHandler], FanoutHandler]:
        def register(handler: FanoutHandler) -> FanoutHandler:
            key = name or f"{handler.__module__}.{handler.__qualname__}"
            self._subscriptions[key] = FanoutSubscription(key, pattern, handler)
            return handler

        return register

    def unsubscribe(self, name: str) -> None:
        self._subscriptions.pop(name, None)

    def matching(self, signal_name: str) -> list[FanoutSubscription]:
        return [s for s in self._subscriptions.values() if fnmatch.fnmatchcase(signal_name, s.pattern)]

    def get(self, name: str) -> FanoutSubscription | None:
        return self._subscriptions.get(name)


directive_types = DirectiveRegistry()
fanout_handlers = FanoutRegistry()
