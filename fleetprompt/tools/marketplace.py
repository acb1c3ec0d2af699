"""Marketplace tools: search and read the package registry and this organization's installations; file
install, upgrade, uninstall and enable/disable directives."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from fleetprompt.ledger.types import marketplace as types
from fleetprompt.models.marketplace import (
    TIER_RANK,
    Installation,
    InstallationResource,
    Package,
    PackageCategory,
    PackageManifest,
    PackageReview,
    PackageVersion,
    PricingModel,
    tier_allows,
    version_key,
)
from fleetprompt.models.tenancy import Role, Tier
from fleetprompt.tools.context import ToolContext
from fleetprompt.tools.declare import directive_tool, read_tool
from fleetprompt.tools.receipts import DirectiveOptions, Filing, NoInput, ToolInput

# ---------------------------------------------------------------- views


class PackageSummary(BaseModel):
    slug: str
    name: str
    description: str
    category: str | None
    pricing_model: str
    pricing_config: dict[str, Any]
    min_tier: str
    latest_version: str
    install_count: int
    rating_avg: float | None
    rating_count: int
    is_featured: bool
    is_verified: bool
    installable: bool = Field(description="Whether this organization's tier allows installing it.")
    installed_version: str | None = Field(description="The version installed in this organization, if any.")


class Provisions(BaseModel):
    agents: list[str]
    forum_categories: list[str]
    tool_allowlist: list[str]


class VersionView(BaseModel):
    version: str
    published_at: datetime
    changelog: str | None
    provisions: Provisions


class PackageDetail(PackageSummary):
    long_description: str | None
    author: str | None
    license: str
    versions: list[VersionView] = Field(description="Every published version, newest first.")


class ResourceView(BaseModel):
    kind: str
    key: str
    resource_id: uuid.UUID
    created: bool = Field(description="True when the install created it; False when it was already there.")
    package_version: str


class InstallationView(BaseModel):
    id: uuid.UUID
    package_slug: str
    package_name: str
    version: str
    enabled: bool
    status: str
    installed_at: datetime
    installed_by: str | None
    tool_allowlist: list[str]
    resources: list[ResourceView]
    latest_version: str | None
    upgrade_available: bool


def _published_versions(shared: Session, package_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[PackageVersion]]:
    rows = shared.exec(
        select(PackageVersion).where(col(PackageVersion.package_id).in_(package_ids), col(PackageVersion.is_published))
    ).all()
    by_package: dict[uuid.UUID, list[PackageVersion]] = {}
    for row in rows:
        by_package.setdefault(row.package_id, []).append(row)
    for versions in by_package.values():
        versions.sort(key=lambda v: version_key(v.version), reverse=True)
    return by_package


def _ratings(shared: Session, package_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[float, int]]:
    rows = shared.exec(
        select(PackageReview.package_id, func.avg(PackageReview.rating), func.count())
        .where(col(PackageReview.package_id).in_(package_ids))
        .group_by(PackageReview.package_id)
    ).all()
    return {pid: (round(float(avg), 2), count) for pid, avg, count in rows}


def _installed_versions(ctx: ToolContext) -> dict[str, str]:
    with ctx.reading() as session:
        return dict(session.exec(select(Installation.package_slug, Installation.package_version)).all())


def _summary(
    ctx: ToolContext,
    package: Package,
    latest: PackageVersion,
    rating: tuple[float, int] | None,
    installed: dict[str, str],
) -> dict[str, Any]:
    return {
        "slug": package.slug,
        "name": package.name,
        "description": package.description,
        "category": package.category,
        "pricing_model": package.pricing_model,
        "pricing_config": package.pricing_config,
        "min_tier": package.min_tier,
        "latest_version": latest.version,
        "install_count": package.install_count,
        "rating_avg": rating[0] if rating else None,
        "rating_count": rating[1] if rating else 0,
        "is_featured": package.is_featured,
        "is_verified": package.is_verified,
        "installable": tier_allows(ctx.org.tier, package.min_tier),
        "installed_version": installed.get(package.slug),
    }


def _provisions(version: PackageVersion) -> Provisions:
    manifest = PackageManifest.model_validate(version.manifest)
    return Provisions(
        agents=[a.name for a in manifest.agents],
        forum_categories=[c.slug for c in manifest.forum_categories],
        tool_allowlist=manifest.tool_allowlist,
    )


# ---------------------------------------------------------------- read tools


class SearchPackagesInput(ToolInput):
    query: str | None = Field(default=None, max_length=200, description="Words in the name or description.")
    category: PackageCategory | None = None
    pricing_model: PricingModel | None = None
    tier: Tier | None = Field(default=None, description="Only packages installable on this tier.")
    limit: int = Field(default=20, ge=1, le=100)


class PackageList(BaseModel):
    items: list[PackageSummary]


@read_tool(
    "marketplace_search_packages",
    title="Search the marketplace",
    description="Published packages, most installed first, filtered by words, category, pricing model and tier.",
    input=SearchPackagesInput,
    output=PackageList,
)
def marketplace_search_packages(ctx: ToolContext, args: SearchPackagesInput) -> PackageList:
    query = select(Package).where(col(Package.is_published))
    if args.query and args.query.strip():
        needle = args.query.strip().lower()
        query = query.where(
            or_(
                func.lower(Package.name).contains(needle, autoescape=True),
                func.lower(Package.description).contains(needle, autoescape=True),
            )
        )
    if args.category is not None:
        query = query.where(Package.category == args.category.value)
    if args.pricing_model is not None:
        query = query.where(Package.pricing_model == args.pricing_model.value)
    if args.tier is not None:
        allowed = [t for t, rank in TIER_RANK.items() if rank <= TIER_RANK[args.tier.value]]
        query = query.where(col(Package.min_tier).in_(allowed))
    query = query.order_by(col(Package.install_count).desc(), col(Package.name))
    with ctx.reading_shared() as shared:
        packages = list(shared.exec(query).all())
        ids = [p.id for p in packages]
        versions = _published_versions(shared, ids)
        ratings = _ratings(shared, ids)
    installed = _installed_versions(ctx)
    items = [
        PackageSummary(**_summary(ctx, p, versions[p.id][0], ratings.get(p.id), installed))
        for p in packages
        if versions.get(p.id)
    ]
    return PackageList(items=items[: args.limit])


class PackageSlugInput(ToolInput):
    slug: types.PackageSlug


@read_tool(
    "marketplace_get_package",
    title="Read a package",
    description="One published package with every published version and what each version provisions.",
    input=PackageSlugInput,
    output=PackageDetail,
)
def marketplace_get_package(ctx: ToolContext, args: PackageSlugInput) -> PackageDetail:
    with ctx.reading_shared() as shared:
        package, latest = types.published_version(shared, args.slug, None)
        versions = _published_versions(shared, [package.id])[package.id]
        rating = _ratings(shared, [package.id]).get(package.id)
    return PackageDetail(
        **_summary(ctx, package, latest, rating, _installed_versions(ctx)),
        long_description=package.long_description,
        author=package.author,
        license=package.license,
        versions=[
            VersionView(
                version=v.version, published_at=v.published_at, changelog=v.changelog, provisions=_provisions(v)
            )
            for v in versions
        ],
    )


class InstallationList(BaseModel):
    items: list[InstallationView]


@read_tool(
    "marketplace_list_installations",
    title="List installed packages",
    description="Installed packages: what each install created, and whether a newer version exists.",
    input=NoInput,
    output=InstallationList,
)
def marketplace_list_installations(ctx: ToolContext, args: NoInput) -> InstallationList:
    with ctx.reading() as session:
        installations = list(session.exec(select(Installation).order_by(col(Installation.package_slug))).all())
        resources: dict[uuid.UUID, list[InstallationResource]] = {}
        for r in session.exec(select(InstallationResource).order_by(col(InstallationResource.key))).all():
            resources.setdefault(r.installation_id, []).append(r)
    with ctx.reading_shared() as shared:
        slugs = [i.package_slug for i in installations]
        published = select(Package).where(col(Package.slug).in_(slugs), col(Package.is_published))
        packages = {p.slug: p.id for p in shared.exec(published).all()}
        versions = _published_versions(shared, list(packages.values()))
    items = []
    for i in installations:
        published = versions.get(packages.get(i.package_slug, uuid.UUID(int=0)), [])
        latest = published[0].version if published else None
        items.append(
            InstallationView(
                id=i.id,
                package_slug=i.package_slug,
                package_name=i.package_name,
                version=i.package_version,
                enabled=i.enabled,
                status="installed" if i.enabled else "disabled",
                installed_at=i.installed_at,
                installed_by=i.installed_by,
                tool_allowlist=i.tool_allowlist,
                resources=[
                    ResourceView(
                        kind=r.kind,
                        key=r.key,
                        resource_id=r.resource_id,
                        created=r.created,
                        package_version=r.package_version,
                    )
                    for r in resources.get(i.id, [])
                ],
                latest_version=latest,
                upgrade_available=latest is not None and version_key(latest) > version_key(i.package_version),
            )
        )
    return InstallationList(items=items)


# ---------------------------------------------------------------- directive tools


class InstallInput(DirectiveOptions):
    slug: types.PackageSlug
    version: types.Version | None = Field(default=None, description="Default: the newest published version.")
    config: types.InstallConfig = Field(default_factory=dict, description="Installation settings (no secrets).")


@directive_tool(
    "marketplace_install_package",
    title="Install a package",
    description="Install a marketplace package into this organization (admins); the organization's tier must allow it.",
    input=InstallInput,
    directives=("package.install",),
    role=Role.admin,
)
def marketplace_install_package(ctx: ToolContext, args: InstallInput) -> Filing:
    with ctx.reading_shared() as shared:
        package, version = types.published_version(shared, args.slug, args.version)
    types.require_tier(ctx.org, package)
    payload = types.PackageInstall(slug=package.slug, version=version.version, config=args.config)
    return Filing(
        "package.install",
        payload,
        f"install {package.slug} {version.version}",
        check=lambda session: types.not_installed(session, package.slug),
    )


class UpgradeInput(DirectiveOptions):
    slug: types.PackageSlug
    version: types.Version | None = Field(default=None, description="Default: the newest published version.")


@directive_tool(
    "marketplace_upgrade_package",
    title="Upgrade a package",
    description=(
        "Move an installed package to a newer version (admins): provisions what the new version adds and removes "
        "what it dropped (only what the install itself created)."
    ),
    input=UpgradeInput,
    directives=("package.upgrade",),
    role=Role.admin,
    destructive=True,  # removes what the new version dropped
)
def marketplace_upgrade_package(ctx: ToolContext, args: UpgradeInput) -> Filing:
    with ctx.reading_shared() as shared:
        package, version = types.published_version(shared, args.slug, args.version)
    types.require_tier(ctx.org, package)

    def check(session: Session) -> None:
        types.newer_than_installed(types.installation_of(session, package.slug), version.version)

    payload = types.PackageUpgrade(slug=package.slug, version=version.version)
    return Filing("package.upgrade", payload, f"upgrade {package.slug} to {version.version}", check=check)


class UninstallInput(DirectiveOptions):
    slug: types.PackageSlug
    purge: bool = Field(
        default=False,
        description="Also remove what the install created (its agents and empty forum categories). High-impact.",
    )


@directive_tool(
    "marketplace_uninstall_package",
    title="Uninstall a package",
    description="Uninstall a package (admins). With purge it also removes what the install created.",
    input=UninstallInput,
    directives=("package.uninstall",),
    role=Role.admin,
    destructive=True,
    approval_note=" With purge, when an assistant asks, a person must approve it before it runs.",
)
def marketplace_uninstall_package(ctx: ToolContext, args: UninstallInput) -> Filing:
    def check(session: Session) -> None:
        types.installation_of(session, args.slug)

    payload = types.PackageUninstall(slug=args.slug, purge=args.purge)
    summary = f"uninstall {args.slug}" + (" and purge what it created" if args.purge else "")
    return Filing("package.uninstall", payload, summary, check=check)


class SetEnabledInput(DirectiveOptions):
    slug: types.PackageSlug
    enabled: bool


@directive_tool(
    "marketplace_set_package_enabled",
    title="Enable or disable a package",
    description="Enable or disable an installed package and the agents it provisioned (admins).",
    input=SetEnabledInput,
    directives=("package.enable", "package.disable"),
    role=Role.admin,
)
def marketplace_set_package_enabled(ctx: ToolContext, args: SetEnabledInput) -> Filing:
    def check(session: Session) -> None:
        types.installation_of(session, args.slug)

    name = "package.enable" if args.enabled else "package.disable"
    verb = "enable" if args.enabled else "disable"
    return Filing(name, types.PackageRef(slug=args.slug), f"{verb} {args.slug}", check=check)
