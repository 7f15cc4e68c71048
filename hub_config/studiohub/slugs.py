"""The one place where user input (hub user names, server names) becomes host names.

Unix account names and cgroup names are derived here and nowhere else. Guarantees:

1. **Safe characters.** A slug matches ``[a-z0-9]([a-z0-9-]*[a-z0-9])?``: no ``/``, no
   ``.``, no ``_``, no upper case, never empty. Unix names additionally start with a
   letter (the prefix) and are at most 32 characters (``useradd``'s limit).
2. **Readable when possible.** A name that is already safe, short enough and free of
   ``--`` is kept as it is (``alice`` → ``alice``, unix ``jupyter-alice``).
3. **Distinct names stay distinct.** Any other name becomes its cleaned, truncated form
   plus ``--`` and 8 hex digits of its SHA-256 (``Alice`` → ``alice--3bc51062``). Kept
   names never contain ``--`` and hashed ones always do, so the two kinds cannot collide;
   two hashed ones collide only if their hashes do (1 in 2³² per pair).
4. **Stable.** The same input always gives the same slug, across hosts and versions of
   StudioHub, so a user keeps their account and files.
"""

from __future__ import annotations

import hashlib
import re

UNIX_NAME_MAX = 32
DEFAULT_UNIX_PREFIX = "jupyter-"
CGROUP_PREFIX = "jupyter-"
_SAFE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
_HASH_LEN = 8


def is_safe(name: str, max_length: int) -> bool:
    """True when ``name`` can be used unchanged (guarantee 2)."""
    return len(name) <= max_length and "--" not in name and bool(_SAFE.match(name))


def safe_slug(name: str, max_length: int = 63) -> str:
    """``name`` itself when safe, else ``<cleaned>--<hash8>`` within ``max_length``."""
    if max_length < _HASH_LEN + 3:
        raise ValueError(f"max_length {max_length} is too short for a slug")
    if is_safe(name, max_length):
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_LEN]
    cleaned = _UNSAFE_RUN.sub("-", name.lower()).strip("-")
    cleaned = cleaned[: max_length - _HASH_LEN - 2].strip("-") or "x"
    return f"{cleaned}--{digest}"


def unix_name(user: str, prefix: str = DEFAULT_UNIX_PREFIX) -> str:
    """The unix account of hub user ``user``: ``jupyter-alice`` (at most 32 characters).

    The prefix keeps hub users away from system accounts: a hub user called ``root``
    or ``daemon`` gets ``jupyter-root``, never the real one.
    """
    if not re.match(r"^[a-z_][a-z0-9_-]*$", prefix):
        raise ValueError(f"unix name prefix {prefix!r} must start with a letter and use a-z0-9_-")
    return prefix + safe_slug(user, UNIX_NAME_MAX - len(prefix))


def cgroup_name(user: str, server: str = "") -> str:
    """The cgroup of one user server: ``jupyter-alice``, or ``jupyter-alice_gpu`` if named.

    ``_`` never occurs in a slug, so user and server parts cannot be confused; the prefix
    keeps names clear of control files without a dot (v1's ``tasks``).
    """
    name = CGROUP_PREFIX + safe_slug(user)
    return f"{name}_{safe_slug(server)}" if server else name
