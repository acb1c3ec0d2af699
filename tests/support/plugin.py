"""Directive types and fanout handlers used only by tests (loaded in worker processes via FLEETPROMPT_PLUGINS)."""

from __future__ import annotations

import collections
import threading
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field

from fleetprompt.errors import Conflict, PermanentFailure
from fleetprompt.ledger.execution import DirectiveRun, FanoutEvent
from fleetprompt.ledger.registry import DirectiveType, directive_types, fanout_handlers
from fleetprompt.ledger.signals import SignalDraft, emit
from fleetprompt.models.tenancy import Role


class EffectPayload(BaseModel):
    label: str = Field(min_length=1, max_length=100)
    sleep_ms: int = Field(default=0, ge=0, le=5000)
    fail_times: int = Field(default=0, ge=0)
    permanent: bool = False
    conflict: bool = False
    touch: list[str] = Field(default_factory=list)


def _effect(run: DirectiveRun) -> dict[str, object]:
    payload = run.payload
    assert isinstance(payload, EffectPayload)
    if payload.sleep_ms:
        time.sleep(payload.sleep_ms / 1000)
    if payload.permanent:
        raise PermanentFailure(f"{payload.label} cannot be done")
    if payload.conflict:
        raise Conflict(f"{payload.label} conflicts with the current state")
    for item in payload.touch:  # the same signal name for several subjects, with the default dedupe key
        run.emit("test.item.touched", {"item": item}, subject=("test.item", item))
    if run.directive.attempt <= payload.fail_times:
        raise RuntimeError(f"transient failure on attempt {run.directive.attempt}")
    # A unique dedupe key: if the effect ever ran twice, two rows would show it.
    run.emit("test.effect.applied", {"label": payload.label}, dedupe_key=f"effect:{uuid.uuid4()}")
    return {"label": payload.label, "attempt": run.directive.attempt}


def _subject(payload: EffectPayload) -> tuple[str, str]:
    return ("test.subject", payload.label)


class TogglePayload(BaseModel):
    target: str
    state: Literal["on", "off"]


def _toggle(run: DirectiveRun) -> dict[str, object]:
    assert isinstance(run.payload, TogglePayload)
    run.emit(f"test.target.switched_{run.payload.state}", {"target": run.payload.target})
    return {"state": run.payload.state}


if directive_types.find("test.toggle") is None:
    directive_types.register(
        DirectiveType(
            name="test.toggle",
            payload_model=TogglePayload,
            subject=lambda p: ("test.target", p.target),
            handler=_toggle,
            sets_state=True,
        )
    )


for name, role, high_impact in (
    ("test.effect", Role.member, False),
    ("test.admin_effect", Role.admin, False),
    ("test.destroy", Role.admin, True),
):
    if directive_types.find(name) is None:
        directive_types.register(
            DirectiveType(
                name=name,
                payload_model=EffectPayload,
                required_role=role,
                high_impact=high_impact,
                subject=_subject,
                max_attempts=3,
                handler=_effect,
            )
        )

fanout_calls: collections.Counter[str] = collections.Counter()
_calls_lock = threading.Lock()


@fanout_handlers.subscribe("test.ping.*", name="tests.pong")
def _pong(event: FanoutEvent) -> None:
    """Idempotent by its dedupe key: however often it runs, one pong per ping."""
    with _calls_lock:
        fanout_calls[str(event.signal.id)] += 1
    if event.signal.payload.get("explode"):
        raise RuntimeError("handler exploded")
    emit(
        event.session,
        SignalDraft(
            name="test.pong.received",
            source="fanout",
            payload={"ping": str(event.signal.id)},
            dedupe_key=f"pong:{event.signal.id}",
            causation_id=str(event.signal.id),
            correlation_id=event.signal.correlation_id,
        ),
    )
