"""The route table: each concern's routes, composed under ``studiohub/api/v1/``.

Every handler is ``@tornado.web.authenticated``; errors are JSON ``{status, message}``
(:mod:`.base`), never a traceback, and user input never yields a 500.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Route
from .endpoints import handlers as endpoints
from .sharing import handlers as sharing
from .switching import handlers as switching
from .tensorboard import handlers as tensorboard
from .training import handlers as training

if TYPE_CHECKING:
    from .app import StudioHubLab

API = "studiohub/api/v1"


def make_handlers(app: StudioHubLab) -> list[Route]:
    """The route table (paths are relative to the server's ``base_url``)."""
    kw = {"lab": app}
    return [*switching.routes(API, kw), *tensorboard.routes(API, kw),
            *sharing.routes(API, kw), *training.routes(API, kw),
            *endpoints.routes(API, kw)]
