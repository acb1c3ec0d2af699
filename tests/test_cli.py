"""Every `fleetprompt` command, its output and its error paths (one line on stderr, non-zero exit)."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from conftest import PLUGIN, make_settings

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.accounts.organizations import get_organization
from fleetprompt.accounts.tokens import authenticate_token
from fleetprompt.accounts.users import get_user_by_email
from fleetprompt.cli import main
from fleetprompt.platform import Platform


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str = "") -> tuple[int, str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name, value in {
        "FLEETPROMPT_DATABASE_URL": database_url,
        "FLEETPROMPT_DATA_DIR": str(tmp_path / "var"),
        "FLEETPROMPT_QUEUE": "memory",
        "FLEETPROMPT_PLUGINS": PLUGIN,
        "FLEETPROMPT_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    runner = Cli(capsys, monkeypatch)
    assert runner("db", "upgrade")[0] == 0
    return runner


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_db_upgrade_and_demo_seed_are_idempotent(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and "0 tenant(s)" in out
    code, out, _ = cli("demo", "seed")
    assert code == 0 and "demo organization: demo (created)" in out
    password = (tmp_path / "var" / "demo-owner-password").read_text()
    assert f"demo owner password: {password}" in out and "fleetprompt token create --org demo" in out
    assert oct((tmp_path / "var" / "demo-owner-password").stat().st_mode)[-3:] == "600"
    code, out, _ = cli("demo", "seed")
    assert code == 0 and "already present" in out and password in out
    code, out, _ = cli("db", "upgrade")
    assert code == 0 and "1 tenant(s)" in out


def test_org_user_token(cli: Cli, database_url: str, tmp_path: Path) -> None:
    code, out, _ = cli("org", "create", "acme", "--name", "Acme Inc", "--tier", "pro")
    assert code == 0 and out.startswith("created organization acme (tier pro")
    code, out, _ = cli("user", "add", "Ann@Acme.io", "--org", "acme", "--role", "admin", stdin="correct horse\n")
    assert code == 0 and out.strip() == "added ann@acme.io to acme as admin"
    code, out, _ = cli("user", "add", "bob@acme.io", "--org", "acme", "--role", "member")
    assert code == 0 and "password (shown once): " in out
    assert cli("org", "create", "globex", "--name", "Globex")[0] == 0
    code, out, _ = cli("user", "add", "ann@acme.io", "--org", "globex", "--role", "member", stdin="other pass\n")
    assert code == 0 and "existing user: their password is unchanged" in out and "shown once" not in out
    code, out, err = cli("token", "create", "--org", "acme", "--user", "ann@acme.io", "--label", "laptop")
    assert code == 0 and err == ""
    token = out.strip()
    assert out == token + "\n" and token.startswith("fp_")
    platform = Platform.build(make_settings(database_url, tmp_path / "var"))
    try:
        identity = authenticate_token(platform.db, token)
        assert identity.org.slug == "acme" and identity.role.value == "admin"
        assert identity.user_id == get_user_by_email(platform.db, "ann@acme.io").id
    finally:
        platform.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("org", "create", "../x", "--name", "X"), "invalid organization slug '../x'"),
        (("org", "create", "a_b", "--name", "X"), "invalid organization slug"),
        (("org", "create", "a" * 41, "--name", "X"), "at most 40 characters"),
        (("org", "create", "x'; drop table users;--", "--name", "X"), "invalid organization slug"),
        (("user", "add", "a@b.io", "--org", "nope", "--role", "admin"), "unknown organization 'nope'"),
        (("user", "add", "a@b.io", "--org", "Bad!", "--role", "admin"), "invalid organization slug"),
        (("user", "add", "not-email", "--org", "acme", "--role", "admin"), "invalid email"),
        (("token", "create", "--org", "acme", "--user", "ghost@acme.io"), "unknown user"),
        (("token", "create", "--org", "ghost", "--user", "ann@acme.io"), "unknown organization"),
        (("directives", "list", "--org", "ghost"), "unknown organization 'ghost'"),
        (("directives", "list", "--org", "acme", "--status", "bogus"), "status must be one of"),
        (("directives", "show", str(uuid.UUID(int=1)), "--org", "acme"), "not found"),
        (("directives", "show", "not-an-id", "--org", "acme"), "not found"),
        (("directives", "approve", str(uuid.UUID(int=1)), "--org", "acme"), "not found"),
        (("signals", "list", "--org", "acme", "--subject", "nocolon"), "--subject must look like TYPE:ID"),
        (("signals", "replay", "--org", "acme", "--since", "yesterday"), "--since must be an ISO 8601 time"),
        (("signals", "replay", "--org", "acme"), "replay needs a selection"),
        (("signals", "replay", "--org", "acme", "--id", "nope"), "--id must be a signal id"),
    ],
)
def test_error_paths_print_one_line(cli: Cli, argv: tuple[str, ...], message: str) -> None:
    assert cli("org", "create", "acme", "--name", "Acme")[0] == 0
    assert cli("user", "add", "ann@acme.io", "--org", "acme", "--role", "admin", stdin="password-1\n")[0] == 0
    code, _, err = cli(*argv)
    assert code == 1
    assert message in one_error_line(err)


def test_duplicates_are_refused(cli: Cli) -> None:
    assert cli("org", "create", "acme", "--name", "Acme")[0] == 0
    code, _, err = cli("org", "create", "acme", "--name", "Acme")
    assert code == 1 and "already exists" in one_error_line(err)
    assert cli("user", "add", "ann@acme.io", "--org", "acme", "--role", "admin", stdin="password-1\n")[0] == 0
    code, _, err = cli("user", "add", "ann@acme.io", "--org", "acme", "--role", "member", stdin="password-1\n")
    assert code == 1 and "duplicate email" in one_error_line(err)
    code, _, err = cli("user", "add", "cy@acme.io", "--org", "acme", "--role", "member", stdin="short\n")
    assert code == 1 and "at least 8 characters" in one_error_line(err)


def test_directive_commands(cli: Cli, database_url: str, tmp_path: Path) -> None:
    assert cli("org", "create", "acme", "--name", "Acme")[0] == 0
    assert cli("user", "add", "ann@acme.io", "--org", "acme", "--role", "admin", stdin="password-1\n")[0] == 0
    platform = Platform.build(make_settings(database_url, tmp_path / "var"))
    try:
        org = get_organization(platform.db, "acme")
        agent = RequestContext(org=org, actor=Actor.agent(get_user_by_email(platform.db, "ann@acme.io").id, "test"))
        pending = platform.ledger.file(agent, "test.destroy", {"label": "p1"}).directive
        rejected = platform.ledger.file(agent, "test.destroy", {"label": "p2"}).directive
    finally:
        platform.close()

    code, out, _ = cli("directives", "list", "--org", "acme", "--status", "awaiting_approval")
    assert code == 0 and str(pending.id) in out and str(rejected.id) in out
    code, out, _ = cli("directives", "approve", str(pending.id), "--org", "acme")
    assert code == 0 and json.loads(out)["status"] == "requested"
    code, out, _ = cli("directives", "show", str(pending.id), "--org", "acme")
    shown = json.loads(out)
    assert (shown["status"], shown["result"]["label"]) == ("succeeded", "p1")
    assert shown["decided_by"].startswith("operator:") and "args_hash" not in shown
    code, out, _ = cli("directives", "reject", str(rejected.id), "--org", "acme")
    assert code == 0 and json.loads(out)["status"] == "canceled"
    code, out, _ = cli("directives", "rerun", str(rejected.id), "--org", "acme")
    assert code == 0 and json.loads(out)["run_number"] == 2
    code, _, err = cli("directives", "cancel", str(pending.id), "--org", "acme")
    assert code == 1 and "only awaiting_approval or requested" in one_error_line(err)
    code, out, _ = cli("directives", "list", "--org", "acme", "--name", "test.destroy")
    assert code == 0 and len(out.strip().splitlines()) == 2

    code, out, _ = cli("signals", "list", "--org", "acme", "--subject", f"directive:{pending.id}")
    names = [line.split()[1] for line in out.strip().splitlines()]
    assert names == ["directive.requested", "directive.approved", "directive.started", "directive.succeeded"]
    code, out, _ = cli("signals", "list", "--org", "acme", "--name", "directive.rejected")
    assert code == 0 and len(out.strip().splitlines()) == 1
    code, out, _ = cli("signals", "replay", "--org", "acme", "--since", "2000-01-01T00:00:00Z")
    assert code == 0 and out.strip() == "replaying fanout of 0 signal(s)"


def test_replay_selects_by_id_and_name(cli: Cli, database_url: str, tmp_path: Path) -> None:
    from support.plugin import fanout_calls

    from fleetprompt.ledger import emit
    from fleetprompt.ledger.signals import SignalDraft

    assert cli("org", "create", "acme", "--name", "Acme")[0] == 0
    platform = Platform.build(make_settings(database_url, tmp_path / "var"))
    try:
        with platform.ledger.transaction("acme") as session:
            ping = emit(session, SignalDraft(name="test.ping.cli", source="t", dedupe_key="cli-ping")).signal
    finally:
        platform.close()
    before = fanout_calls[str(ping.id)]
    code, out, _ = cli("signals", "replay", "--org", "acme", "--id", str(ping.id))
    assert code == 0 and out.strip() == "replaying fanout of 1 signal(s)"
    assert fanout_calls[str(ping.id)] == before + 1
    code, out, _ = cli("signals", "replay", "--org", "acme", "--id", str(ping.id), str(uuid.uuid4()))
    assert code == 0 and out.strip() == "replaying fanout of 1 signal(s)"
    code, out, _ = cli("signals", "replay", "--org", "acme", "--name", "test.ping.cli")
    assert out.strip() == "replaying fanout of 1 signal(s)"


def test_unreachable_and_uninitialised_databases(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cli = Cli(capsys, monkeypatch)
    monkeypatch.setenv("FLEETPROMPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLEETPROMPT_DATABASE_URL", "postgresql+psycopg://nobody:pw@127.0.0.1:1/nowhere")
    code, _, err = cli("org", "create", "acme", "--name", "Acme")
    line = one_error_line(err)
    assert code == 1 and "database unreachable at postgresql+psycopg://nobody:***@127.0.0.1:1/nowhere" in line
    monkeypatch.setenv("FLEETPROMPT_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    code, _, err = cli("directives", "list", "--org", "acme")
    assert code == 1 and "run `fleetprompt db upgrade`" in one_error_line(err)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FLEETPROMPT_QUEUE", "redis", "FLEETPROMPT_QUEUE"),
        ("FLEETPROMPT_DATABASE_URL", "mysql://x", "FLEETPROMPT_DATABASE_URL: Value error, must start with"),
        ("FLEETPROMPT_LEASE_SECONDS", "-1", "FLEETPROMPT_LEASE_SECONDS"),
        ("FLEETPROMPT_PLUGINS", "no_such_module_x", "FLEETPROMPT_PLUGINS: cannot import 'no_such_module_x'"),
    ],
)
def test_invalid_configuration_names_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    message: str,
) -> None:
    monkeypatch.setenv("FLEETPROMPT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    code, _, err = Cli(capsys, monkeypatch)("db", "upgrade")
    assert code == 2 and message in one_error_line(err)


def test_worker_and_serve_need_an_upgraded_database(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLEETPROMPT_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("FLEETPROMPT_DATABASE_URL", database_url.replace("var/fleetprompt.db", "fresh/fleetprompt.db"))
    if "postgresql" in database_url:  # an empty database: the template has the shared tables, so make one
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        libpq = url.set(drivername="postgresql")
        with psycopg.connect(libpq.render_as_string(hide_password=False), autocommit=True) as conn:
            conn.execute("DROP TABLE api_tokens, memberships, users, organizations, alembic_version CASCADE")
    cli = Cli(capsys, monkeypatch)
    for argv in (("worker",), ("serve", "--port", "1")):
        code, _, err = cli(*argv)
        assert code == 1 and "not initialised: run `fleetprompt db upgrade`" in one_error_line(err)


def test_worker_and_serve_refuse_the_inline_queue(cli: Cli) -> None:
    code, _, err = cli("worker")
    assert code == 1 and "FLEETPROMPT_QUEUE=memory" in one_error_line(err)
    code, _, err = cli("serve", "--port", "1")
    assert code == 1 and "FLEETPROMPT_QUEUE=memory" in one_error_line(err)


def test_demo_seed_installs_the_starter_forum_once_and_tools_call_shows_it(cli: Cli) -> None:
    assert cli("demo", "seed")[0] == 0
    code, out, _ = cli("demo", "seed")
    assert code == 0 and "already filed: install community-starter 1.0.0" in out
    code, out, _ = cli("tools", "list")
    assert code == 0 and len(out.splitlines()) == 26
    assert any(line.split()[:3] == ["forum_delete_post", "directive", "admin"] for line in out.splitlines())
    code, out, _ = cli("tools", "call", "marketplace_list_installations", "--org", "demo")
    installations = json.loads(out)["items"]
    assert code == 0 and [(i["package_slug"], i["version"]) for i in installations] == [("community-starter", "1.0.0")]
    code, out, _ = cli("tools", "call", "forum_list_categories", "--org", "demo")
    assert [c["slug"] for c in json.loads(out)["items"]] == ["announcements", "general", "help"]
    code, out, _ = cli("tools", "call", "marketplace_search_packages", '{"tier": "free"}', "--org", "demo")
    assert {p["slug"] for p in json.loads(out)["items"]} == {"starter-agents", "customer-support", "community-starter"}


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "arguments must be a JSON object"),
        ("[1]", "arguments must be a JSON object"),
        ('{"thread_id": "x"}', "invalid arguments for forum_reply"),
        ('{"thread_id": "00000000-0000-0000-0000-000000000000", "content": "hi"}', "not found"),
    ],
)
def test_tools_call_errors_are_one_line(cli: Cli, arguments: str, message: str) -> None:
    assert cli("org", "create", "acme", "--name", "Acme")[0] == 0
    code, _, err = cli("tools", "call", "forum_reply", arguments, "--org", "acme")
    assert code == 1 and message in one_error_line(err)
