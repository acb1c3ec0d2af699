"""Field types shared by the domains' payloads (and so by the tools that build them)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

from fleetprompt.models.marketplace import SLUG_PATTERN


def _normalized(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


# Lowercased before the pattern is checked, so "General" becomes "general" (as the original normalized slugs).
Slug = Annotated[str, StringConstraints(max_length=64, pattern=SLUG_PATTERN), BeforeValidator(_normalized)]
