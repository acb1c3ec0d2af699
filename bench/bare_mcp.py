"""The MCP baseline: a bare `MCPServer` with one trivial tool, served like `fleetprompt serve` serves /mcp.

Same SDK, same Streamable HTTP settings (path, session mode, body limit, Host/Origin checks), same uvicorn call and
log level; no authentication, no database. Run as `python -m bench.bare_mcp --port N`.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel

from fleetprompt.mcp_server import MAX_BODY_BYTES

HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]  # FleetPrompt's default FLEETPROMPT_ALLOWED_HOSTS


class Echo(BaseModel):
    text: str


def echo(text: str = "ping") -> Echo:
    """Return the text (the trivial tool)."""
    return Echo(text=text)


def build_app(log_level: str = "INFO") -> object:
    server = MCPServer("bare", log_level=log_level)  # type: ignore[arg-type]
    server.add_tool(echo, name="echo", structured_output=True)
    origins = [f"{scheme}://{host}" for host in HOSTS for scheme in ("http", "https")]
    return server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=False,
        max_request_body_size=MAX_BODY_BYTES,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=HOSTS, allowed_origins=origins
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    # As `fleetprompt` configures logging for `serve`.
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        build_app(args.log_level),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=args.port,
        log_level=args.log_level.lower(),
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
