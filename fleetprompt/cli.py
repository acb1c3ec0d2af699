"""The `fleetprompt` command. Every error is one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from fleetprompt.accounts.context import Actor, RequestContext
from fleetprompt.accounts.organizations import create_organization, get_organization, list_organizations
from fleetprompt.accounts.tokens import InvalidToken, authenticate_token, create_token
from fleetprompt.accounts.users import add_user
from fleetprompt.config import ConfigError, load_settings
from fleetprompt.db.migrate import upgrade_all
from fleetprompt.db.tenancy import validate_slug
from fleetprompt.errors import FleetPromptError, InvalidInput
from fleetprompt.ledger import DirectiveFilter, Filed, SignalFilter
from fleetprompt.platform import Platform
from fleetprompt.runner.queue import check_queue, prepare_queue
from fleetprompt.tools import call_tool, tools

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    pass


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _operator_context(platform: Platform, slug: str) -> RequestContext:
    return RequestContext(org=get_organization(platform.db, slug), actor=Actor.operator(getpass.getuser()))


def _directive_json(directive: Any) -> dict[str, Any]:
    data = directive.model_dump(mode="json")
    data.pop("args_hash", None)
    return data


def _parse_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(f"--id must be a signal id (a UUID), got {value!r}") from None


def _parse_since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--since must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z (got {value!r})") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- commands


def cmd_db_upgrade(platform: Platform, args: argparse.Namespace) -> None:
    tenants = upgrade_all(platform.db)
    prepare_queue(platform.runner.huey)
    _out(f"database upgraded: shared tables and {len(tenants)} tenant(s)")


def cmd_demo_seed(platform: Platform, args: argparse.Namespace) -> None:
    from fleetprompt.demo import seed_demo

    info = seed_demo(platform.db, platform.ledger)
    _out(f"demo organization: {info.org_slug} ({'created' if info.created else 'already present'})")
    _out(f"marketplace catalog: {', '.join(info.packages)}")
    if info.starter is not None:
        _out(f"demo forum: {info.starter.summary} (directive {info.starter.directive_id})")
    _out(f"demo owner: {info.owner_email}")
    if info.owner_password:
        _out(
            f"demo owner password: {info.owner_password}  (stored in {platform.settings.data_dir}/demo-owner-password)"
        )
    _out(f"API token: fleetprompt token create --org {info.org_slug} --user {info.owner_email}")


def cmd_org_create(platform: Platform, args: argparse.Namespace) -> None:
    org = create_organization(platform.db, args.slug, args.name, args.tier)
    _out(f"created organization {org.slug} (tier {org.tier}, id {org.id})")


def cmd_user_add(platform: Platform, args: argparse.Namespace) -> None:
    validate_slug(args.org)
    password = None
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n") or None
    added = add_user(platform.db, args.email, args.org, args.role, password)
    _out(f"added {added.user.email} to {args.org} as {args.role}")
    if not added.created:
        _out("existing user: their password is unchanged")
    elif added.generated_password:
        _out(f"password (shown once): {added.generated_password}")


def cmd_token_create(platform: Platform, args: argparse.Namespace) -> None:
    _out(create_token(platform.db, args.org, args.user, args.label))


def _require_ready(platform: Platform) -> None:
    """Fail before starting long-running processes on a database that `db upgrade` never prepared
    (the errors this raises are explained by main's database handler)."""
    list_organizations(platform.db)
    check_queue(platform.runner.huey)


def cmd_serve(platform: Platform, args: argparse.Namespace) -> None:
    import uvicorn

    from fleetprompt.web.app import create_app

    if platform.settings.queue == "memory" and not args.no_runner:
        raise CliError("FLEETPROMPT_QUEUE=memory runs directives inline; use it for tests, not for serve")
    if not args.no_runner and args.workers < 1:
        raise CliError("--workers must be at least 1")
    _require_ready(platform)
    app = create_app(platform, run_runner=not args.no_runner, workers=args.workers)
    _err(
        f"FleetPrompt serving on http://{args.host}:{args.port}  (health: /healthz; database: {platform.db.dialect};"
        f" runner: {'external' if args.no_runner else 'embedded'})"
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=platform.settings.log_level.lower(), timeout_graceful_shutdown=10
    )


def cmd_mcp(platform: Platform, args: argparse.Namespace) -> None:
    """MCP over stdio for a desktop assistant: stdout carries protocol messages only; everything else is stderr."""
    import anyio

    from fleetprompt.mcp_server import build_mcp_server
    from fleetprompt.runner.worker import EmbeddedRunner

    token = os.environ.get("FLEETPROMPT_TOKEN", "").strip()
    if not token:
        raise CliError(
            "FLEETPROMPT_TOKEN is not set: create one with `fleetprompt token create --org <slug> --user <email>`"
        )
    if args.runner and platform.settings.queue == "memory":
        raise CliError("FLEETPROMPT_QUEUE=memory runs directives inline; --runner needs FLEETPROMPT_QUEUE=auto")
    if args.runner and args.workers < 1:
        raise CliError("--workers must be at least 1")
    _require_ready(platform)
    try:
        identity = authenticate_token(platform.db, token)
    except InvalidToken as exc:
        raise CliError(f"FLEETPROMPT_TOKEN: {exc}") from None
    server = build_mcp_server(platform, token=token, via="mcp-stdio")
    runner = EmbeddedRunner(platform.runner, args.workers) if args.runner else None
    _err(
        f"FleetPrompt MCP on stdio for organization {identity.org.slug!r}"
        f" (runner: {'embedded' if runner else 'external: keep `fleetprompt serve` or `fleetprompt worker` running'})"
    )
    if runner is not None:
        runner.start()
    try:
        anyio.run(server.run_stdio_async)
    finally:
        if runner is not None:
            runner.stop()


def cmd_worker(platform: Platform, args: argparse.Namespace) -> None:
    from fleetprompt.runner.worker import run_worker

    if platform.settings.queue == "memory":
        raise CliError("FLEETPROMPT_QUEUE=memory runs directives inline; a worker needs FLEETPROMPT_QUEUE=auto")
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    _require_ready(platform)
    run_worker(platform.runner, args.workers)


def cmd_directives_list(platform: Platform, args: argparse.Namespace) -> None:
    get_organization(platform.db, args.org)
    rows, _ = platform.ledger.list(args.org, DirectiveFilter(status=args.status, name=args.name), limit=args.limit)
    for d in rows:
        subject = f"{d.subject_type}:{d.subject_id}" if d.subject_type else "-"
        _out(f"{d.id}  {d.status:<17} {d.name:<28} {subject:<40} {d.created_at.isoformat()}")
    if not rows:
        _err("no directives match")


def _directive_action(action: str) -> Callable[[Platform, argparse.Namespace], None]:
    def run(platform: Platform, args: argparse.Namespace) -> None:
        if action == "show":
            get_organization(platform.db, args.org)
            directive = platform.ledger.get(args.org, args.id)
        else:
            ctx = _operator_context(platform, args.org)
            outcome = getattr(platform.ledger, action)(ctx, args.id)
            directive = outcome.directive if isinstance(outcome, Filed) else outcome
        _out(json.dumps(_directive_json(directive), indent=2, sort_keys=True))

    return run


def cmd_signals_list(platform: Platform, args: argparse.Namespace) -> None:
    get_organization(platform.db, args.org)
    filters = SignalFilter(name=args.name)
    if args.subject:
        subject_type, sep, subject_id = args.subject.partition(":")
        if not sep or not subject_type or not subject_id:
            raise InvalidInput("--subject must look like TYPE:ID, e.g. directive:0190...")
        filters.subject_type, filters.subject_id = subject_type, subject_id
    rows, _ = platform.ledger.signals(args.org, filters, limit=args.limit)
    for s in rows:
        subject = f"{s.subject_type}:{s.subject_id}" if s.subject_type else "-"
        _out(f"{s.occurred_at.isoformat()}  {s.name:<28} {subject:<48} {s.actor_type}:{s.actor_id}  {s.id}")
    if not rows:
        _err("no signals match")


def cmd_signals_replay(platform: Platform, args: argparse.Namespace) -> None:
    get_organization(platform.db, args.org)
    ids = [_parse_id(value) for value in args.id or []]
    filters = SignalFilter(ids=ids or None, name=args.name, since=_parse_since(args.since) if args.since else None)
    replayed = platform.ledger.replay(args.org, filters)
    _out(f"replaying fanout of {len(replayed)} signal(s)")


def cmd_tools_list(platform: Platform, args: argparse.Namespace) -> None:
    for tool in tools.all():
        flags = [
            f for f, on in (("destructive", tool.annotations.destructive), ("high-impact", tool.high_impact)) if on
        ]
        _out(f"{tool.name:34} {tool.kind.value:9} {tool.required_role.value:7} {' '.join(flags)}")


def cmd_tools_call(platform: Platform, args: argparse.Namespace) -> None:
    """Call a tool as the operator (an owner of the organization), e.g. to try one before wiring up a client."""
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        raise CliError(f"arguments must be a JSON object: {exc.msg} at position {exc.pos}") from None
    if not isinstance(arguments, dict):
        raise CliError('arguments must be a JSON object, e.g. \'{"slug": "community-starter"}\'')
    result = call_tool(platform.ledger, _operator_context(platform, args.org), args.name, arguments)
    _out(result.model_dump_json(indent=2))


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleetprompt", description="FleetPrompt: typed, auditable agent work.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help_text: str) -> Any:
        sub = commands.add_parser(name, help=help_text)
        return sub.add_subparsers(dest="action", required=True, metavar="ACTION")

    db = group("db", "database migrations")
    db.add_parser("upgrade", help="migrate shared tables and every tenant").set_defaults(func=cmd_db_upgrade)

    demo = group("demo", "the demo organization")
    demo.add_parser("seed", help="create the demo organization and owner (idempotent)").set_defaults(func=cmd_demo_seed)

    org = group("org", "organizations")
    p = org.add_parser("create", help="create an organization and its storage")
    p.add_argument("slug")
    p.add_argument("--name", required=True)
    p.add_argument("--tier", default="free", choices=["free", "pro", "enterprise"])
    p.set_defaults(func=cmd_org_create)

    user = group("user", "users")
    p = user.add_parser("add", help="add a user to an organization (password from stdin, or generated)")
    p.add_argument("email")
    p.add_argument("--org", required=True)
    p.add_argument("--role", required=True, choices=["owner", "admin", "member"])
    p.set_defaults(func=cmd_user_add)

    token = group("token", "API tokens")
    p = token.add_parser("create", help="create an API token (printed once, stored hashed)")
    p.add_argument("--org", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--label")
    p.set_defaults(func=cmd_token_create)

    p = commands.add_parser("serve", help="serve the web app (with its own runner unless --no-runner)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-runner", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="runner threads when the runner is embedded")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("mcp", help="serve MCP over stdio, acting for the API token in FLEETPROMPT_TOKEN")
    p.add_argument("--runner", action="store_true", help="also run directives in this process")
    p.add_argument("--workers", type=int, default=1, help="runner threads with --runner")
    p.set_defaults(func=cmd_mcp)

    p = commands.add_parser("worker", help="run a runner process (any number may share the queue)")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_worker)

    directives = group("directives", "inspect and decide directives")
    p = directives.add_parser("list", help="list directives, newest first")
    p.add_argument("--org", required=True)
    p.add_argument("--status")
    p.add_argument("--name")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_directives_list)
    for action in ("show", "approve", "reject", "cancel", "rerun"):
        p = directives.add_parser(action, help=f"{action} one directive")
        p.add_argument("id")
        p.add_argument("--org", required=True)
        p.set_defaults(func=_directive_action(action))

    tool_commands = group("tools", "the typed tools agents use")
    tool_commands.add_parser("list", help="every tool with its kind and role").set_defaults(func=cmd_tools_list)
    p = tool_commands.add_parser("call", help="call a tool as the operator and print its JSON result")
    p.add_argument("name")
    p.add_argument("arguments", nargs="?", default="{}", help="the arguments as one JSON object")
    p.add_argument("--org", required=True)
    p.set_defaults(func=cmd_tools_call)

    signals = group("signals", "inspect and replay signals")
    p = signals.add_parser("list", help="list signals, oldest first")
    p.add_argument("--org", required=True)
    p.add_argument("--name")
    p.add_argument("--subject", help="TYPE:ID")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=cmd_signals_list)
    p = signals.add_parser("replay", help="re-run fanout for selected signals")
    p.add_argument("--org", required=True)
    p.add_argument("--id", nargs="+", action="extend", metavar="ID")
    p.add_argument("--name")
    p.add_argument("--since")
    p.set_defaults(func=cmd_signals_replay)
    return parser


DATABASE_ERRORS = (DBAPIError, psycopg.Error, sqlite3.Error)  # SQLAlchemy's, and the queue's own drivers'


def _database_problem(exc: Exception, url: str) -> str:
    """One line an operator can act on; the URL is shown without its password."""
    where = make_url(url).render_as_string(hide_password=True)
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip()
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return f"database at {where} is not initialised: run `fleetprompt db upgrade`"
    if isinstance(original, (psycopg.OperationalError, sqlite3.OperationalError)) or isinstance(exc, OperationalError):
        return f"database unreachable at {where}: {text.splitlines()[0] if text else type(original).__name__}"
    return f"database error at {where}: {type(original).__name__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Migration chatter is noise for an operator; warnings and errors still show. So are Huey's two lines per task
    # (the ledger records every run as signals), below DEBUG; the consumer's own start and stop lines stay.
    quiet = max(logging.WARNING, logging.getLevelNamesMapping()[settings.log_level])
    logging.getLogger("alembic").setLevel(quiet)
    logging.getLogger("huey").setLevel(quiet)
    logging.getLogger("huey.consumer").setLevel(settings.log_level)
    platform = None
    try:
        platform = Platform.build(settings)
        args.func(platform, args)
        return 0
    except ConfigError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    except (FleetPromptError, CliError) as exc:
        _err(f"error: {exc}")
        return EXIT_ERROR
    except ValidationError as exc:
        first = exc.errors()[0]
        _err(f"error: invalid {'.'.join(str(p) for p in first['loc']) or 'input'}: {first['msg']}")
        return EXIT_ERROR
    except DATABASE_ERRORS as exc:
        _err(f"error: {_database_problem(exc, settings.effective_database_url)}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    finally:
        if platform is not None:
            platform.close()


if __name__ == "__main__":
    raise SystemExit(main())
