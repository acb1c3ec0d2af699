"""FleetPrompt's web app with a scripted chat model, under uvicorn as `fleetprompt serve` runs it.

`fleetprompt serve` cannot take a FunctionModel, so benchmark 3 runs this instead: `create_app(platform,
run_runner=False, chat_model=scripted_model())` with the same logging and uvicorn settings. Settings come from the
FLEETPROMPT_* environment. Run as `python -m bench.chat_server --port N`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator

import uvicorn
from pydantic_ai.messages import ModelMessage, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel

from fleetprompt.config import load_settings
from fleetprompt.platform import Platform
from fleetprompt.web.app import create_app

TEXT_TOKENS = 200
TOOL = "forum_list_threads"


async def _script(messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
    """First request: one tool call. Once its result is back: TEXT_TOKENS tokens of text, one per chunk."""
    answered = any(isinstance(part, ToolReturnPart) for part in messages[-1].parts)
    if not answered:
        yield {0: DeltaToolCall(name=TOOL, json_args="{}", tool_call_id="call-1")}
        return
    for i in range(TEXT_TOKENS):
        yield f"token{i} "


def scripted_model() -> FunctionModel:
    return FunctionModel(stream_function=_script)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    platform = Platform.build(settings)
    app = create_app(platform, run_runner=False, chat_model=scripted_model())
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level=settings.log_level.lower(), timeout_graceful_shutdown=10
    )


if __name__ == "__main__":
    main()
