"""Package directive types: install, upgrade, uninstall (high-impact with purge), enable, disable."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from fleetprompt.ledger.registry import DirectiveType, directive_types
from fleetprompt.models.marketplace import SLUG_PATTERN, VERSION_PATTERN
from fleetprompt.models.tenancy import Role

PackageSlug = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64, pattern=SLUG_PATTERN)]
Version = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32, pattern=VERSION_PATTERN)]
MAX_CONFIG_BYTES = 10_000


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PackageInstall(_Payload):
    slug: PackageSlug
    version: Version
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config")
    @classmethod
    def _small(cls, config: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(config)) > MAX_CONFIG_BYTES:
            raise ValueError(f"config must serialize to at most {MAX_CONFIG_BYTES} bytes")
        return config


class PackageUpgrade(_Payload):
    slug: PackageSlug
    version: Version


class PackageUninstall(_Payload):
    slug: PackageSlug
    purge: bool = False


class PackageRef(_Payload):
    slug: PackageSlug


def _package(p: PackageInstall | PackageUpgrade | PackageUninstall | PackageRef) -> tuple[str, str]:
    return ("package", p.slug)


INSTALL = directive_types.register(
    DirectiveType("package.install", PackageInstall, Role.admin, subject=_package, description="Install a package.")
)
UPGRADE = directive_types.register(
    DirectiveType("package.upgrade", PackageUpgrade, Role.admin, subject=_package, description="Upgrade a package.")
)
UNINSTALL = directive_types.register(
    DirectiveType(
        "package.uninstall",
        PackageUninstall,
        Role.admin,
        high_impact=lambda p: p.purge,
        subject=_package,
        description="Uninstall a package; purge also removes what it created.",
    )
)
ENABLE = directive_types.register(
    DirectiveType("package.enable", PackageRef, Role.admin, subject=_package, description="Enable a package.")
)
DISABLE = directive_types.register(
    DirectiveType("package.disable", PackageRef, Role.admin, subject=_package, description="Disable a package.")
)
