"""Tenant naming: slug validation and where a tenant's storage lives (schema or file)."""

from __future__ import annotations

import re
from pathlib import Path

from fleetprompt.errors import InvalidInput

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 40


def validate_slug(slug: str) -> str:
    """Reject anything that is not a plain slug before it can reach a schema name or a file path."""
    if not isinstance(slug, str) or not slug:
        raise InvalidInput("organization slug must not be empty")
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidInput(f"organization slug must be at most {SLUG_MAX_LENGTH} characters (got {len(slug)})")
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidInput(
            f"invalid organization slug {slug!r}: use lowercase letters, digits and single hyphens "
            "(for example 'acme' or 'acme-labs')"
        )
    return slug


def schema_name(slug: str) -> str:
    """PostgreSQL schema of a tenant: org_<slug> with hyphens as underscores."""
    return "org_" + validate_slug(slug).replace("-", "_")


def sqlite_path(tenants_dir: Path, slug: str) -> Path:
    return tenants_dir / f"{validate_slug(slug)}.db"
