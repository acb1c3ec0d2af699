"""Marketplace tools and package handlers through call_tool: search, read, install, upgrade, uninstall (with and
without purge), enable/disable, provenance, install counts, runner re-checks and tenancy (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from conftest import Org, make_org
from sqlmodel import SQLModel, func, select

from fleetprompt.accounts.context import RequestContext
from fleetprompt.accounts.organizations import create_organization
from fleetprompt.accounts.users import add_user
from fleetprompt.demo import demo_catalog
from fleetprompt.errors import Conflict, Forbidden, IdempotencyKeyReused, InvalidInput, InvalidState, NotFound
from fleetprompt.ledger import SignalFilter
from fleetprompt.models.agents import Agent
from fleetprompt.models.forum import ForumCategory, ForumThread
from fleetprompt.models.ledger import Directive, Signal, SignalDelivery
from fleetprompt.models.marketplace import (
    Installation,
    InstallationResource,
    Package,
    PackageInstallRecord,
    PackageSpec,
    VersionSpec,
)
from fleetprompt.platform import Platform
from fleetprompt.runner.catalog import publish_package
from fleetprompt.tools import DirectiveReceipt, call_tool

TENANT = "acme"
STARTER = "community-starter"
DIRECTIVE_TOOLS = (
    ("marketplace_install_package", {"slug": STARTER}),
    ("marketplace_upgrade_package", {"slug": STARTER}),
    ("marketplace_uninstall_package", {"slug": STARTER}),
    ("marketplace_uninstall_package", {"slug": STARTER, "purge": True}),
    ("marketplace_set_package_enabled", {"slug": STARTER, "enabled": False}),
    ("marketplace_set_package_enabled", {"slug": STARTER, "enabled": True}),
)
WELCOME_PROMPT_1_0 = (
    "You welcome people who start a thread: thank them, point to the right category, and keep it to two sentences."
)
WELCOME_PROMPT_1_1 = (
    "You welcome people who start a thread: thank them by name, point to the right category, "
    "and keep it to two sentences."
)
STARTER_1_0_ADDED = [
    "agent:Welcome Agent",
    "forum_category:announcements",
    "forum_category:general",
    "forum_category:help",
]


# ---------------------------------------------------------------- helpers


def call(platform: Platform, ctx: RequestContext, tool: str, /, **arguments: Any) -> Any:
    return call_tool(platform.ledger, ctx, tool, arguments)


def run(platform: Platform, ctx: RequestContext, tool: str, /, **arguments: Any) -> DirectiveReceipt:
    """File through the tool and wait for the outcome (or for a person to approve it)."""
    receipt = call(platform, ctx, tool, wait_seconds=5, **arguments)
    assert isinstance(receipt, DirectiveReceipt)
    return receipt


def done(platform: Platform, ctx: RequestContext, tool: str, /, **arguments: Any) -> DirectiveReceipt:
    receipt = run(platform, ctx, tool, **arguments)
    assert (receipt.status, receipt.error) == ("succeeded", None), receipt.summary
    assert receipt.finished and receipt.result is not None
    return receipt


def catalog_spec(slug: str) -> PackageSpec:
    return next(spec for spec in demo_catalog() if spec.slug == slug)


@pytest.fixture
def catalog(platform: Platform) -> None:
    for spec in demo_catalog():
        publish_package(platform.db, spec)


def make_pro_org(platform: Platform, slug: str = "initech") -> Org:
    ref = create_organization(platform.db, slug, slug.title(), tier="pro")
    users = {"admin": add_user(platform.db, f"admin@{slug}.test", slug, "admin", "password-123").user.id}
    return Org(ref, users)


def rows(platform: Platform, model: type[SQLModel], tenant: str | None = TENANT) -> list[Any]:
    with platform.db.reading(tenant) as session:
        return list(session.exec(select(model)).all())


def agents(platform: Platform, tenant: str = TENANT) -> dict[str, Agent]:
    return {a.name: a for a in rows(platform, Agent, tenant)}


def categories(platform: Platform, tenant: str = TENANT) -> dict[str, ForumCategory]:
    return {c.slug: c for c in rows(platform, ForumCategory, tenant)}


def provenance(platform: Platform, tenant: str = TENANT) -> dict[tuple[str, str], InstallationResource]:
    return {(r.kind, r.key): r for r in rows(platform, InstallationResource, tenant)}


def installations(platform: Platform, tenant: str = TENANT) -> list[Installation]:
    return rows(platform, Installation, tenant)


def install_count(platform: Platform, slug: str = STARTER) -> int:
    with platform.db.reading() as shared:
        return shared.exec(select(Package.install_count).where(Package.slug == slug)).one()


def install_records(platform: Platform, slug: str = STARTER) -> list[PackageInstallRecord]:
    with platform.db.reading() as shared:
        package_id = shared.exec(select(Package.id).where(Package.slug == slug)).one()
        return list(shared.exec(select(PackageInstallRecord).where(PackageInstallRecord.package_id == package_id)))


def signals(platform: Platform, name: str, tenant: str = TENANT) -> list[Signal]:
    found, cursor = platform.ledger.signals(tenant, SignalFilter(name=name), limit=500)
    assert cursor is None
    return found


def state(platform: Platform, tenant: str = TENANT) -> dict[str, Any]:
    """Everything a marketplace tool could have written in a tenant, and the shared install counts."""
    with platform.db.reading() as shared:
        counts = dict(shared.exec(select(Package.slug, Package.install_count)).all())
    return {
        "directives": sorted(str(d.id) for d in rows(platform, Directive, tenant)),
        "signals": sorted(str(s.id) for s in rows(platform, Signal, tenant)),
        "agents": sorted(agents(platform, tenant)),
        "categories": sorted(categories(platform, tenant)),
        "installations": sorted(i.package_slug for i in installations(platform, tenant)),
        "resources": sorted(provenance(platform, tenant)),
        "install_counts": counts,
    }


def listed(platform: Platform, ctx: RequestContext) -> dict[str, Any]:
    return {i.package_slug: i for i in call(platform, ctx, "marketplace_list_installations").items}


def found(platform: Platform, ctx: RequestContext, **arguments: Any) -> list[str]:
    return [p.slug for p in call(platform, ctx, "marketplace_search_packages", **arguments).items]


# ---------------------------------------------------------------- reads


def test_search_filters_sorts_and_reports_this_organizations_view(platform: Platform, org: Org, catalog: None) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    # No installs yet: ties on install_count are ordered by name.
    assert found(platform, member) == [
        "community-starter",
        "customer-support",
        "field-service",
        "sales-automation",
        "starter-agents",
    ]
    done(platform, admin, "marketplace_install_package", slug="customer-support")
    done(platform, admin, "marketplace_uninstall_package", slug="customer-support")
    done(platform, admin, "marketplace_install_package", slug="customer-support")
    done(platform, admin, "marketplace_install_package", slug="starter-agents")
    done(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    assert [install_count(platform, s) for s in ("customer-support", "starter-agents", STARTER)] == [2, 1, 1]
    assert found(platform, member) == [
        "customer-support",
        "community-starter",
        "starter-agents",
        "field-service",
        "sales-automation",
    ]

    items = {p.slug: p for p in call(platform, member, "marketplace_search_packages").items}
    starter = items[STARTER]
    assert (starter.latest_version, starter.installed_version, starter.installable, starter.install_count) == (
        "1.1.0",
        "1.0.0",
        True,
        1,
    )
    assert (starter.category, starter.pricing_model, starter.min_tier, starter.name) == (
        "community",
        "free",
        "free",
        "Community Starter",
    )
    assert (starter.rating_avg, starter.rating_count, starter.is_featured, starter.is_verified) == (None, 0, True, True)
    field = items["field-service"]
    assert (field.installable, field.installed_version, field.min_tier, field.install_count) == (False, None, "pro", 0)
    assert field.pricing_config == {
        "tiers": [{"name": "Free", "limit": 100, "price": 0}, {"name": "Pro", "limit": 5000, "price": 99}]
    }
    assert (items["sales-automation"].installable, items["customer-support"].installed_version) == (False, "2.1.0")

    # Words: case-insensitive substrings of the name or the description; LIKE wildcards are literal.
    assert found(platform, member, query="SUPPORT") == ["customer-support", "starter-agents"]
    assert found(platform, member, query="inventory") == ["field-service"]  # description only
    assert found(platform, member, query="  Forum Categories ") == [STARTER]
    assert found(platform, member, query="agents") == ["customer-support", "starter-agents", "field-service"]
    assert found(platform, member, query="%") == []
    assert found(platform, member, query="_") == []
    assert found(platform, member, query="no such words") == []
    # Category, pricing model, tier, limit and combinations.
    assert found(platform, member, category="operations") == ["field-service"]
    assert found(platform, member, category="community") == [STARTER]
    assert found(platform, member, category="finance") == []
    assert found(platform, member, pricing_model="revenue_share") == ["sales-automation"]
    assert found(platform, member, pricing_model="paid") == ["customer-support"]
    assert found(platform, member, pricing_model="freemium") == ["field-service"]
    assert found(platform, member, tier="free") == ["customer-support", STARTER, "starter-agents"]
    assert len(found(platform, member, tier="pro")) == 5
    assert len(found(platform, member, tier="enterprise")) == 5
    assert found(platform, member, query="agents", tier="free") == ["customer-support", "starter-agents"]
    assert found(platform, member, query="agents", tier="free", category="development") == ["starter-agents"]
    assert found(platform, member, limit=2) == ["customer-support", STARTER]
    assert found(platform, member, limit=1, tier="pro", pricing_model="freemium") == ["field-service"]

    for bad in (
        {"category": "nope"},
        {"pricing_model": "gratis"},
        {"tier": "gold"},
        {"limit": 0},
        {"limit": 101},
        {"query": "x" * 201},
        {"tenant": "globex"},
    ):
        with pytest.raises(InvalidInput):
            call(platform, member, "marketplace_search_packages", **bad)


def test_get_package_lists_every_published_version_and_what_it_provisions(
    platform: Platform, org: Org, catalog: None
) -> None:
    member = org.ctx("member")
    detail = call(platform, member, "marketplace_get_package", slug=f"  {STARTER} ")
    assert (detail.slug, detail.latest_version, detail.installed_version, detail.installable) == (
        STARTER,
        "1.1.0",
        None,
        True,
    )
    assert (detail.author, detail.license) == ("FleetPrompt", "MIT")
    assert [v.version for v in detail.versions] == ["1.1.0", "1.0.0"]
    newest, first = detail.versions
    assert newest.provisions.agents == ["Welcome Agent", "FAQ Agent"]
    assert newest.provisions.forum_categories == ["announcements", "general", "show-and-tell"]
    assert newest.provisions.tool_allowlist == ["forum_get_thread", "forum_list_threads", "forum_reply", "forum_search"]
    assert first.provisions.agents == ["Welcome Agent"]
    assert first.provisions.forum_categories == ["announcements", "general", "help"]
    assert first.provisions.tool_allowlist == ["forum_get_thread", "forum_list_threads", "forum_reply"]
    assert first.changelog == "Announcements, General and Help categories; a welcome agent."

    field = call(platform, member, "marketplace_get_package", slug="field-service")
    assert (field.min_tier, field.installable, [v.version for v in field.versions]) == ("pro", False, ["1.0.0"])
    assert field.versions[0].provisions.agents == [
        "Dispatcher",
        "Customer Service",
        "QA Inspector",
        "Inventory Manager",
    ]

    with pytest.raises(NotFound, match="'no-such-package' not found"):
        call(platform, member, "marketplace_get_package", slug="no-such-package")
    for bad in ({"slug": "Community_Starter"}, {"slug": ""}, {"slug": STARTER, "version": "1.0.0"}, {}):
        with pytest.raises(InvalidInput):
            call(platform, member, "marketplace_get_package", **bad)


def test_unpublished_packages_and_versions_do_not_exist_for_the_tools(
    platform: Platform, org: Org, catalog: None
) -> None:
    admin = org.ctx("admin")
    publish_package(
        platform.db,
        PackageSpec(
            slug="hidden-pack", name="Hidden Pack", is_published=False, versions=[VersionSpec(version="1.0.0")]
        ),
    )
    publish_package(
        platform.db,
        PackageSpec(slug="draft-pack", name="Draft Pack", versions=[VersionSpec(version="1.0.0", is_published=False)]),
    )
    publish_package(
        platform.db,
        PackageSpec(
            slug="beta-pack",
            name="Beta Pack",
            versions=[VersionSpec(version="1.0.0"), VersionSpec(version="2.0.0", is_published=False)],
        ),
    )
    assert found(platform, admin, query="pack") == ["beta-pack"]
    assert call(platform, admin, "marketplace_search_packages", query="pack").items[0].latest_version == "1.0.0"
    assert "hidden-pack" not in found(platform, admin, limit=100)
    assert "draft-pack" not in found(platform, admin, limit=100)
    with pytest.raises(NotFound, match="'hidden-pack' not found in the marketplace"):
        call(platform, admin, "marketplace_get_package", slug="hidden-pack")
    with pytest.raises(NotFound, match="'draft-pack' has no published version"):
        call(platform, admin, "marketplace_get_package", slug="draft-pack")
    beta = call(platform, admin, "marketplace_get_package", slug="beta-pack")
    assert [v.version for v in beta.versions] == ["1.0.0"]

    before = state(platform)
    with pytest.raises(NotFound, match="'hidden-pack' not found"):
        call(platform, admin, "marketplace_install_package", slug="hidden-pack")
    with pytest.raises(NotFound, match="has no published version"):
        call(platform, admin, "marketplace_install_package", slug="draft-pack")
    with pytest.raises(
        NotFound, match=r"version 2\.0\.0 of package 'beta-pack' not found; published versions: 1\.0\.0$"
    ):
        call(platform, admin, "marketplace_install_package", slug="beta-pack", version="2.0.0")
    with pytest.raises(NotFound, match=r"published versions: 1\.0\.0, 1\.1\.0$"):
        call(platform, admin, "marketplace_install_package", slug=STARTER, version="1.10.0")
    with pytest.raises(NotFound, match="'no-such-package' not found"):
        call(platform, admin, "marketplace_install_package", slug="no-such-package")
    assert state(platform) == before

    # Unpublishing after an install: the installation stays, but no unpublished version is offered as an upgrade.
    done(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    assert listed(platform, admin)[STARTER].upgrade_available
    spec = catalog_spec(STARTER)
    spec.versions[1].is_published = False
    publish_package(platform.db, spec)
    view = listed(platform, admin)[STARTER]
    assert (view.version, view.latest_version, view.upgrade_available) == ("1.0.0", "1.0.0", False)
    with pytest.raises(NotFound, match=r"published versions: 1\.0\.0$"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER, version="1.1.0")
    # The whole package unpublished (its versions still marked published): no version of it is offered either.
    publish_package(platform.db, catalog_spec(STARTER).model_copy(update={"is_published": False}))
    view = listed(platform, admin)[STARTER]
    assert (view.version, view.latest_version, view.upgrade_available) == ("1.0.0", None, False)
    assert STARTER not in found(platform, admin, limit=100)
    with pytest.raises(NotFound, match=f"'{STARTER}' not found in the marketplace"):
        call(platform, admin, "marketplace_get_package", slug=STARTER)
    with pytest.raises(NotFound, match=f"'{STARTER}' not found in the marketplace"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER)
    # Uninstalling does not need the registry.
    assert done(platform, admin, "marketplace_uninstall_package", slug=STARTER).result["uninstalled"] is True
    assert installations(platform) == []


# ---------------------------------------------------------------- install


def test_install_provisions_exactly_the_manifest_and_counts_one_installation_once(
    platform: Platform, org: Org, catalog: None
) -> None:
    admin = org.ctx("admin")
    receipt = done(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    assert (receipt.type, receipt.created, receipt.subject.type, receipt.subject.id) == (
        "package.install",
        True,
        "package",
        STARTER,
    )
    result = receipt.result
    assert (result["package"], result["version"], result["enabled"]) == (STARTER, "1.0.0", True)
    assert result["added"] == STARTER_1_0_ADDED
    assert (result["adopted"], result["removed"], result["updated"], result["archived"]) == ([], [], [], [])
    installation_id = uuid.UUID(result["installation_id"])

    [installation] = installations(platform)
    assert (installation.id, installation.package_slug, installation.package_version) == (
        installation_id,
        STARTER,
        "1.0.0",
    )
    assert (installation.installed_by, installation.created_by_directive) == (
        str(org.users["admin"]),
        receipt.directive_id,
    )
    assert installation.tool_allowlist == ["forum_get_thread", "forum_list_threads", "forum_reply"]
    [agent] = agents(platform).values()
    assert (agent.name, agent.package_slug, agent.enabled, agent.system_prompt) == (
        "Welcome Agent",
        STARTER,
        True,
        WELCOME_PROMPT_1_0,
    )
    assert agent.config == {"tools": ["forum_get_thread", "forum_reply"]}
    made = categories(platform)
    assert sorted(made) == ["announcements", "general", "help"]
    assert {c.package_slug for c in made.values()} == {STARTER}
    assert {c.status for c in made.values()} == {"active"}
    assert made["help"].name == "Help"

    resources = provenance(platform)
    assert sorted(f"{kind}:{key}" for kind, key in resources) == STARTER_1_0_ADDED
    assert {(r.created, r.package_version, r.installation_id, r.directive_id) for r in resources.values()} == {
        (True, "1.0.0", installation_id, receipt.directive_id)
    }
    assert resources[("agent", "Welcome Agent")].resource_id == agent.id
    assert {resources[("forum_category", s)].resource_id for s in made} == {c.id for c in made.values()}

    [installed] = signals(platform, "package.installation.installed")
    assert (installed.subject_type, installed.subject_id) == ("package", STARTER)
    assert installed.payload["installation_id"] == str(installation_id)
    assert installed.causation_id == str(receipt.directive_id)
    assert installed.payload["added"] == STARTER_1_0_ADDED
    assert len(signals(platform, "forum.category.created")) == 3
    assert install_count(platform) == 1
    assert [r.installation_id for r in install_records(platform)] == [installation_id]

    view = listed(platform, org.ctx("member"))[STARTER]
    assert (view.id, view.version, view.latest_version, view.upgrade_available) == (
        installation_id,
        "1.0.0",
        "1.1.0",
        True,
    )
    assert (view.enabled, view.status, view.installed_by) == (True, "installed", str(org.users["admin"]))
    assert [(r.kind, r.key, r.created, r.package_version) for r in view.resources] == [
        ("agent", "Welcome Agent", True, "1.0.0"),
        ("forum_category", "announcements", True, "1.0.0"),
        ("forum_category", "general", True, "1.0.0"),
        ("forum_category", "help", True, "1.0.0"),
    ]
    assert call(platform, org.ctx("member"), "marketplace_get_package", slug=STARTER).installed_version == "1.0.0"

    # Running the install again (rerun) or delivering its signal again (replay) provisions and counts nothing more.
    before = state(platform)
    delivery_key = (installed.id, "marketplace.count_install")
    with platform.db.reading(TENANT) as session:
        first_delivery = session.get(SignalDelivery, delivery_key)
    assert first_delivery is not None and first_delivery.status == "delivered"
    platform.ledger.rerun(admin, receipt.directive_id)
    rerun = platform.ledger.get(TENANT, receipt.directive_id)
    assert (rerun.status, rerun.run_number, rerun.result["already_done"]) == ("succeeded", 2, True)
    assert rerun.result["installation_id"] == str(installation_id)
    replayed = platform.ledger.replay(TENANT, SignalFilter(name="package.installation.installed"))
    assert [s.id for s in replayed] == [installed.id]
    with platform.db.reading(TENANT) as session:
        again = session.get(SignalDelivery, delivery_key)
    assert again is not None and again.status == "delivered"
    assert again.delivered_at > first_delivery.delivered_at  # the handler really ran a second time
    after = state(platform)
    assert after["install_counts"] == before["install_counts"] and install_count(platform) == 1
    assert (after["agents"], after["categories"], after["resources"]) == (
        before["agents"],
        before["categories"],
        before["resources"],
    )
    assert len(signals(platform, "package.installation.installed")) == 1
    assert len(install_records(platform)) == 1
    assert len(rows(platform, Agent)) == 1 and len(rows(platform, ForumCategory)) == 3

    # Installing what is installed is refused when filing; the same key and arguments return the original receipt.
    before = state(platform)
    with pytest.raises(Conflict, match=r"already installed \(version 1\.0\.0\).*marketplace_upgrade_package"):
        call(platform, admin, "marketplace_install_package", slug=STARTER)
    with pytest.raises(Conflict):
        call(platform, org.ctx("owner"), "marketplace_install_package", slug=STARTER, version="1.0.0")
    assert state(platform) == before
    keyed = done(platform, admin, "marketplace_install_package", slug="starter-agents", idempotency_key="k-1")
    repeat = run(platform, admin, "marketplace_install_package", slug="starter-agents", idempotency_key="k-1")
    assert (repeat.directive_id, repeat.created, repeat.status) == (keyed.directive_id, False, "succeeded")
    assert repeat.summary.startswith("already filed: ")
    with pytest.raises(IdempotencyKeyReused, match="k-1"):
        call(platform, admin, "marketplace_uninstall_package", slug="starter-agents", idempotency_key="k-1")
    with pytest.raises(IdempotencyKeyReused, match="another requester"):
        call(platform, org.ctx("owner"), "marketplace_install_package", slug="starter-agents", idempotency_key="k-1")
    assert install_count(platform, "starter-agents") == 1


def test_reinstall_after_uninstall_is_a_new_installation(platform: Platform, org: Org, catalog: None) -> None:
    admin = org.ctx("admin")
    first = done(platform, admin, "marketplace_install_package", slug=STARTER)
    welcome = agents(platform)["Welcome Agent"].id
    gone = done(platform, admin, "marketplace_uninstall_package", slug=STARTER)
    assert gone.result["uninstalled"] is True
    assert installations(platform) == [] and provenance(platform) == {}
    second = done(platform, admin, "marketplace_install_package", slug=STARTER)
    assert second.created and second.directive_id != first.directive_id
    assert second.result["installation_id"] != first.result["installation_id"]
    [installation] = installations(platform)
    assert (str(installation.id), installation.package_version) == (second.result["installation_id"], "1.1.0")
    # What the first install left behind is this package's again: reused, not duplicated.
    assert sorted(agents(platform)) == ["FAQ Agent", "Welcome Agent"]
    assert agents(platform)["Welcome Agent"].id == welcome
    assert sorted(categories(platform)) == ["announcements", "general", "show-and-tell"]
    assert len(provenance(platform)) == 5
    assert {r.installation_id for r in provenance(platform).values()} == {installation.id}
    assert install_count(platform) == 2
    assert len(install_records(platform)) == 2
    assert len(signals(platform, "package.installation.installed")) == 2
    assert listed(platform, admin)[STARTER].id == installation.id


def test_tier_gates_installing_and_a_pro_organization_can_install(platform: Platform, org: Org, catalog: None) -> None:
    before = state(platform)
    for slug in ("field-service", "sales-automation"):
        with pytest.raises(Forbidden, match=rf"tier 'free' is too low: package '{slug}' needs the 'pro' tier"):
            call(platform, org.ctx("owner"), "marketplace_install_package", slug=slug)
    with pytest.raises(Forbidden, match="tier"):
        call(platform, org.ctx("admin"), "marketplace_upgrade_package", slug="field-service")
    assert state(platform) == before

    pro = make_pro_org(platform)
    admin = pro.ctx("admin")
    assert call(platform, admin, "marketplace_get_package", slug="field-service").installable is True
    assert len(found(platform, admin)) == 5
    receipt = done(platform, admin, "marketplace_install_package", slug="field-service")
    assert receipt.result["added"] == [
        "agent:Dispatcher",
        "agent:Customer Service",
        "agent:QA Inspector",
        "agent:Inventory Manager",
    ]
    assert sorted(agents(platform, "initech")) == [
        "Customer Service",
        "Dispatcher",
        "Inventory Manager",
        "QA Inspector",
    ]
    assert install_count(platform, "field-service") == 1
    assert agents(platform) == {}  # nothing in acme


# ---------------------------------------------------------------- upgrade


def test_upgrade_adds_updates_and_removes_only_what_the_install_created(
    platform: Platform, org: Org, catalog: None
) -> None:
    admin = org.ctx("admin")
    installed = done(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    before_agents, before_categories = agents(platform), categories(platform)
    # Disabled installs stay disabled through an upgrade, new agents included.
    done(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=False)

    receipt = done(platform, admin, "marketplace_upgrade_package", slug=STARTER)
    assert (receipt.type, receipt.subject.id) == ("package.upgrade", STARTER)
    result = receipt.result
    assert (result["version"], result["previous_version"], result["installation_id"]) == (
        "1.1.0",
        "1.0.0",
        installed.result["installation_id"],
    )
    assert result["removed"] == ["forum_category:help"]
    assert result["added"] == ["agent:FAQ Agent", "forum_category:show-and-tell"]
    assert result["updated"] == ["agent:Welcome Agent"]
    assert (result["archived"], result["adopted"]) == ([], [])

    now_agents, now_categories = agents(platform), categories(platform)
    assert sorted(now_agents) == ["FAQ Agent", "Welcome Agent"]
    welcome = now_agents["Welcome Agent"]
    assert welcome.id == before_agents["Welcome Agent"].id
    assert welcome.system_prompt == WELCOME_PROMPT_1_1 != before_agents["Welcome Agent"].system_prompt
    assert now_agents["FAQ Agent"].config == {"tools": ["forum_search", "forum_get_thread", "forum_reply"]}
    assert (welcome.enabled, now_agents["FAQ Agent"].enabled) == (False, False)
    assert sorted(now_categories) == ["announcements", "general", "show-and-tell"]
    for kept in ("announcements", "general"):
        assert now_categories[kept].id == before_categories[kept].id
    assert now_categories["show-and-tell"].package_slug == STARTER

    resources = provenance(platform)
    assert sorted(f"{k}:{key}" for k, key in resources) == [
        "agent:FAQ Agent",
        "agent:Welcome Agent",
        "forum_category:announcements",
        "forum_category:general",
        "forum_category:show-and-tell",
    ]
    assert {(r.package_version, r.created) for r in resources.values()} == {("1.1.0", True)}
    assert resources[("forum_category", "show-and-tell")].directive_id == receipt.directive_id
    [upgraded] = signals(platform, "package.installation.upgraded")
    assert (upgraded.payload["from"], upgraded.payload["to"]) == ("1.0.0", "1.1.0")
    view = listed(platform, admin)[STARTER]
    assert (view.version, view.latest_version, view.upgrade_available, view.status) == (
        "1.1.0",
        "1.1.0",
        False,
        "disabled",
    )
    assert view.tool_allowlist == ["forum_get_thread", "forum_list_threads", "forum_reply", "forum_search"]
    assert install_count(platform) == 1  # an upgrade is not a new installation

    before = state(platform)
    with pytest.raises(InvalidState, match=r"at version 1\.1\.0; an upgrade needs a newer version"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER)
    with pytest.raises(InvalidState, match=r"got 1\.0\.0"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER, version="1.0.0")
    with pytest.raises(NotFound, match=r"published versions: 1\.0\.0, 1\.1\.0"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER, version="2.0.0")
    with pytest.raises(NotFound, match="'starter-agents' is not installed"):
        call(platform, admin, "marketplace_upgrade_package", slug="starter-agents")
    assert state(platform) == before


def test_upgrade_archives_a_dropped_category_that_holds_threads(platform: Platform, org: Org, catalog: None) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    done(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    help_id = categories(platform)["help"].id
    thread = done(platform, member, "forum_create_thread", category_id=str(help_id), title="Stuck", content="Help me")
    thread_id = uuid.UUID(thread.result["thread_id"])

    result = done(platform, admin, "marketplace_upgrade_package", slug=STARTER, version="1.1.0").result
    assert (result["archived"], result["removed"]) == (["forum_category:help"], [])
    help_category = categories(platform)["help"]
    assert (help_category.id, help_category.status) == (help_id, "archived")
    [kept] = rows(platform, ForumThread)
    assert (kept.id, kept.category_id) == (thread_id, help_id)
    assert ("forum_category", "help") not in provenance(platform)
    # Archived: it stays readable, takes no new threads.
    assert call(platform, member, "forum_get_thread", thread_id=str(thread_id)).thread.title == "Stuck"
    with pytest.raises(InvalidState):
        call(platform, member, "forum_create_thread", category_id=str(help_id), title="Again", content="x")


# ---------------------------------------------------------------- uninstall


def test_purge_removes_what_the_install_created_and_leaves_what_it_adopted(
    platform: Platform, org: Org, catalog: None
) -> None:
    admin, member = org.ctx("admin"), org.ctx("member")
    general = done(platform, admin, "forum_create_category", slug="general", name="Our general")
    general_id = uuid.UUID(general.result["category_id"])
    thread = done(platform, member, "forum_create_thread", category_id=str(general_id), title="Hi", content="Hello")

    receipt = done(platform, admin, "marketplace_install_package", slug=STARTER)
    result = receipt.result
    assert result["adopted"] == ["forum_category:general"]
    assert result["added"] == [
        "agent:Welcome Agent",
        "agent:FAQ Agent",
        "forum_category:announcements",
        "forum_category:show-and-tell",
    ]
    adopted = provenance(platform)[("forum_category", "general")]
    assert (adopted.created, adopted.resource_id) == (False, general_id)
    kept_general = categories(platform)["general"]
    assert (kept_general.name, kept_general.package_slug) == ("Our general", None)  # not claimed, not renamed
    view = listed(platform, admin)[STARTER]
    assert {(r.key, r.created) for r in view.resources if r.kind == "forum_category"} == {
        ("announcements", True),
        ("general", False),
        ("show-and-tell", True),
    }
    assert len(signals(platform, "forum.category.created")) == 3  # general (by the tool) + two by the install

    purge = done(platform, admin, "marketplace_uninstall_package", slug=STARTER, purge=True)
    assert (purge.type, purge.result["uninstalled"], purge.result["purge"]) == ("package.uninstall", True, True)
    assert sorted(purge.result["removed"]) == [
        "agent:FAQ Agent",
        "agent:Welcome Agent",
        "forum_category:announcements",
        "forum_category:show-and-tell",
    ]
    assert purge.result["archived"] == []
    assert agents(platform) == {}
    assert list(categories(platform)) == ["general"]
    assert categories(platform)["general"].id == general_id
    assert [t.id for t in rows(platform, ForumThread)] == [uuid.UUID(thread.result["thread_id"])]
    assert installations(platform) == [] and provenance(platform) == {}
    [uninstalled] = signals(platform, "package.installation.uninstalled")
    assert (uninstalled.payload["purge"], uninstalled.subject_id) == (True, STARTER)
    assert uninstalled.payload["installation_id"] == result["installation_id"]
    assert listed(platform, admin) == {}
    assert call(platform, admin, "marketplace_get_package", slug=STARTER).installed_version is None
    with pytest.raises(NotFound, match="not installed"):
        call(platform, admin, "marketplace_uninstall_package", slug=STARTER)


def test_uninstall_without_purge_keeps_agents_and_categories(platform: Platform, org: Org, catalog: None) -> None:
    admin = org.ctx("admin")
    done(platform, admin, "marketplace_install_package", slug=STARTER)
    done(platform, admin, "marketplace_install_package", slug="starter-agents")
    before_agents, before_categories = agents(platform), categories(platform)

    receipt = done(platform, admin, "marketplace_uninstall_package", slug=STARTER)
    result = receipt.result
    assert (result["uninstalled"], result["purge"], result["kept_resources"], result["removed"]) == (
        True,
        False,
        5,
        [],
    )
    assert {a: agent.id for a, agent in agents(platform).items()} == {a: x.id for a, x in before_agents.items()}
    assert {c: cat.id for c, cat in categories(platform).items()} == {c: x.id for c, x in before_categories.items()}
    assert [i.package_slug for i in installations(platform)] == ["starter-agents"]
    assert {r.key for r in provenance(platform).values()} == {
        "General Assistant",
        "Customer Support",
        "Research Assistant",
    }
    assert list(listed(platform, admin)) == ["starter-agents"]
    assert signals(platform, "package.installation.uninstalled")[0].payload["purge"] is False
    with pytest.raises(NotFound, match=f"'{STARTER}' is not installed"):
        call(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=True)


def test_purge_asked_by_an_agent_waits_for_a_person(platform: Platform, org: Org, catalog: None) -> None:
    agent = org.ctx("admin", kind="agent")
    done(platform, agent, "marketplace_install_package", slug=STARTER)  # installing is not high-impact
    done(platform, agent, "marketplace_install_package", slug="starter-agents")
    before = state(platform)

    waiting = run(platform, agent, "marketplace_uninstall_package", slug=STARTER, purge=True)
    assert (waiting.status, waiting.finished, waiting.result) == ("awaiting_approval", False, None)
    assert "approve" in waiting.summary
    after = state(platform)
    assert (after["agents"], after["categories"], after["installations"], after["resources"]) == (
        before["agents"],
        before["categories"],
        before["installations"],
        before["resources"],
    )
    assert platform.ledger.get(TENANT, waiting.directive_id).status == "awaiting_approval"
    with pytest.raises(Forbidden):
        platform.ledger.approve(agent, waiting.directive_id)
    assert platform.ledger.get(TENANT, waiting.directive_id).status == "awaiting_approval"
    assert len(agents(platform)) == 5

    platform.ledger.approve(org.ctx("owner"), waiting.directive_id)
    approved = platform.ledger.get(TENANT, waiting.directive_id)
    assert (approved.status, approved.result["purge"], approved.result["uninstalled"]) == ("succeeded", True, True)
    assert sorted(agents(platform)) == ["Customer Support", "General Assistant", "Research Assistant"]
    assert categories(platform) == {}
    assert [i.package_slug for i in installations(platform)] == ["starter-agents"]

    # Without purge nothing is destroyed, so the agent's request runs at once.
    plain = done(platform, agent, "marketplace_uninstall_package", slug="starter-agents")
    assert (plain.result["uninstalled"], plain.result["purge"]) == (True, False)
    assert installations(platform) == [] and len(agents(platform)) == 3


# ---------------------------------------------------------------- enable / disable


def test_disable_and_enable_switch_the_installation_and_its_agents(platform: Platform, org: Org, catalog: None) -> None:
    admin = org.ctx("admin")
    done(platform, admin, "marketplace_install_package", slug=STARTER)
    done(platform, admin, "marketplace_install_package", slug="starter-agents")
    own_agents = {"FAQ Agent", "Welcome Agent"}

    def enabled_agents() -> set[str]:
        return {name for name, a in agents(platform).items() if a.enabled}

    off = done(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=False)
    assert (off.type, off.result["changed"], off.result["enabled"]) == ("package.disable", True, False)
    assert [i.enabled for i in installations(platform) if i.package_slug == STARTER] == [False]
    assert not enabled_agents() & own_agents
    assert len(enabled_agents()) == 3  # the other package's agents are untouched
    assert (listed(platform, admin)[STARTER].status, listed(platform, admin)[STARTER].enabled) == ("disabled", False)
    [disabled] = signals(platform, "package.installation.disabled")
    assert disabled.payload["agents"] == 2

    again = done(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=False)
    assert again.directive_id != off.directive_id  # a new request, not the old receipt
    assert (again.result["changed"], again.result["enabled"]) == (False, False)
    assert len(signals(platform, "package.installation.disabled")) == 1

    on = done(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=True)
    assert (on.type, on.result["changed"], on.result["enabled"]) == ("package.enable", True, True)
    assert enabled_agents() == own_agents | {"General Assistant", "Customer Support", "Research Assistant"}
    assert listed(platform, admin)[STARTER].status == "installed"
    on_again = done(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=True)
    assert on_again.result["changed"] is False
    assert len(signals(platform, "package.installation.enabled")) == 1
    assert len(signals(platform, "package.installation.disabled")) == 1


# ---------------------------------------------------------------- caller mistakes


def test_members_cannot_file_marketplace_directives_and_nothing_is_filed(
    platform: Platform, org: Org, catalog: None
) -> None:
    done(platform, org.ctx("admin"), "marketplace_install_package", slug=STARTER, version="1.0.0")
    before_list = platform.ledger.list(TENANT)
    before = state(platform)
    for ctx in (org.ctx("member"), org.ctx("member", kind="agent")):
        for tool, arguments in (*DIRECTIVE_TOOLS, ("marketplace_install_package", {"slug": "starter-agents"})):
            with pytest.raises(Forbidden, match=rf"{tool} needs the admin role; you are member in 'acme'"):
                call(platform, ctx, tool, **arguments)
    assert [d.id for d in platform.ledger.list(TENANT)[0]] == [d.id for d in before_list[0]]
    assert state(platform) == before
    # Members may read.
    assert list(listed(platform, org.ctx("member"))) == [STARTER]
    assert call(platform, org.ctx("member"), "marketplace_get_package", slug=STARTER).installed_version == "1.0.0"


def test_malformed_arguments_are_refused_before_anything_is_written(
    platform: Platform, org: Org, catalog: None
) -> None:
    admin = org.ctx("admin")
    done(platform, admin, "marketplace_install_package", slug="starter-agents")
    before = state(platform)
    bad_calls = [
        ("marketplace_install_package", {"slug": "Community_Starter"}),
        ("marketplace_install_package", {"slug": "community--starter"}),
        ("marketplace_install_package", {"slug": "-community"}),
        ("marketplace_install_package", {"slug": "x" * 65}),
        ("marketplace_install_package", {}),
        ("marketplace_install_package", {"slug": STARTER, "version": "1.0"}),
        ("marketplace_install_package", {"slug": STARTER, "version": "v1.0.0"}),
        ("marketplace_install_package", {"slug": STARTER, "version": "01.0.0"}),
        ("marketplace_install_package", {"slug": STARTER, "version": "latest"}),
        ("marketplace_install_package", {"slug": STARTER, "tenant": "globex"}),
        ("marketplace_install_package", {"slug": STARTER, "user_id": str(uuid.uuid4())}),
        ("marketplace_install_package", {"slug": STARTER, "org": "globex"}),
        ("marketplace_install_package", {"slug": STARTER, "purge": True}),
        ("marketplace_install_package", {"slug": STARTER, "config": {"api_key": "sk-123"}}),
        ("marketplace_install_package", {"slug": STARTER, "config": {"notes": "x" * 10_001}}),
        ("marketplace_install_package", {"slug": STARTER, "wait_seconds": 31}),
        ("marketplace_install_package", {"slug": STARTER, "idempotency_key": ""}),
        ("marketplace_install_package", {"slug": STARTER, "idempotency_key": "auto:mine"}),
        ("marketplace_upgrade_package", {"slug": "starter-agents", "version": "2"}),
        ("marketplace_upgrade_package", {"slug": "starter-agents", "tenant": "acme"}),
        ("marketplace_uninstall_package", {"slug": "starter agents"}),
        ("marketplace_uninstall_package", {"slug": "starter-agents", "purge": "maybe"}),
        ("marketplace_uninstall_package", {"slug": "starter-agents", "user_id": str(org.users["owner"])}),
        ("marketplace_set_package_enabled", {"slug": "starter-agents"}),
        ("marketplace_set_package_enabled", {"slug": "starter-agents", "enabled": "perhaps"}),
        ("marketplace_set_package_enabled", {"slug": "starter-agents", "enabled": False, "actor": "x"}),
        ("marketplace_list_installations", {"tenant": "globex"}),
    ]
    for tool, arguments in bad_calls:
        with pytest.raises(InvalidInput):
            call(platform, admin, tool, **arguments)
    with pytest.raises(InvalidInput, match="config must serialize to at most 10000 bytes"):
        call(platform, admin, "marketplace_install_package", slug=STARTER, config={"notes": "x" * 10_000})
    with pytest.raises(InvalidInput, match=r"must not carry secrets \(found field config\.api_key\)"):
        call(platform, admin, "marketplace_install_package", slug=STARTER, config={"api_key": "sk-123"})
    assert state(platform) == before

    # Filing-time checks against this organization's state, each refused with nothing written.
    with pytest.raises(NotFound, match=f"'{STARTER}' is not installed"):
        call(platform, admin, "marketplace_upgrade_package", slug=STARTER)
    with pytest.raises(NotFound, match=f"'{STARTER}' is not installed"):
        call(platform, admin, "marketplace_uninstall_package", slug=STARTER, purge=True)
    with pytest.raises(NotFound, match=f"'{STARTER}' is not installed"):
        call(platform, admin, "marketplace_set_package_enabled", slug=STARTER, enabled=False)
    with pytest.raises(NotFound, match="'no-such-package' is not installed"):
        call(platform, admin, "marketplace_uninstall_package", slug="no-such-package")
    with pytest.raises(NotFound, match="'no-such-package' not found"):
        call(platform, admin, "marketplace_upgrade_package", slug="no-such-package")
    with pytest.raises(InvalidState):
        call(platform, admin, "marketplace_upgrade_package", slug="starter-agents")
    assert state(platform) == before
    # A config within the limits is kept with the installation.
    done(platform, admin, "marketplace_install_package", slug=STARTER, config={"greeting": "Hello", "n": 3})
    assert {i.package_slug: i.config for i in installations(platform)}[STARTER] == {"greeting": "Hello", "n": 3}


# ---------------------------------------------------------------- the runner checks again


@pytest.fixture
def queued(platform: Platform) -> Platform:
    """Filing no longer runs the directive: the test runs it with run_directive."""
    platform.runner.huey.immediate = False
    assert not platform.runner.huey.immediate
    return platform


def test_the_runner_rechecks_what_changed_after_filing(queued: Platform, org: Org, catalog: None) -> None:
    platform = queued
    admin, owner = org.ctx("admin"), org.ctx("owner")

    # 1. Unpublished between filing and running.
    unpublished = call(platform, admin, "marketplace_install_package", slug=STARTER)
    assert (unpublished.status, unpublished.created) == ("requested", True)
    publish_package(platform.db, catalog_spec(STARTER).model_copy(update={"is_published": False}))
    platform.runner.run_directive(TENANT, str(unpublished.directive_id))
    failed = platform.ledger.get(TENANT, unpublished.directive_id)
    assert failed.status == "failed"
    assert failed.last_error == f"not_found: package '{STARTER}' not found in the marketplace"
    assert (installations(platform), agents(platform), categories(platform), provenance(platform)) == ([], {}, {}, {})
    publish_package(platform.db, catalog_spec(STARTER))

    # 2. Only one of two installs filed before either ran can install; the other fails and provisions nothing.
    first = call(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    second = call(platform, owner, "marketplace_install_package", slug=STARTER, version="1.1.0")
    assert first.status == second.status == "requested" and first.directive_id != second.directive_id
    platform.runner.run_directive(TENANT, str(second.directive_id))
    platform.runner.run_directive(TENANT, str(first.directive_id))
    assert platform.ledger.get(TENANT, second.directive_id).status == "succeeded"
    lost = platform.ledger.get(TENANT, first.directive_id)
    assert lost.status == "failed"
    assert lost.last_error.startswith(f"conflict: package '{STARTER}' is already installed (version 1.1.0)")
    [installation] = installations(platform)
    assert (installation.package_version, installation.created_by_directive) == ("1.1.0", second.directive_id)
    assert sorted(agents(platform)) == ["FAQ Agent", "Welcome Agent"]
    assert sorted(categories(platform)) == ["announcements", "general", "show-and-tell"]
    assert {r.directive_id for r in provenance(platform).values()} == {second.directive_id}

    # 3. Uninstalled between filing a disable and running it.
    helpers = call(platform, admin, "marketplace_install_package", slug="starter-agents")
    platform.runner.run_directive(TENANT, str(helpers.directive_id))
    disable = call(platform, admin, "marketplace_set_package_enabled", slug="starter-agents", enabled=False)
    uninstall = call(platform, admin, "marketplace_uninstall_package", slug="starter-agents", purge=True)
    platform.runner.run_directive(TENANT, str(uninstall.directive_id))
    platform.runner.run_directive(TENANT, str(disable.directive_id))
    stale = platform.ledger.get(TENANT, disable.directive_id)
    assert (stale.status, stale.last_error) == (
        "failed",
        "not_found: package 'starter-agents' is not installed in this organization",
    )

    # 4. A newer version was unpublished between filing the upgrade and running it.
    purge = call(platform, admin, "marketplace_uninstall_package", slug=STARTER, purge=True)
    platform.runner.run_directive(TENANT, str(purge.directive_id))
    assert (installations(platform), agents(platform), categories(platform)) == ([], {}, {})
    reinstall = call(platform, admin, "marketplace_install_package", slug=STARTER, version="1.0.0")
    platform.runner.run_directive(TENANT, str(reinstall.directive_id))
    upgrade = call(platform, admin, "marketplace_upgrade_package", slug=STARTER)
    assert upgrade.summary.startswith(f"upgrade {STARTER} to 1.1.0")
    spec = catalog_spec(STARTER)
    spec.versions[1].is_published = False
    publish_package(platform.db, spec)
    platform.runner.run_directive(TENANT, str(upgrade.directive_id))
    refused = platform.ledger.get(TENANT, upgrade.directive_id)
    assert refused.status == "failed"
    assert refused.last_error == (
        f"not_found: version 1.1.0 of package '{STARTER}' not found; published versions: 1.0.0"
    )
    [installation] = installations(platform)
    assert installation.package_version == "1.0.0"
    assert sorted(agents(platform)) == ["Welcome Agent"]
    assert sorted(categories(platform)) == ["announcements", "general", "help"]
    assert {r.package_version for r in provenance(platform).values()} == {"1.0.0"}


# ---------------------------------------------------------------- tenancy


def test_an_install_in_one_organization_is_invisible_to_another(platform: Platform, org: Org, catalog: None) -> None:
    globex = make_org(platform, "globex")
    installed = done(platform, org.ctx("admin"), "marketplace_install_package", slug=STARTER)
    other = globex.ctx("admin")
    assert listed(platform, other) == {}
    assert call(platform, other, "marketplace_get_package", slug=STARTER).installed_version is None
    assert {p.slug: p.installed_version for p in call(platform, other, "marketplace_search_packages").items}[
        STARTER
    ] is None
    globex_before = state(platform, "globex")
    for tool, arguments in DIRECTIVE_TOOLS[1:]:
        with pytest.raises(NotFound, match="not installed in this organization"):
            call(platform, other, tool, **arguments)
    assert state(platform, "globex") == globex_before
    assert (agents(platform, "globex"), categories(platform, "globex")) == ({}, {})
    assert (installations(platform, "globex"), provenance(platform, "globex")) == ([], {})
    assert signals(platform, "package.installation.installed", "globex") == []
    with platform.db.reading("globex") as session:
        assert session.exec(select(func.count()).select_from(Directive)).one() == 0
        assert session.get(Installation, uuid.UUID(installed.result["installation_id"])) is None

    # Globex installs its own copy; acme purging its install leaves globex's alone.
    theirs = done(platform, other, "marketplace_install_package", slug=STARTER, version="1.0.0")
    assert theirs.result["installation_id"] != installed.result["installation_id"]
    assert install_count(platform) == 2
    assert {r.org_id for r in install_records(platform)} == {org.ref.id, globex.ref.id}
    done(platform, org.ctx("admin"), "marketplace_uninstall_package", slug=STARTER, purge=True)
    assert (agents(platform), categories(platform)) == ({}, {})
    assert sorted(agents(platform, "globex")) == ["Welcome Agent"]
    assert sorted(categories(platform, "globex")) == ["announcements", "general", "help"]
    assert listed(platform, other)[STARTER].version == "1.0.0"


def test_purge_keeps_a_category_another_package_adopted(platform: Platform, org: Org, catalog: None) -> None:
    admin = org.ctx("admin")
    sibling = PackageSpec(
        slug="community-extras",
        name="Community Extras",
        versions=[
            VersionSpec.model_validate(
                {"version": "1.0.0", "manifest": {"forum_categories": [{"slug": "general", "name": "General"}]}}
            )
        ],
    )
    publish_package(platform.db, sibling)
    done(platform, admin, "marketplace_install_package", slug=STARTER)
    extras = done(platform, admin, "marketplace_install_package", slug=" Community-Extras ")
    assert extras.result["adopted"] == ["forum_category:general"]
    purged = done(platform, admin, "marketplace_uninstall_package", slug=STARTER, purge=True)
    assert purged.result["kept"] == ["forum_category:general"]
    assert "forum_category:general" not in purged.result["removed"]
    assert set(categories(platform)) == {"general"}
    (resource,) = provenance(platform).values()
    assert (resource.kind, resource.key, resource.created) == ("forum_category", "general", False)
    assert categories(platform)["general"].id == resource.resource_id
