"""The hub's side of the models service's fast lane: the proxy's endpoint routes.

The manager says which endpoints HAProxy routes (``PUT /hub/api/studiohub/endpoint-routes``
``{"endpoints": [names]}``, scope ``custom:studiohub:endpoints-routes``, its role's
only); the hub then keeps exactly those routes in configurable-http-proxy:
``/services/models/<name>/`` → HAProxy's fast-lane socket (:mod:`.balancer`). The target
is the hub's own choice, never the caller's: the scope can only point endpoint paths of
the models service at root's socket in the hub's state directory.

The routes carry ``{"studiohub": "endpoint-lane"}`` and no ``jupyterhub`` key, so the
hub's route check leaves them alone; a proxy started again without them (they live in
its memory) gets them back at the manager's next sync, and meanwhile the service's own
route (the gateway) answers every request, a little slower.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jupyterhub.scopes import has_scope
from jupyterhub.utils import url_path_join
from tornado import web

from ..hubapi import StudioHubAPIHandler
from ..placement import Refused
from .model import NAME, RESERVED

ROUTES_SCOPE = "custom:studiohub:endpoints-routes"
#: The ``data`` that marks a route as one of these.
MARK = {"studiohub": "endpoint-lane"}
MAX_ROUTES = 10_000


def lane_target(direct_socket: str) -> str:
    """configurable-http-proxy's form of a unix socket target."""
    return "unix+http://" + quote(direct_socket, safe="")


def wanted_names(body: dict[str, Any]) -> list[str]:
    names = body.get("endpoints")
    if not isinstance(names, list) or len(names) > MAX_ROUTES or not all(
            isinstance(n, str) and NAME.match(n) and n not in RESERVED for n in names):
        raise Refused(400, "endpoints: a list of endpoint names")
    return sorted(set(names))


class EndpointRoutesHandler(StudioHubAPIHandler):
    """``PUT``: the proxy routes exactly these endpoints to the fast lane."""

    def initialize(self, book_path: str, direct_socket: str = "") -> None:
        super().initialize(book_path)
        self.direct_socket = direct_socket

    async def put(self) -> None:
        if not self.current_user or not has_scope(ROUTES_SCOPE, self.parsed_scopes,
                                                  db=self.db):
            raise web.HTTPError(403, "only the models service routes endpoints")
        names = wanted_names(self.body({"endpoints"}))
        proxy = self.proxy
        if not hasattr(proxy, "api_request") or not hasattr(proxy, "_routespec_to_chp_path"):
            raise Refused(501, "the hub's proxy is not configurable-http-proxy: endpoints "
                               "are answered through the models service alone")
        service = self.services.get("models")
        prefix = service.proxy_spec if service is not None and service.server else \
            url_path_join(self.base_url, "services/models/")
        target = lane_target(self.direct_socket)
        routes = await (await proxy.api_request("")).json()
        ours = {path: data for path, data in routes.items()
                if isinstance(data, dict) and data.get("studiohub") == MARK["studiohub"]}
        wanted = {proxy._routespec_to_chp_path(f"{prefix}{name}/") for name in names}
        for path in sorted(set(ours) - wanted):
            await proxy.api_request(path, method="DELETE")
        for path in sorted(wanted):
            if ours.get(path, {}).get("target") != target:
                await proxy.api_request(path, method="POST", body={**MARK, "target": target})
        changed = set(ours) ^ wanted
        if changed:
            self.log.info("Endpoint routes to the balancer: %s", ", ".join(names) or "none")
        self.write_json({"endpoints": names})
