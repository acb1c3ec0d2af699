"""`fleetprompt demo seed`: the demo organization, its owner and the marketplace catalog, created once and
found again after. The demo forum comes from installing `community-starter` 1.0.0 (through a directive)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.accounts.organizations import create_organization, get_organization
from fleetprompt.accounts.passwords import generate_password
from fleetprompt.accounts.users import add_user, get_user_by_email
from fleetprompt.db.engine import Database
from fleetprompt.errors import NotFound
from fleetprompt.ledger import Ledger
from fleetprompt.runner.catalog import PackageSpec, publish_package
from fleetprompt.tools import DirectiveReceipt, call_tool

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Company"
DEMO_OWNER = "owner@demo.fleetprompt.local"
CREDENTIALS_FILE = "demo-owner-password"
CATALOG = Path(__file__).with_name("catalog.json")
STARTER = {"slug": "community-starter", "version": "1.0.0", "idempotency_key": "demo-seed:community-starter"}


@dataclass(frozen=True)
class DemoInfo:
    org_slug: str
    owner_email: str
    owner_password: str | None
    created: bool
    packages: list[str] = field(default_factory=list)
    starter: DirectiveReceipt | None = None


def demo_catalog() -> list[PackageSpec]:
    return TypeAdapter(list[PackageSpec]).validate_python(json.loads(CATALOG.read_text()))


def seed_demo(db: Database, ledger: Ledger | None = None) -> DemoInfo:
    """Idempotent: a second run creates nothing and reports the same organization, owner and directive."""
    packages = [publish_package(db, spec).slug for spec in demo_catalog()]
    created = False
    try:
        get_organization(db, DEMO_SLUG)
    except NotFound:
        create_organization(db, DEMO_SLUG, DEMO_NAME, tier="pro")
        created = True
    password_file = db.settings.data_dir / CREDENTIALS_FILE
    try:
        get_user_by_email(db, DEMO_OWNER)
    except NotFound:
        password = generate_password()
        add_user(db, DEMO_OWNER, DEMO_SLUG, "owner", password, name="Demo Owner")
        db.settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password)
        created = True
    password = password_file.read_text().strip() if password_file.exists() else None
    starter = None
    if ledger is not None:
        ctx = RequestContext(org=get_organization(db, DEMO_SLUG), actor=Actor.operator("demo-seed"))
        receipt = call_tool(ledger, ctx, "marketplace_install_package", STARTER)
        assert isinstance(receipt, DirectiveReceipt)
        starter = receipt
    return DemoInfo(DEMO_SLUG, DEMO_OWNER, password, created, packages, starter)
