"""What both spawners (local processes, Kubernetes pods) share about the catalog.

:func:`cached_catalog` reloads the catalog only when its file changes, and
:class:`CatalogChoice` gives a spawner its ``catalog``, its user's ``groups`` (their
domains) and :meth:`CatalogChoice.choose`, the catalog's verdict on ``user_options`` as
a ``SpawnException(400)``. A start validates its options once: the verdict is kept for
the same options (the form, ``apply_user_options`` and ``start`` all ask).

Nothing here imports a spawner, psutil or cgroups: the Kubernetes side stays light.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SpawnException

from .catalog import Catalog, Choice, ChoiceError, load_catalog

_catalogs: dict[str, tuple[float, Catalog]] = {}


def cached_catalog(path: str) -> Catalog:
    """The catalog, reloaded when its file changes (a spawn page must not re-validate it)."""
    key = path or ""
    mtime = Path(path).stat().st_mtime if path else 0.0
    cached = _catalogs.get(key)
    if cached is None or cached[0] != mtime:
        _catalogs[key] = (mtime, load_catalog(path or None))
    return _catalogs[key][1]


def _options_key(options: Mapping[str, Any]) -> str | None:
    try:
        return json.dumps(dict(options), sort_keys=True)
    except (TypeError, ValueError):
        return None


class CatalogChoice:
    """Mixin of a spawner with a ``catalog_path`` trait and a ``user``."""

    catalog_path: str
    user: Any
    _verdict: tuple[Catalog, tuple[str, ...], str, Choice] | None = None

    @property
    def catalog(self) -> Catalog:
        return cached_catalog(self.catalog_path)

    @property
    def groups(self) -> list[str]:
        return [g.name for g in self.user.groups]

    def validate_options(self, catalog: Catalog, options: Mapping[str, Any]) -> Choice:
        """The catalog's verdict (:class:`ChoiceError` when refused); spawners that speak
        another vocabulary (KubeSpawner's ``profile``) translate it here."""
        return catalog.choose(self.groups, options)

    def choose(self, options: Mapping[str, Any]) -> Choice:
        """The catalog's verdict on ``options`` for this user, as a SpawnException(400).

        Kept for the same options, catalog and groups, so one start validates once.
        """
        catalog, groups = self.catalog, tuple(self.groups)
        key = _options_key(options)
        cached = self._verdict
        if cached is not None and key is not None and cached[0] is catalog \
                and cached[1:3] == (groups, key):
            return cached[3]
        try:
            choice = self.validate_options(catalog, options)
        except ChoiceError as e:
            raise SpawnException(str(e), reason="user_options", status_code=400) from None
        if key is not None:
            self._verdict = (catalog, groups, key, choice)
        return choice
