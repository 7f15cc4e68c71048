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
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyterhub.spawner import SpawnException

from .catalog import Catalog, CatalogError, Choice, ChoiceError, load_catalog

log = logging.getLogger(__name__)

_catalogs: dict[str, tuple[float, Catalog]] = {}


def cached_catalog(path: str) -> Catalog:
    """The catalog, reloaded when its file changes (a spawn page must not re-validate it).

    A file saved with a mistake does not reach the running hub: the last good catalog
    stays, with one warning per bad version (``studiohub reload`` prints the problems).
    """
    key = path or ""
    mtime = Path(path).stat().st_mtime if path else 0.0
    cached = _catalogs.get(key)
    if cached is None or cached[0] != mtime:
        try:
            _catalogs[key] = (mtime, load_catalog(path or None))
        except CatalogError as e:
            if cached is None:
                raise
            log.warning("%s; the last good catalog stays in use", e)
            _catalogs[key] = (mtime, cached[1])
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
        return catalog.choose(self.groups, options, note=self.choice_note)

    def choice_note(self, kind: str, item: str) -> str | None:
        """Why an allowed image or size (``kind``) would still be refused here, or None:
        refusals mark those in the lists of allowed values. Nothing by default."""
        return None

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
