"""JupyterHub configuration for StudioHub: wiring only.

Settings (etc/config.yaml) and the catalog are applied through
:mod:`studiohub.configurer`; then every ``etc/jupyterhub_config.d/*.py`` is loaded
last, the documented escape hatch for anything StudioHub has no setting for.
"""

from studiohub import configurer
from studiohub.catalog import load_catalog
from studiohub.paths import paths
from studiohub.settings import load_settings

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (provided by traitlets)

settings = load_settings()
configurer.apply(c, settings, load_catalog(settings["catalog_path"]))

for extra in sorted((paths().etc / "jupyterhub_config.d").glob("*.py")):
    load_subconfig(str(extra))  # type: ignore[name-defined]  # noqa: F821

# An operator's file may have handed groups to the authenticator (manage_groups).
configurer.defer_groups_to_authenticator(c)
