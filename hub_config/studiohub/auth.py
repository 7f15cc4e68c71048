"""Who may log in as whom: the ``auth.type`` names StudioHub accepts, and the admin's password.

A system (root) hub defaults to JupyterHub's FirstUseAuthenticator, as The Littlest
JupyterHub does: each user chooses a password at their first login and only that password
opens the account afterwards, so nobody can log in *as* someone else. A personal hub
keeps the shared password, generated once and shown only to the account that runs it
(which is also the only account allowed to log in). The other common authenticators ship
installed, so choosing one is a config change (docs/security.md says why this default).
"""

from __future__ import annotations

import dbm
from importlib.metadata import entry_points
from pathlib import Path

import bcrypt

#: ``auth.type`` short names → JupyterHub ``authenticator_class`` values.
AUTHENTICATORS = {
    "firstuse": "firstuseauthenticator.FirstUseAuthenticator",
    "native": "nativeauthenticator.NativeAuthenticator",
    "generic-oauth": "oauthenticator.generic.GenericOAuthenticator",
    "github": "oauthenticator.github.GitHubOAuthenticator",
    "ldap": "ldapauthenticator.LDAPAuthenticator",
    "shared-password": "shared-password",  # JupyterHub's own SharedPasswordAuthenticator
}
#: Shortest password FirstUseAuthenticator accepts at a first login (as the shared one).
MIN_PASSWORD_LENGTH = 8
#: FirstUseAuthenticator's password hashes, in the state directory.
PASSWORDS_DBM = "passwords.dbm"


def default_type(system: bool) -> str:
    """Per-user passwords for a team (system) hub; the shared password for a personal one."""
    return "firstuse" if system else "shared-password"


def check_type(name: str) -> None:
    """Refuse an ``auth.type`` that is neither ours, an import path, nor an entry point."""
    if name in AUTHENTICATORS or "." in name:
        return
    if name in {ep.name for ep in entry_points(group="jupyterhub.authenticators")}:
        return
    raise ValueError(f"unknown auth.type {name!r}: use one of {', '.join(AUTHENTICATORS)}, "
                     "or the import path of an Authenticator class")


def authenticator_class(name: str) -> str:
    """The ``JupyterHub.authenticator_class`` for an ``auth.type``."""
    return AUTHENTICATORS.get(name, name)


def seed_firstuse_password(dbm_path: Path, name: str, password: str) -> bool:
    """Give ``name`` its password before anyone's first login; True if it was missing.

    Under FirstUseAuthenticator the first person to log in as a name sets its password:
    the admin's name would go to whoever claims it first. ``studiohub up`` stores the
    admin's generated password (``state/admin-password``) for it beforehand instead,
    hashed the way FirstUseAuthenticator checks it. A password already set is kept.
    """
    with dbm.open(str(dbm_path), "c", 0o600) as db:
        if name.encode() in db:
            return False
        db[name] = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
    return True


def password_opens(dbm_path: Path, name: str, password: str) -> bool:
    """Whether ``password`` is the one stored for ``name``: the banner and ``studiohub
    reload`` name ``state/admin-password`` only to an admin it really opens (an admin who
    had logged in before keeps their own password, :func:`seed_firstuse_password`)."""
    try:
        with dbm.open(str(dbm_path), "r") as db:
            stored = db.get(name.encode())
    except dbm.error:
        return False
    return stored is not None and bcrypt.checkpw(password.encode(), stored)
