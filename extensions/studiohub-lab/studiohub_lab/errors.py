"""Refusals the user can act on. Handlers turn them into JSON ``{status, message}``."""

from __future__ import annotations


class LabError(Exception):
    """A request StudioHub refuses; ``status`` is the HTTP status (4xx, or 503 for a
    missing piece of the installation), the message says what was wrong and what to do."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(LabError):
    status = 404


class Forbidden(LabError):
    status = 403


class Conflict(LabError):
    status = 409


class Unavailable(LabError):
    """Something the operator must install or fix (e.g. the TensorBoard environment)."""

    status = 503
