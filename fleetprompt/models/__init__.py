"""SQLModel tables. Importing this package registers every table on SQLModel.metadata."""

from fleetprompt.models.ledger import Directive, DirectiveStatus, Signal, SignalDelivery
from fleetprompt.models.tenancy import ApiToken, Membership, MembershipStatus, Organization, Role, Tier, User

__all__ = [
    "ApiToken",
    "Directive",
    "DirectiveStatus",
    "Membership",
    "MembershipStatus",
    "Organization",
    "Role",
    "Signal",
    "SignalDelivery",
    "Tier",
    "User",
]
