"""SQLModel tables. Importing this package registers every table on SQLModel.metadata."""

from fleetprompt.models.agents import Agent
from fleetprompt.models.chat import ChatConversation, ChatMessage, ChatToolCall
from fleetprompt.models.forum import ForumCategory, ForumPost, ForumThread
from fleetprompt.models.ledger import Directive, DirectiveStatus, Signal, SignalDelivery
from fleetprompt.models.marketplace import (
    Installation,
    InstallationResource,
    Package,
    PackageInstallRecord,
    PackageReview,
    PackageVersion,
)
from fleetprompt.models.tenancy import (
    ApiToken,
    Membership,
    MembershipStatus,
    Organization,
    Role,
    SignInFailure,
    Tier,
    User,
)

__all__ = [
    "Agent",
    "ApiToken",
    "ChatConversation",
    "ChatMessage",
    "ChatToolCall",
    "Directive",
    "DirectiveStatus",
    "ForumCategory",
    "ForumPost",
    "ForumThread",
    "Installation",
    "InstallationResource",
    "Membership",
    "MembershipStatus",
    "Organization",
    "Package",
    "PackageInstallRecord",
    "PackageReview",
    "PackageVersion",
    "Role",
    "SignInFailure",
    "Signal",
    "SignalDelivery",
    "Tier",
    "User",
]
