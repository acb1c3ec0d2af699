"""Directive types of the domains: payload model, required role, subject and impact of each.

Declared here, below both tools (which file them) and the runner (which binds their handlers).
"""

from fleetprompt.ledger.types import forum, marketplace

__all__ = ["forum", "marketplace"]
