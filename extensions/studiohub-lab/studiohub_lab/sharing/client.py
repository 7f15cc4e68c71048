"""Where the hub's sharing service is, and the calls to it with this server's own token.

The Lab panel calls this server (``studiohub/api/v1/sharing/…``), which forwards to the
service's API (``/services/sharing/api/v1/…``) as :class:`..client.ServiceClient` does
(docs/sharing.md); the service's refusals keep their status and message.
"""

from __future__ import annotations

from collections.abc import Mapping

from traitlets import Float

from studiohub import contract

from .. import client
from ..client import ServiceClient


class SharingClient(ServiceClient):
    """Where the sharing service is, and how long to wait for it
    (``c.SharingClient.<trait>``)."""

    SERVICE = "sharing"
    API = "api/v1"
    URL_VARIABLE = contract.SHARING_URL
    FEATURE_IS = "notebook sharing is"

    timeout = Float(
        120.0, help="""Seconds to wait for the sharing service (sharing a large notebook
        renders its preview before answering).""",
    ).tag(config=True)


def service_url_from(environ: Mapping[str, str]) -> str:
    """The service's URL from a server's environment (see :attr:`SharingClient.service_url`)."""
    return client.service_url_from(environ, contract.SHARING_URL, SharingClient.SERVICE)
