"""Organizations, users, memberships, API tokens, and the authenticated request context."""
