"""The single entry point every interface uses: authenticate first, then call a tool by name."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError

from fleetprompt.accounts.context import RequestContext
from fleetprompt.errors import FleetPromptError, Forbidden, InternalError, InvalidInput, NotFound, validation_message
from fleetprompt.ledger import Ledger
from fleetprompt.tools.context import ProgressSink, ToolContext
from fleetprompt.tools.registry import Tool, tools

log = logging.getLogger(__name__)


def get_tool(name: str) -> Tool:
    tool = tools.get(name)
    if tool is None:
        raise NotFound(f"unknown tool {name!r}")
    return tool


def call_tool(
    ledger: Ledger,
    request: RequestContext,
    name: str,
    arguments: dict[str, Any] | BaseModel | None,
    *,
    progress: ProgressSink | None = None,
) -> BaseModel:
    """Role, then arguments, then the tool. Caller mistakes raise FleetPromptError with a message to show;
    anything else is logged with the correlation id and raised as InternalError without internals."""
    tool = get_tool(name)
    role = ledger.role(request.org, request.actor)
    if not role.allows(tool.required_role):
        raise Forbidden(
            f"{name} needs the {tool.required_role.value} role; you are {role.value} in {request.org.slug!r}"
        )
    try:
        raw = arguments.model_dump() if isinstance(arguments, BaseModel) else (arguments or {})
        args = tool.input_model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(f"invalid arguments for {name}: {validation_message(exc)}") from None
    try:
        return tool.run(ToolContext(request=request, ledger=ledger, role=role, progress=progress), args)
    except FleetPromptError:
        raise
    except Exception:
        log.exception("tool %s failed in %s [correlation %s]", name, request.org.slug, request.correlation_id)
        raise InternalError(
            f"{name} failed on our side; the error is logged with reference {request.correlation_id}"
        ) from None
