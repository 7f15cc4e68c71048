"""The management API of the models service under ``<prefix>api/`` (docs/endpoints.md).

| method and path                                         | what                              |
| ------------------------------------------------------- | --------------------------------- |
| ``POST api/endpoints`` (``?check=true``: dry run)        | deploy: 201 endpoint, or 200 ok   |
| ``GET api/endpoints`` (admins: ``?user=``)               | the caller's endpoints            |
| ``GET api/endpoints/NAME``                               | one endpoint (another's: 404)     |
| ``GET api/endpoints/NAME/logs?version=&replica=&offset=`` | a replica's output, text/plain   |
| ``GET api/endpoints/NAME/metrics`` (the gateway's)        | requests/s, p50/p99, errors       |
| ``POST api/endpoints/NAME/traffic`` ``{canary: 0..100}`` | the newest version's share        |
| ``POST api/endpoints/NAME/rollback``                     | back to the version before        |
| ``DELETE api/endpoints/NAME``                            | stop and forget it (204)          |
| ``POST/GET api/endpoints/NAME/tokens`` (``{note}``), ``DELETE …/tokens/ID`` | tokens  |

Handlers parse and answer; :mod:`.service` decides. They run in the manager, behind the
gateway (:mod:`.gateway`), which authenticates every request with the hub and passes the
caller on; the bounded body and the ``{status, message}`` errors are the sharing
service's (:mod:`studiohub.sharing.base`).
"""

from __future__ import annotations

import json
import os
from typing import Any, NoReturn

from tornado import web
from tornado.http1connection import HTTP1Connection

from ..sharing.base import MAX_DRAINED_BYTES, APIHandler, authenticated, parse_json
from .model import EndpointError
from .service import Caller, Models

MAX_LOG_CHUNK = 4 * 1024 * 1024
#: The caller, as the gateway authenticated them: ``{"name", "groups", "admin", "kind"}``.
CALLER_HEADER = "X-Studiohub-Caller"
TRUE, FALSE = ("1", "true", "yes"), ("0", "false", "no")


class ModelsBase(APIHandler):
    """The manager's handlers: the caller as the gateway authenticated them (its
    :data:`CALLER_HEADER`; only the gateway, root, reaches the manager's root-only
    socket); :class:`EndpointError` as its 4xx."""

    service_name = "models"
    max_body_bytes = 64 * 1024

    def initialize(self) -> None:
        """No HubAuth here: the gateway asked the hub (:mod:`.gateway`)."""

    async def prepare(self) -> None:
        self._body, self._body_size = bytearray(), 0
        if isinstance(self.request.connection, HTTP1Connection):
            self.request.connection.set_max_body_size(MAX_DRAINED_BYTES)

    def get_current_user(self) -> dict[str, Any] | None:
        try:
            caller = json.loads(self.request.headers.get(CALLER_HEADER, "null"))
        except ValueError:
            return None
        return caller if isinstance(caller, dict) and isinstance(caller.get("name"), str) \
            else None

    @property
    def models(self) -> Models:
        models: Models = self.settings["models"]
        return models

    @property
    def caller(self) -> Caller:
        user = self.current_user
        if user is None or user.get("kind", "user") != "user":
            raise web.HTTPError(403, "only JupyterHub users can manage model endpoints")
        return Caller(user["name"], tuple(user.get("groups") or ()), bool(user.get("admin")))

    def json_body(self) -> Any:
        if not self._body.strip():
            raise web.HTTPError(400, "request body is empty: send a JSON object")
        return parse_json(bytes(self._body))

    def flag(self, name: str) -> bool:
        value = self.get_argument(name, "false").lower()
        if value not in TRUE + FALSE:
            raise web.HTTPError(400, f"?{name}= takes true or false")
        return value in TRUE

    def refuse(self, e: EndpointError) -> NoReturn:
        raise web.HTTPError(e.status, e.message) from None


class RootHandler(ModelsBase):
    @authenticated
    def get(self) -> None:
        self.write_json({"service": "models", "endpoints": self.prefix("api/endpoints")})


class EndpointsHandler(ModelsBase):
    @authenticated
    def get(self) -> None:
        try:
            found = self.models.listing(self.caller, self.get_argument("user", None))
        except EndpointError as e:
            self.refuse(e)
        self.write_json({"endpoints": [self.models.describe(e) for e in found]})

    @authenticated
    async def post(self) -> None:
        check = self.flag("check")
        try:
            endpoint = await self.models.deploy(self.caller, self.json_body(), check)
        except EndpointError as e:
            self.refuse(e)
        if check:
            self.write_json(endpoint)  # what it would deploy: {ok, version, …}
        else:
            self.write_json(self.models.describe(endpoint), 201)


class EndpointHandler(ModelsBase):
    @authenticated
    def get(self, name: str) -> None:
        try:
            self.write_json(self.models.describe(self.models.get(self.caller, name)))
        except EndpointError as e:
            self.refuse(e)

    @authenticated
    async def delete(self, name: str) -> None:
        try:
            await self.models.delete(self.caller, name)
        except EndpointError as e:
            self.refuse(e)
        self.set_status(204)
        self.finish()


class TrafficHandler(ModelsBase):
    @authenticated
    async def post(self, name: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict) or set(body) != {"canary"}:
            raise web.HTTPError(400, "send {\"canary\": <0..100>}: the newest version's share")
        try:
            endpoint = await self.models.set_traffic(self.caller, name, body["canary"])
        except EndpointError as e:
            self.refuse(e)
        self.write_json(self.models.describe(endpoint))


class RollbackHandler(ModelsBase):
    @authenticated
    async def post(self, name: str) -> None:
        try:
            endpoint = await self.models.rollback(self.caller, name)
        except EndpointError as e:
            self.refuse(e)
        self.write_json(self.models.describe(endpoint))


class LogsHandler(ModelsBase):
    @authenticated
    def get(self, name: str) -> None:
        version = self.get_argument("version", None)
        replica = self.get_argument("replica", "replica-0")
        offset = self.get_argument("offset", "0")
        if not offset.isdigit() or len(offset) > 15 or \
                (version is not None and (not version.isdigit() or len(version) > 9)):
            raise web.HTTPError(400, "?version= and ?offset= take whole numbers")
        try:
            path = self.models.log_file(self.caller, name,
                                        int(version) if version else None, replica)
        except EndpointError as e:
            self.refuse(e)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(min(int(offset), size))
                data = f.read(MAX_LOG_CHUNK)
        except FileNotFoundError:
            data, size = b"", 0
        self.set_header("X-Log-Size", str(size))
        self.finish(data)


class TokensHandler(ModelsBase):
    @authenticated
    def get(self, name: str) -> None:
        try:
            self.write_json({"tokens": self.models.list_tokens(self.caller, name)})
        except EndpointError as e:
            self.refuse(e)

    @authenticated
    def post(self, name: str) -> None:
        try:
            body = self.json_body() if self._body.strip() else {}
            if not isinstance(body, dict) or set(body) - {"note"}:
                raise web.HTTPError(400, 'a new token takes {"note": "what uses it"} '
                                         "or no body")
            self.write_json(self.models.create_token(self.caller, name,
                                                     body.get("note", "")), 201)
        except EndpointError as e:
            self.refuse(e)


class TokenHandler(ModelsBase):
    @authenticated
    async def delete(self, name: str, token_id: str) -> None:
        try:
            await self.models.revoke_token(self.caller, name, token_id)
        except EndpointError as e:
            self.refuse(e)
        self.set_status(204)
        self.finish()
