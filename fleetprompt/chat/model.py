"""Which model the chat talks to: FLEETPROMPT_MODEL, optionally through an OpenAI-compatible service."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
from pydantic_ai.models import Model, infer_model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from fleetprompt.config import ConfigError, Settings

OPENROUTER_URL = "https://openrouter.ai/api/v1"
NOT_CONFIGURED = (
    "No chat model is configured, so I cannot answer yet. Set FLEETPROMPT_MODEL to a pydantic-ai model name "
    "(for example openai:gpt-5-mini with OPENAI_API_KEY set), or point FLEETPROMPT_OPENAI_BASE_URL and "
    "FLEETPROMPT_OPENAI_API_KEY (or OPENROUTER_API_KEY) at an OpenAI-compatible service such as OpenRouter, "
    "then restart `fleetprompt serve`. Nothing was filed."
)


def configured_model(settings: Settings) -> Model | None:
    """The model from settings, or None when none is configured. A model that cannot be set up is a ConfigError."""
    name = settings.model
    if name is None:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    base_url = settings.openai_base_url
    if base_url is None and name.startswith("openrouter:") and key:
        base_url = OPENROUTER_URL
    if base_url is not None:
        model_name = name.split(":", 1)[1] if name.startswith(("openai:", "openrouter:")) else name
        return OpenAIChatModel(model_name, provider=OpenAIProvider(base_url=base_url, api_key=key or "unset"))
    try:
        return infer_model(name)
    except Exception as exc:  # unknown provider, missing provider package or API key: say which, at start-up
        raise ConfigError(f"FLEETPROMPT_MODEL: cannot use {name!r}: {exc}") from None


async def _explain_configuration(_messages: list[ModelMessage], _info: AgentInfo) -> AsyncIterator[str]:
    yield NOT_CONFIGURED


def _explain_once(_messages: list[ModelMessage], _info: AgentInfo) -> ModelResponse:
    return ModelResponse(parts=[TextPart(NOT_CONFIGURED)])


def not_configured_model() -> FunctionModel:
    """Stands in when no model is configured: answers every turn with how to configure one, and calls no tool."""
    return FunctionModel(_explain_once, stream_function=_explain_configuration, model_name="not-configured")
