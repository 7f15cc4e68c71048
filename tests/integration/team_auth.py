"""An authenticator that manages groups, as an OIDC provider's would (manage_groups)."""

from __future__ import annotations

from typing import Any

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator


class TeamAuthenticator(SharedPasswordAuthenticator):
    """The shared password; names starting with ``ta`` are in the provider's ``team-a``."""

    async def authenticate(self, handler: Any, data: dict[str, Any]) -> dict[str, Any] | None:
        user = await super().authenticate(handler, data)
        if user is None:
            return None
        name = user if isinstance(user, str) else user["name"]
        return {"name": name, "groups": ["team-a"] if name.startswith("ta") else []}
