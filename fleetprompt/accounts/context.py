"""Who is acting, for which organization: built only from authentication, never from tool arguments."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from fleetprompt.models.tenancy import Role


class ActorKind(StrEnum):
    user = "user"  # a signed-in person acting directly (web UI)
    agent = "agent"  # a program or assistant acting for a user (MCP, chat)
    operator = "operator"  # someone with direct access to the installation (the CLI)
    system = "system"  # FleetPrompt itself (the runner, fanout)

    @property
    def is_person(self) -> bool:
        return self in (ActorKind.user, ActorKind.operator)


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str
    via: str

    @property
    def user_id(self) -> uuid.UUID | None:
        """The user this actor speaks for; operators and the system speak for nobody in particular."""
        if self.kind in (ActorKind.user, ActorKind.agent):
            return uuid.UUID(self.id)
        return None

    @classmethod
    def user(cls, user_id: uuid.UUID, via: str) -> Actor:
        return cls(ActorKind.user, str(user_id), via)

    @classmethod
    def agent(cls, user_id: uuid.UUID, via: str) -> Actor:
        return cls(ActorKind.agent, str(user_id), via)

    @classmethod
    def operator(cls, name: str, via: str = "cli") -> Actor:
        return cls(ActorKind.operator, f"operator:{name}", via)

    @classmethod
    def system(cls, name: str = "runner") -> Actor:
        return cls(ActorKind.system, f"system:{name}", name)


@dataclass(frozen=True)
class OrgRef:
    id: uuid.UUID
    slug: str
    tier: str


def new_correlation_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class RequestContext:
    """Everything a ledger or tool call needs to know about the caller."""

    org: OrgRef
    actor: Actor
    correlation_id: str = field(default_factory=new_correlation_id)
    causation_id: str | None = None
    # The caller's role as authentication read it for this very request (an API token's membership), so tools
    # need not read it again; None means "read it from the memberships". The runner always reads it afresh.
    role: Role | None = None
