"""The operator's JupyterLab defaults: what each choice sets, where the wheel puts one."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from studiohub import labdefaults

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = "labconfig/default_setting_overrides.json"


def settings(jupyter_news: bool) -> dict[str, object]:
    path = labdefaults.config_dir(jupyter_news) / OVERRIDES
    return dict(json.loads(path.read_text())[labdefaults.NOTIFICATION_PLUGIN])


def test_each_choice_decides_news_and_updates_so_nobody_is_asked() -> None:
    # JupyterLab asks its question only while fetchNews is "none".
    assert settings(False) == {"checkForUpdates": False, "fetchNews": "false"}
    assert settings(True) == {"checkForUpdates": True, "fetchNews": "true"}


def test_the_wheel_installs_news_off_where_jupyterlab_reads_default_overrides() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    # The file's place in the source tree (hub_config/studiohub/…), installed or editable.
    package = Path(labdefaults.__file__).parents[1]
    source = Path("hub_config") / (labdefaults.config_dir(False) / OVERRIDES).relative_to(
        package.parent)
    assert (ROOT / source).is_file(), source
    target = shared[str(source)]
    assert target.startswith("etc/jupyter/labconfig/default_setting_overrides.d/")
    assert target.endswith(".json")
