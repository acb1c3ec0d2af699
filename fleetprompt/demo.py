"""`fleetprompt demo seed`: the demo organization and its owner, created once and found again after."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fleetprompt.accounts.organizations import create_organization, get_organization
from fleetprompt.accounts.passwords import generate_password
from fleetprompt.accounts.users import add_user, get_user_by_email
from fleetprompt.db.engine import Database
from fleetprompt.errors import NotFound

DEMO_SLUG = "demo"
DEMO_NAME = "Demo Company"
DEMO_OWNER = "owner@demo.fleetprompt.local"
CREDENTIALS_FILE = "demo-owner-password"


@dataclass(frozen=True)
class DemoInfo:
    org_slug: str
    owner_email: str
    owner_password: str | None
    created: bool


def seed_demo(db: Database) -> DemoInfo:
    """Idempotent: a second run creates nothing and reports the same organization and owner."""
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
    return DemoInfo(DEMO_SLUG, DEMO_OWNER, password, created)
