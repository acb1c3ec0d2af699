"""Publishing packages into the shared registry (the demo catalog, operators). Safe to run again: a package is
updated in place, a new version is added, and an existing version's manifest is never rewritten."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from fleetprompt.db.engine import Database
from fleetprompt.errors import Conflict
from fleetprompt.models.base import utcnow
from fleetprompt.models.marketplace import Package, PackageSpec, PackageVersion

PACKAGE_FIELDS = (
    "name",
    "description",
    "long_description",
    "author",
    "license",
    "pricing_config",
    "min_tier",
    "is_published",
    "is_featured",
    "is_verified",
)


@dataclass(frozen=True)
class Published:
    slug: str
    created: bool
    added_versions: list[str]


def publish_package(db: Database, spec: PackageSpec) -> Published:
    with db.transaction() as session:
        package = session.exec(select(Package).where(Package.slug == spec.slug)).first()
        created = package is None
        if package is None:
            package = Package(slug=spec.slug, name=spec.name)
            session.add(package)
        for field in PACKAGE_FIELDS:
            setattr(package, field, getattr(spec, field))
        package.category = spec.category.value if spec.category else None
        package.pricing_model = spec.pricing_model.value
        package.updated_at = utcnow()
        session.flush()
        existing = {
            v.version: v
            for v in session.exec(select(PackageVersion).where(PackageVersion.package_id == package.id)).all()
        }
        added = []
        for version in spec.versions:
            manifest = version.manifest.model_dump(mode="json")
            stored = existing.get(version.version)
            if stored is None:
                session.add(
                    PackageVersion(
                        package_id=package.id,
                        version=version.version,
                        manifest=manifest,
                        changelog=version.changelog,
                        is_published=version.is_published,
                    )
                )
                added.append(version.version)
            elif stored.manifest != manifest:
                raise Conflict(
                    f"{spec.slug} {version.version} is already published with a different manifest; "
                    "publish a new version instead"
                )
            else:
                stored.is_published = version.is_published
    return Published(spec.slug, created, added)
