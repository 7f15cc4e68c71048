"""Operator defaults for every user's JupyterLab, shipped as Jupyter config directories.

JupyterLab layers ``labconfig/default_setting_overrides.json`` of every directory on the
Jupyter config path over its plugins' defaults (a user's own settings still win). The
spawner puts one of these directories on the server's ``JUPYTER_CONFIG_PATH``:

- ``news-off`` (the default, ``lab.jupyter_news: false``): no news feed, no update check,
  and no "Would you like to get notified about official Jupyter news?" prompt in every
  new user's first Lab; on a managed hub the operator decides, not each user.
- ``news-on`` (``lab.jupyter_news: true``): both on for everyone, without the prompt.

They are package data, so they are where the server's Python finds ``studiohub``. The
wheel also installs ``news-off`` as ``etc/jupyter/labconfig/default_setting_overrides.d/
studiohub-jupyter-news.json`` (pyproject.toml): the default wherever it is installed, the
Kubernetes single-user image included; the spawner's directory comes first on the path.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
#: The plugin whose settings these are, and the settings (for tests and docs).
NOTIFICATION_PLUGIN = "@jupyterlab/apputils-extension:notification"


def config_dir(jupyter_news: bool) -> Path:
    """The Jupyter config directory of the operator's choice about Jupyter news."""
    return HERE / ("news-on" if jupyter_news else "news-off")
