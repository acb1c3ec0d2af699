"""The built-in chat: a pydantic-ai agent generated from the tool registry, streamed over SSE, stored per tenant."""
