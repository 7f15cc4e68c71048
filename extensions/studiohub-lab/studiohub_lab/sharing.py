"""Notebook sharing from JupyterLab: this server calls the hub's sharing service for the user.

The browser at ``/user/NAME/lab`` holds no token for the sharing service, so the Lab
panel calls this server (``studiohub/api/v1/sharing/…``) and this server forwards to the
service's API (``/services/sharing/api/v1/…``) with its own ``$JUPYTERHUB_API_TOKEN``,
which the spawner grants ``access:services!service=sharing`` (docs/sharing.md). Sharing
and publishing read the notebook here, through the contents manager, so the Lab sends a
path, never a whole notebook.

The service's refusals keep their status and message: a 403 naming the domain reaches
the user as that sentence. Only the service being unreachable or failing is a 502.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlparse

from jupyter_core.utils import ensure_async
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import Configurable

from .errors import LabError, NotFound, Unavailable
from .handlers import LabAPIHandler

#: Set by the hub's sharing configuration (``studiohub.sharing.config``) in every
#: server's environment: the service's URL as servers reach it.
URL_ENV = "STUDIOHUB_SHARING_URL"
SERVICE_PATH = "services/sharing/"
#: What the Lab may send when sharing or publishing (the notebook is read here).
SHARE_KEYS = {"path": str, "domain": str, "include_outputs": bool, "note": str}
VERSION_KEYS = {"path": str, "include_outputs": bool, "note": str}
COPY_KEYS = {"version": int}
LIST_ARGUMENTS = ("filter", "q", "domain")
#: Share ids are URL-safe base64; nothing else may reach the service's URL.
SHARE_ID = r"(?P<share_id>[A-Za-z0-9_-]{1,64})"


class SharingClient(Configurable):
    """Where the sharing service is, and how long to wait for it
    (``c.SharingClient.<trait>``)."""

    service_url = Unicode(
        help=f"""URL of the sharing service as this server reaches it, ending in
        ``/services/sharing/`` (e.g. ``http://127.0.0.1:8000/services/sharing/``).
        Default: ${URL_ENV} (set by StudioHub's hub for every server), else
        $JUPYTERHUB_PUBLIC_URL's origin + $JUPYTERHUB_BASE_URL + services/sharing/.
        Empty: sharing is unavailable from this server (503 saying so).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return service_url_from(os.environ)

    timeout = Float(
        120.0, help="""Seconds to wait for the sharing service (sharing a large notebook
        renders its preview before answering).""",
    ).tag(config=True)

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None,
                   query: Mapping[str, str] | None = None) -> Any:
        """``method`` on ``<service>api/v1/<path>``; the answer's JSON (or None).

        Raises :class:`LabError` with the service's status and message for its 4xx
        answers, 502 when it failed or could not be reached, 503 when not configured.
        """
        if not self.service_url:
            raise Unavailable("notebook sharing is not available on this server: it was not "
                              f"started by StudioHub's hub (set ${URL_ENV} or "
                              "c.SharingClient.service_url)")
        token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        if not token:
            raise Unavailable("notebook sharing needs this server's $JUPYTERHUB_API_TOKEN: "
                              "start the server from the hub")
        url = f"{self.service_url.rstrip('/')}/api/v1/{path}"
        if query:
            url += "?" + urlencode(query)
        request = HTTPRequest(
            url, method=method, headers={"Authorization": f"token {token}",
                                         "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True, request_timeout=self.timeout,
            follow_redirects=False)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise forwarded_error(e) from None
        except OSError as e:
            raise LabError(f"cannot reach the sharing service at {self.service_url} ({e}): "
                           "try again in a moment, or ask an administrator to check that "
                           "the hub's sharing service runs", 502) from None
        return json.loads(response.body) if response.body else None


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see :attr:`SharingClient.service_url`)."""
    if environ.get(URL_ENV):
        return environ[URL_ENV]
    public = urlparse(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if public.scheme and public.netloc:
        base = "/" + environ.get("JUPYTERHUB_BASE_URL", "/").strip("/")
        return f"{public.scheme}://{public.netloc}{base.rstrip('/')}/{SERVICE_PATH}"
    return ""


def forwarded_error(error: HTTPClientError) -> LabError:
    """The service's refusal as a :class:`LabError`: 4xx kept with its message, else 502."""
    body = error.response.body if error.response is not None else b""
    message = ""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        message = str(json.loads(body)["message"])
    if 400 <= error.code < 500:
        return LabError(message or f"the sharing service refused the request "
                                   f"({error.code} {error.message})", error.code)
    if error.code == 599:  # tornado's own code for a timeout
        return LabError("the sharing service did not answer in time: try again, or share "
                        "without outputs if the notebook is large", 504)
    return LabError(f"the sharing service failed ({error.code}): "
                    f"{message or error.message}; try again, or ask an administrator to "
                    "look at the hub's log", 502)


def check_body(body: Mapping[str, Any], keys: Mapping[str, type]) -> dict[str, Any]:
    """Unknown keys and wrong types are 400s naming the key."""
    unknown = sorted(set(body) - set(keys))
    if unknown:
        raise LabError(f"unknown field(s) {', '.join(unknown)}: send "
                       f"{', '.join(keys)}")
    for key, kind in keys.items():
        value = body.get(key)
        if value is not None and (not isinstance(value, kind)
                                  or (kind is int and isinstance(value, bool))):
            raise LabError(f"{key} must be {kind.__name__}, not {type(value).__name__}")
    return {k: v for k, v in body.items() if v is not None}


def notebook_name(path: Any) -> str:
    """The file name the share takes; 400 unless ``path`` is a notebook's path."""
    if not isinstance(path, str) or not path.strip("/"):
        raise LabError("path: the notebook's path (ending in .ipynb) is required")
    name = posixpath.basename(path.rstrip("/"))
    if not name.endswith(".ipynb"):
        raise LabError(f"{path!r} is not a notebook: only .ipynb files can be shared")
    return name


def with_environment(notebook: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The notebook with ``metadata.studiohub`` {image, size} filled where missing.

    The image and size the Lab's picker recorded win. A notebook that never chose one
    ran on its kernel's image (``studiohub-<image>`` kernels) and, if that is this
    server's own image, on this server's size. Returns a copy; nothing else changes.
    """
    metadata = dict(notebook.get("metadata") or {})
    recorded = metadata.get("studiohub")
    studiohub = dict(recorded) if isinstance(recorded, dict) else {}
    kernel = str((metadata.get("kernelspec") or {}).get("name") or "")
    if not studiohub.get("image") and kernel.startswith("studiohub-"):
        studiohub["image"] = kernel.removeprefix("studiohub-")
    server_image, server_size = environ.get("STUDIOHUB_IMAGE"), environ.get("STUDIOHUB_SIZE")
    if not studiohub.get("size") and server_size and studiohub.get("image") == server_image:
        studiohub["size"] = server_size
    if studiohub:
        metadata["studiohub"] = studiohub
    return {**notebook, "metadata": metadata}


async def read_notebook(contents_manager: Any, path: str) -> dict[str, Any]:
    """The saved notebook at ``path`` (relative to the server's root) as a plain dict."""
    try:
        model = await ensure_async(contents_manager.get(path.strip("/"), content=True,
                                                        type="notebook"))
    except web.HTTPError as e:
        if e.status_code == 404:
            raise NotFound(f"no notebook at {path!r}: save it first, or open the notebook "
                           "you want to share and use Share… from its toolbar") from None
        raise LabError(f"cannot read {path!r}: {e.log_message or e.reason}",
                       e.status_code if 400 <= e.status_code < 500 else 400) from None
    content = model.get("content")
    if not isinstance(content, dict):
        raise LabError(f"{path!r} could not be read as a notebook")
    # NotebookNode is a dict; a JSON round trip makes it plain (and JSON-safe).
    plain: dict[str, Any] = json.loads(json.dumps(content))
    return with_environment(plain, os.environ)


def options(body: Mapping[str, Any]) -> dict[str, Any]:
    """``include_outputs`` and ``note`` as the Lab sent them (the service has defaults)."""
    return {k: body[k] for k in ("include_outputs", "note") if k in body}


def list_query(arguments: Mapping[str, list[bytes]]) -> dict[str, str]:
    """The listing's query arguments the service knows, passed through as they came."""
    return {k: arguments[k][-1].decode("utf-8", "replace")[:200]
            for k in LIST_ARGUMENTS if arguments.get(k)}


# --- handlers (routes in handlers.make_handlers, under studiohub/api/v1/sharing/) -----------


class SharingHandler(LabAPIHandler):
    @property
    def client(self) -> SharingClient:
        return SharingClient(parent=self.lab)

    async def read(self, path: str) -> dict[str, Any]:
        assert self.lab.serverapp is not None
        return await read_notebook(self.lab.serverapp.contents_manager, path)


class DomainsHandler(SharingHandler):
    """``GET sharing/domains``: where this user can share."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "domains"))


class SharesHandler(SharingHandler):
    """``GET sharing/shares?filter=mine|domains&q=&domain=``; ``POST sharing/shares``
    ``{path, domain, include_outputs?, note?}`` shares the saved notebook at ``path``."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "shares",
                                               query=list_query(self.request.arguments)))

    @web.authenticated
    async def post(self) -> None:
        body = check_body(self.get_json_body(), SHARE_KEYS)
        name = notebook_name(body.get("path"))
        if not body.get("domain"):
            raise LabError("domain: choose one of your domains to share with")
        notebook = await self.read(body["path"])
        forward: dict[str, Any] = {"domain": body["domain"], "name": name,
                                   "notebook": notebook, **options(body)}
        self.write_json(await self.client.call("POST", "shares", forward), 201)


class ShareHandler(SharingHandler):
    """``GET sharing/shares/<id>`` (with its versions); ``DELETE`` revokes."""

    @web.authenticated
    async def get(self, share_id: str) -> None:
        self.write_json(await self.client.call("GET", f"shares/{share_id}"))

    @web.authenticated
    async def delete(self, share_id: str) -> None:
        self.write_json(await self.client.call("DELETE", f"shares/{share_id}"))


class VersionsHandler(SharingHandler):
    """``POST sharing/shares/<id>/versions`` ``{path, include_outputs?, note?}``: publish
    the saved notebook at ``path`` as the link's new version."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        body = check_body(self.get_json_body(), VERSION_KEYS)
        notebook_name(body.get("path"))
        notebook = await self.read(body["path"])
        forward: dict[str, Any] = {"notebook": notebook, **options(body)}
        self.write_json(await self.client.call("POST", f"shares/{share_id}/versions",
                                               forward), 201)


class CopyHandler(SharingHandler):
    """``POST sharing/shares/<id>/copy`` ``{version?}``: into this user's home."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        body = check_body(self.get_json_body(), COPY_KEYS)
        self.write_json(await self.client.call("POST", f"shares/{share_id}/copy", body), 201)


class RecentHandler(SharingHandler):
    """``GET sharing/recent``: shares this user opened lately."""

    @web.authenticated
    async def get(self) -> None:
        self.write_json(await self.client.call("GET", "recent"))
