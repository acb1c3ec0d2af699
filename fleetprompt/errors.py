"""Errors a caller can act on. Each carries a stable code that interfaces map to a tool error or HTTP status."""

from __future__ import annotations

from pydantic import ValidationError


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


class InternalError(FleetPromptError):
    """Something failed on our side; the message carries only a reference to the log entry."""

    code = "internal_error"


def validation_message(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic error as one line a caller can act on: `field: problem; field: problem`."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "input"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


class TooManyAttempts(FleetPromptError):
    """Too many recent failures (sign-in): wait `retry_after` seconds."""

    code = "too_many_attempts"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
