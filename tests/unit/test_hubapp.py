"""The hub's log filters (hubapp.py): a user's mistake is a warning line, an error keeps
its traceback."""

from __future__ import annotations

import logging
import sys

from tornado import web

from studiohub.hubapp import ExpectedNotes, RefusalsWithoutTraceback


def record(level: int, msg: str, error: BaseException | None = None) -> logging.LogRecord:
    info = (type(error), error, None) if error is not None else None
    return logging.LogRecord("StudioHubApp", level, __file__, 1, msg, None, info)


def test_a_first_password_too_short_is_a_warning() -> None:
    """FirstUseAuthenticator logs the user's too-short first password as an error."""
    r = record(logging.ERROR, "Password too short! Please choose a password at least 8 …")
    assert RefusalsWithoutTraceback().filter(r) and r.levelname == "WARNING"


def test_a_4xx_loses_its_traceback_and_a_5xx_keeps_it() -> None:
    refused = record(logging.ERROR, "Failed to spawn single-user server with form",
                     web.HTTPError(400, "size %r is not allowed", "nope"))
    assert RefusalsWithoutTraceback().filter(refused)
    assert (refused.levelname, refused.exc_info) == ("WARNING", None)
    assert refused.getMessage() == ("Failed to spawn single-user server with form: 400 size "
                                    "'nope' is not allowed")
    try:
        raise web.HTTPError(500, "broken")
    except web.HTTPError:
        failed = logging.LogRecord("StudioHubApp", logging.ERROR, __file__, 1, "Failed", None,
                                   sys.exc_info())
    assert RefusalsWithoutTraceback().filter(failed)
    assert failed.levelname == "ERROR" and failed.exc_info is not None


def test_jupyterhubs_notes_on_studiohubs_own_settings_are_info() -> None:
    note = record(logging.WARNING, "JupyterHub.extra_handlers is deprecated in JupyterHub 3.1.")
    other = record(logging.WARNING, "Running JupyterHub without SSL.")
    assert ExpectedNotes().filter(note) and note.levelname == "INFO"
    assert ExpectedNotes().filter(other) and other.levelname == "WARNING"
