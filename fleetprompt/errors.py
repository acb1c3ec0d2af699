"""Errors a caller can act on. Each carries a stable code that interfaces map to a tool error or HTTP status."""

from __future__ import annotations


class FleetPromptError(Exception):
    """Base for errors whose message is safe and useful to show to the caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(FleetPromptError):
    code = "invalid_input"


class NotFound(FleetPromptError):
    code = "not_found"


class Forbidden(FleetPromptError):
    code = "forbidden"


class Conflict(FleetPromptError):
    code = "conflict"


class InvalidState(FleetPromptError):
    """The object exists but is not in a state that allows this action."""

    code = "invalid_state"


class IdempotencyKeyReused(FleetPromptError):
    code = "idempotency_key_reused"


class PermanentFailure(FleetPromptError):
    """Raised by a directive handler when retrying cannot help (the world changed: thread locked, ...)."""

    code = "permanent_failure"
