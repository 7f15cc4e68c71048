"""How long this server trusts the hub's answer about a token or a login cookie.

JupyterHub's single-user server (``HubOAuth``) caches the hub's verdict for 5 minutes by
default, so a token deleted on the hub kept working here, on the Lab extension too, for
up to 5 minutes. ``jupyter_server_config.d`` files only enable extensions (their other
sections are not read), so the extension shortens the cache itself, once, at start and
before any request: a revoked token is refused within ``seconds``. The cost is one hub
API call (``GET /hub/api/user``) per token or browser session per ``seconds`` that is
in use, instead of one per 5 minutes.
"""

from __future__ import annotations

from typing import Any


def limit_auth_cache(identity_provider: Any, seconds: int) -> bool:
    """Make the server's ``HubOAuth`` cache the hub's answers at most ``seconds``.

    Returns False where there is no ``HubOAuth`` (a server not started by a hub).
    """
    hub_auth = getattr(identity_provider, "hub_auth", None)
    if hub_auth is None or not hasattr(hub_auth, "cache_max_age"):
        return False
    hub_auth.cache_max_age = min(int(hub_auth.cache_max_age), seconds)
    cache = hub_auth.cache  # made on first use from cache_max_age; shorten it if made
    if getattr(cache, "max_age", 0) == 0 or cache.max_age > hub_auth.cache_max_age:
        cache.max_age = hub_auth.cache_max_age
        cache.purge_interval = hub_auth.cache_max_age
    return True
