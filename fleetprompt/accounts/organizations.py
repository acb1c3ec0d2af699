"""Creating an organization creates and migrates its storage in the same step."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from fleetprompt.accounts.context import OrgRef
from fleetprompt.db.engine import Database
from fleetprompt.db.migrate import create_tenant_storage, drop_tenant_storage
from fleetprompt.db.tenancy import validate_slug
from fleetprompt.errors import Conflict, InvalidInput, NotFound
from fleetprompt.models.tenancy import Organization, Tier


def _ref(org: Organization) -> OrgRef:
    return OrgRef(id=org.id, slug=org.slug, tier=org.tier)


def create_organization(db: Database, slug: str, name: str, tier: str = Tier.free.value) -> OrgRef:
    validate_slug(slug)
    name = (name or "").strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("organization name must be 1 to 200 characters")
    if tier not in Tier.__members__:
        raise InvalidInput(f"tier must be one of {', '.join(Tier.__members__)} (got {tier!r})")
    try:
        with db.transaction() as session:
            if session.exec(select(Organization.id).where(Organization.slug == slug)).first():
                raise Conflict(f"organization {slug!r} already exists")
            org = Organization(slug=slug, name=name, tier=tier)
            session.add(org)
            session.flush()
            if db.is_postgres:
                # Schema, tables and the organization row commit or roll back together.
                create_tenant_storage(db, slug, connection=session.connection())
            else:
                try:
                    create_tenant_storage(db, slug)
                except BaseException:
                    drop_tenant_storage(db, slug)
                    raise
    except IntegrityError:
        raise Conflict(f"organization {slug!r} already exists") from None
    return _ref(org)


def get_organization(db: Database, slug: str) -> OrgRef:
    validate_slug(slug)
    with db.reading() as session:
        org = session.exec(select(Organization).where(Organization.slug == slug)).first()
    if org is None:
        raise NotFound(f"unknown organization {slug!r}")
    return _ref(org)


def list_organizations(db: Database) -> list[OrgRef]:
    with db.reading() as session:
        return [_ref(org) for org in session.exec(select(Organization).order_by(Organization.slug)).all()]
