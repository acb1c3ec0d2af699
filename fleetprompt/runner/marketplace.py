"""Package handlers: install, upgrade, uninstall, enable, disable. Each records provenance (what an install
created, and what it found already there) so that upgrade and purge touch exactly the install's own resources."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from fleetprompt.db.engine import dialect_insert
from fleetprompt.db.rows import insert_unique
from fleetprompt.ledger.execution import DirectiveRun, FanoutEvent
from fleetprompt.ledger.registry import directive_types, fanout_handlers
from fleetprompt.ledger.signals import SignalDraft, emit
from fleetprompt.ledger.types import marketplace as types
from fleetprompt.models.agents import Agent
from fleetprompt.models.base import utcnow
from fleetprompt.models.forum import CategoryStatus, ForumCategory, ForumThread
from fleetprompt.models.marketplace import (
    AgentSpec,
    CategorySpec,
    Installation,
    InstallationResource,
    Package,
    PackageInstallRecord,
    PackageManifest,
    PackageVersion,
    ResourceKind,
)


@dataclass
class Changes:
    """What one handler run did to the install's resources, reported in the result and the signal."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {k: v for k, v in self.__dict__.items()}


def _registry_version(run: DirectiveRun, slug: str, version: str) -> tuple[Package, PackageVersion, PackageManifest]:
    """Read from the shared registry now: the version may have been unpublished since filing."""
    with run.db.reading() as shared:
        package, package_version = types.published_version(shared, slug, version)
    types.require_tier(run.org, package)
    return package, package_version, PackageManifest.model_validate(package_version.manifest)


def _resources(session: Session, installation: Installation) -> dict[tuple[str, str], InstallationResource]:
    rows = session.exec(
        select(InstallationResource).where(InstallationResource.installation_id == installation.id)
    ).all()
    return {(r.kind, r.key): r for r in rows}


def _agent_config(spec: AgentSpec) -> dict[str, Any]:
    return {**spec.config, "tools": spec.tools}


def _provision_agent(
    run: DirectiveRun, installation: Installation, spec: AgentSpec, changes: Changes
) -> InstallationResource:
    slug = installation.package_slug
    agent = run.session.exec(select(Agent).where(Agent.package_slug == slug, Agent.name == spec.name)).first()
    if agent is None:
        agent = Agent(name=spec.name, package_slug=slug)
        run.session.add(agent)
    # An agent of this package left behind by an earlier uninstall (without purge) is this package's again.
    agent.description, agent.system_prompt, agent.config = spec.description, spec.system_prompt, _agent_config(spec)
    agent.enabled, agent.updated_at = installation.enabled, utcnow()
    run.session.flush()
    changes.added.append(f"agent:{spec.name}")
    return _record(run, installation, ResourceKind.agent, spec.name, agent.id, created=True)


def _provision_category(
    run: DirectiveRun, installation: Installation, spec: CategorySpec, changes: Changes
) -> InstallationResource:
    slug = installation.package_slug
    category = run.session.exec(select(ForumCategory).where(ForumCategory.slug == spec.slug)).first()
    if category is not None and category.package_slug != slug:
        # Someone else's category with that slug: use it, never claim it (purge will leave it alone).
        changes.adopted.append(f"forum_category:{spec.slug}")
        return _record(run, installation, ResourceKind.forum_category, spec.slug, category.id, created=False)
    if category is None:
        category = ForumCategory(slug=spec.slug, name=spec.name, description=spec.description, package_slug=slug)
        category.meta = {"via": "package", "package": slug, "directive_id": str(run.directive.id)}
        insert_unique(run.session, category, f"a forum category with slug {spec.slug!r} was created meanwhile")
        run.emit(
            "forum.category.created",
            {"category_id": str(category.id), "slug": category.slug, "name": category.name, "package": slug},
            subject=("forum.category", str(category.id)),
            dedupe_key=f"forum.category.created:{category.id}",
        )
    else:
        category.name, category.description, category.updated_at = spec.name, spec.description, utcnow()
        if category.status != CategoryStatus.active:
            category.status = CategoryStatus.active.value
            run.emit(
                "forum.category.reactivated",
                {"category_id": str(category.id), "slug": category.slug, "package": slug},
                subject=("forum.category", str(category.id)),
            )
    changes.added.append(f"forum_category:{spec.slug}")
    return _record(run, installation, ResourceKind.forum_category, spec.slug, category.id, created=True)


def _record(
    run: DirectiveRun, installation: Installation, kind: ResourceKind, key: str, resource_id: uuid.UUID, created: bool
) -> InstallationResource:
    resource = InstallationResource(
        installation_id=installation.id,
        kind=kind.value,
        key=key,
        resource_id=resource_id,
        created=created,
        package_version=installation.package_version,
        directive_id=run.directive.id,
    )
    run.session.add(resource)
    return resource


def _remove(run: DirectiveRun, resource: InstallationResource, changes: Changes) -> None:
    """Remove a resource the install created. A category that holds threads is archived, never deleted:
    its threads belong to the organization's members, not to the package."""
    label = f"{resource.kind}:{resource.key}"
    if resource.created and _used_elsewhere(run.session, resource):
        changes.kept.append(label)  # another package adopted it: it stays, theirs to keep
    elif resource.created and resource.kind == ResourceKind.agent:
        agent = run.session.get(Agent, resource.resource_id)
        if agent is not None:
            run.session.delete(agent)
        changes.removed.append(label)
    elif resource.created and resource.kind == ResourceKind.forum_category:
        # Locked first: a thread being created in it meanwhile holds a share lock, so the count sees it.
        category = run.session.get(ForumCategory, resource.resource_id, with_for_update=True)
        if category is not None:
            threads = run.session.exec(
                select(func.count()).select_from(ForumThread).where(ForumThread.category_id == category.id)
            ).one()
            facts = {"category_id": str(category.id), "slug": category.slug, "threads": threads}
            if threads:
                if category.status != CategoryStatus.archived:
                    category.status, category.updated_at = CategoryStatus.archived.value, utcnow()
                    run.emit("forum.category.archived", facts, subject=("forum.category", str(category.id)))
                changes.archived.append(label)
            else:
                run.session.delete(category)
                run.emit("forum.category.deleted", facts, subject=("forum.category", str(category.id)))
                changes.removed.append(label)
    run.session.delete(resource)


def _used_elsewhere(session: Session, resource: InstallationResource) -> bool:
    other = session.exec(
        select(InstallationResource.id)
        .where(
            InstallationResource.resource_id == resource.resource_id,
            InstallationResource.installation_id != resource.installation_id,
        )
        .limit(1)
    ).first()
    return other is not None


def _provision(run: DirectiveRun, installation: Installation, manifest: PackageManifest, changes: Changes) -> None:
    for agent in manifest.agents:
        _provision_agent(run, installation, agent, changes)
    for category in manifest.forum_categories:
        _provision_category(run, installation, category, changes)


def _result(installation: Installation, changes: Changes, **extra: Any) -> dict[str, Any]:
    return {
        "installation_id": str(installation.id),
        "package": installation.package_slug,
        "version": installation.package_version,
        "enabled": installation.enabled,
        **changes.as_dict(),
        **extra,
    }


def _package_subject(installation: Installation) -> tuple[str, str]:
    """Installation facts are about the package: its history in this organization spans every install of it."""
    return ("package", installation.package_slug)


@directive_types.handles("package.install")
def install(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PackageInstall)
    existing = run.session.exec(select(Installation).where(Installation.package_slug == p.slug)).first()
    if existing is not None and existing.created_by_directive == run.directive.id:
        return _result(existing, Changes(), already_done=True)
    types.not_installed(run.session, p.slug)
    package, version, manifest = _registry_version(run, p.slug, p.version)
    installation = Installation(
        package_slug=package.slug,
        package_name=package.name,
        package_version=version.version,
        config=p.config,
        tool_allowlist=manifest.tool_allowlist,
        installed_by=run.directive.requested_by,
        created_by_directive=run.directive.id,
    )
    insert_unique(run.session, installation, f"package {package.slug!r} is already installed")
    changes = Changes()
    _provision(run, installation, manifest, changes)
    run.emit(
        "package.installation.installed",
        {
            "installation_id": str(installation.id),
            "package": package.slug,
            "version": version.version,
            **changes.as_dict(),
        },
        subject=_package_subject(installation),
        dedupe_key=f"package.installation.installed:{installation.id}",
    )
    return _result(installation, changes)


@directive_types.handles("package.upgrade")
def upgrade(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PackageUpgrade)
    installation = types.installation_of(run.session, p.slug, lock=True)
    if installation.package_version == p.version:
        return _result(installation, Changes(), already_done=True)
    types.newer_than_installed(installation, p.version)
    _, version, manifest = _registry_version(run, p.slug, p.version)
    previous = installation.package_version
    installation.package_version, installation.tool_allowlist = version.version, manifest.tool_allowlist
    installation.updated_at = utcnow()
    resources = _resources(run.session, installation)
    wanted = {(ResourceKind.agent.value, a.name) for a in manifest.agents} | {
        (ResourceKind.forum_category.value, c.slug) for c in manifest.forum_categories
    }
    changes = Changes()
    for key, resource in resources.items():
        if key not in wanted:
            _remove(run, resource, changes)
    run.session.flush()
    for agent_spec in manifest.agents:
        resource = resources.get((ResourceKind.agent.value, agent_spec.name))
        if resource is None:
            _provision_agent(run, installation, agent_spec, changes)
            continue
        agent = run.session.get(Agent, resource.resource_id)
        if agent is not None and resource.created:
            agent.description, agent.system_prompt = agent_spec.description, agent_spec.system_prompt
            agent.config, agent.updated_at = _agent_config(agent_spec), utcnow()
        resource.package_version = version.version
        changes.updated.append(f"agent:{agent_spec.name}")
    for category_spec in manifest.forum_categories:
        resource = resources.get((ResourceKind.forum_category.value, category_spec.slug))
        if resource is None:
            _provision_category(run, installation, category_spec, changes)
            continue
        category = run.session.get(ForumCategory, resource.resource_id)
        if category is not None and resource.created:
            category.name, category.description = category_spec.name, category_spec.description
            category.updated_at = utcnow()
        resource.package_version = version.version
    run.emit(
        "package.installation.upgraded",
        {"installation_id": str(installation.id), "from": previous, "to": version.version, **changes.as_dict()},
        subject=_package_subject(installation),
    )
    return _result(installation, changes, previous_version=previous)


@directive_types.handles("package.uninstall")
def uninstall(run: DirectiveRun) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PackageUninstall)
    installation = types.installation_of(run.session, p.slug, lock=True)
    changes = Changes()
    kept = 0
    for resource in _resources(run.session, installation).values():
        if p.purge:
            _remove(run, resource, changes)
        else:
            kept += resource.created
            run.session.delete(resource)
    run.session.delete(installation)
    run.emit(
        "package.installation.uninstalled",
        {
            "installation_id": str(installation.id),
            "package": installation.package_slug,
            "version": installation.package_version,
            "purge": p.purge,
            **changes.as_dict(),
        },
        subject=_package_subject(installation),
        dedupe_key=f"package.installation.uninstalled:{installation.id}",
    )
    return {
        "installation_id": str(installation.id),
        "package": installation.package_slug,
        "version": installation.package_version,
        "uninstalled": True,
        "purge": p.purge,
        "kept_resources": kept,
        **changes.as_dict(),
    }


def _set_enabled(run: DirectiveRun, enabled: bool) -> dict[str, Any]:
    p = run.payload
    assert isinstance(p, types.PackageRef)
    installation = types.installation_of(run.session, p.slug, lock=True)
    changed = installation.enabled != enabled
    if changed:
        installation.enabled, installation.updated_at = enabled, utcnow()
        agent_ids = [
            r.resource_id
            for r in _resources(run.session, installation).values()
            if r.kind == ResourceKind.agent and r.created
        ]
        for agent in run.session.exec(select(Agent).where(col(Agent.id).in_(agent_ids))).all():
            agent.enabled, agent.updated_at = enabled, utcnow()
        event = "enabled" if enabled else "disabled"
        run.emit(
            f"package.installation.{event}",
            {"installation_id": str(installation.id), "package": installation.package_slug, "agents": len(agent_ids)},
            subject=_package_subject(installation),
        )
    return _result(installation, Changes(), changed=changed)


@directive_types.handles("package.enable")
def enable(run: DirectiveRun) -> dict[str, Any]:
    return _set_enabled(run, True)


@directive_types.handles("package.disable")
def disable(run: DirectiveRun) -> dict[str, Any]:
    return _set_enabled(run, False)


@fanout_handlers.subscribe("package.installation.installed", name="marketplace.count_install")
def count_install(event: FanoutEvent) -> None:
    """install_count counts installations, not runs: one record per installation id, however often delivered."""
    payload = event.signal.payload
    with event.db.transaction() as shared:
        package_id = shared.exec(select(Package.id).where(Package.slug == payload["package"])).first()
        if package_id is None:
            return
        insert = dialect_insert(shared)
        inserted = shared.exec(
            insert(PackageInstallRecord)
            .values(
                installation_id=uuid.UUID(payload["installation_id"]),
                package_id=package_id,
                org_id=event.org.id,
                version=payload["version"],
                installed_at=event.signal.occurred_at,
            )
            .on_conflict_do_nothing(index_elements=["installation_id"])
            .returning(PackageInstallRecord.installation_id)
        ).first()
        if inserted is not None:
            package = shared.get(Package, package_id, with_for_update=True)
            assert package is not None
            package.install_count += 1


@fanout_handlers.subscribe("directive.failed", name="marketplace.installation_failed")
def installation_failed(event: FanoutEvent) -> None:
    """A package directive that failed for good is also a fact about the package (the failed handler's own
    transaction was rolled back, so it could not say so itself)."""
    signal = event.signal
    payload = signal.payload
    if payload.get("directive") not in ("package.install", "package.upgrade") or payload.get("will_retry"):
        return
    emit(
        event.session,
        SignalDraft(
            name="package.installation.failed",
            source="fanout",
            payload={
                "package": payload.get("subject_id"),
                "directive": payload["directive"],
                "directive_id": signal.subject_id,
                "error": payload.get("error"),
            },
            dedupe_key=f"package.installation.failed:{signal.id}",
            actor_type=signal.actor_type,
            actor_id=signal.actor_id,
            subject_type="package",
            subject_id=payload.get("subject_id"),
            correlation_id=signal.correlation_id,
            causation_id=signal.subject_id,
        ),
    )
