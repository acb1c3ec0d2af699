"""Package directive types: install, upgrade, uninstall (high-impact with purge), enable, disable."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import Session, col, select

from fleetprompt.accounts.context import OrgRef
from fleetprompt.errors import Conflict, Forbidden, InvalidState, NotFound
from fleetprompt.ledger.registry import DirectiveType, directive_types
from fleetprompt.ledger.types.common import Slug
from fleetprompt.models.marketplace import (
    VERSION_PATTERN,
    Installation,
    Package,
    PackageVersion,
    tier_allows,
    version_key,
)
from fleetprompt.models.tenancy import Role

PackageSlug = Slug
Version = Annotated[str, StringConstraints(strip_whitespace=True, max_length=32, pattern=VERSION_PATTERN)]
MAX_CONFIG_BYTES = 10_000


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _small(config: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(config)) > MAX_CONFIG_BYTES:
        raise ValueError(f"config must serialize to at most {MAX_CONFIG_BYTES} bytes")
    return config


# Shared by the payload and the tool's input, so an oversized config is refused as invalid input when filing.
InstallConfig = Annotated[dict[str, Any], AfterValidator(_small)]


class PackageInstall(_Payload):
    slug: PackageSlug
    version: Version
    config: InstallConfig = Field(default_factory=dict)


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
    DirectiveType(
        "package.install",
        PackageInstall,
        Role.admin,
        subject=_package,
        sets_state=True,
        description="Install a package.",
    )
)
UPGRADE = directive_types.register(
    DirectiveType(
        "package.upgrade",
        PackageUpgrade,
        Role.admin,
        subject=_package,
        sets_state=True,
        description="Upgrade a package.",
    )
)
UNINSTALL = directive_types.register(
    DirectiveType(
        "package.uninstall",
        PackageUninstall,
        Role.admin,
        high_impact=lambda p: p.purge,
        subject=_package,
        sets_state=True,
        description="Uninstall a package; purge also removes what it created.",
    )
)
ENABLE = directive_types.register(
    DirectiveType(
        "package.enable", PackageRef, Role.admin, subject=_package, sets_state=True, description="Enable a package."
    )
)
DISABLE = directive_types.register(
    DirectiveType(
        "package.disable", PackageRef, Role.admin, subject=_package, sets_state=True, description="Disable a package."
    )
)


# ---------------------------------------------------------------- preconditions (filing and running)


def published_version(shared: Session, slug: str, version: str | None) -> tuple[Package, PackageVersion]:
    """The package and the requested version (newest published when None); unpublished ones do not exist here."""
    package = shared.exec(select(Package).where(Package.slug == slug, col(Package.is_published))).first()
    if package is None:
        raise NotFound(f"package {slug!r} not found in the marketplace")
    versions = shared.exec(
        select(PackageVersion).where(PackageVersion.package_id == package.id, col(PackageVersion.is_published))
    ).all()
    if not versions:
        raise NotFound(f"package {slug!r} has no published version")
    if version is None:
        return package, max(versions, key=lambda v: version_key(v.version))
    for candidate in versions:
        if candidate.version == version:
            return package, candidate
    available = ", ".join(sorted((v.version for v in versions), key=version_key))
    raise NotFound(f"version {version} of package {slug!r} not found; published versions: {available}")


def require_tier(org: OrgRef, package: Package) -> None:
    if not tier_allows(org.tier, package.min_tier):
        raise Forbidden(
            f"organization tier {org.tier!r} is too low: package {package.slug!r} needs the {package.min_tier!r} tier"
        )


def installation_of(session: Session, slug: str, *, lock: bool = False) -> Installation:
    query = select(Installation).where(Installation.package_slug == slug)
    installation = session.exec(query.with_for_update() if lock else query).first()
    if installation is None:
        raise NotFound(f"package {slug!r} is not installed in this organization")
    return installation


def not_installed(session: Session, slug: str) -> None:
    installed = session.exec(select(Installation).where(Installation.package_slug == slug)).first()
    if installed is not None:
        raise Conflict(
            f"package {slug!r} is already installed (version {installed.package_version}); "
            "use marketplace_upgrade_package to change its version"
        )


def newer_than_installed(installation: Installation, version: str) -> None:
    if version_key(version) <= version_key(installation.package_version):
        raise InvalidState(
            f"package {installation.package_slug!r} is at version {installation.package_version}; "
            f"an upgrade needs a newer version than that (got {version})"
        )
