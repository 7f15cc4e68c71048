"""Which installation a ``studiohub`` command acts on."""

from __future__ import annotations

from pathlib import Path

import pytest

from studiohub import paths


def make_install(prefix: Path) -> Path:
    (prefix / "hub").mkdir(parents=True)
    (prefix / "hub" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (prefix / "etc").mkdir()
    return prefix / "hub"


def test_a_command_of_a_second_installation_acts_on_it(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_install(tmp_path / "studiohub-tour")
    monkeypatch.delenv("STUDIOHUB_PREFIX", raising=False)
    monkeypatch.setattr(paths.sys, "prefix", str(env))
    assert paths.default_prefix() == tmp_path / "studiohub-tour"
    monkeypatch.setenv("STUDIOHUB_PREFIX", "/elsewhere")  # the variable still wins
    assert paths.default_prefix() == Path("/elsewhere")


def test_an_environment_that_is_no_installations_hub_keeps_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # no etc/ nor state/
    for env in (tmp_path / "hub", tmp_path / "venv"):
        assert paths.installation_of(env) is None
    monkeypatch.delenv("STUDIOHUB_PREFIX", raising=False)
    monkeypatch.setattr(paths.sys, "prefix", str(tmp_path / "hub"))
    monkeypatch.setattr(paths, "system_mode", lambda: True)
    assert paths.default_prefix() == Path("/opt/studiohub")


def test_another_accounts_installation_is_not_this_accounts_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user running root's ``/opt/studiohub/hub/bin/studiohub`` gets their personal hub."""
    env = make_install(tmp_path / "system")
    monkeypatch.setattr(paths.os, "geteuid", lambda: env.stat().st_uid + 1)
    assert paths.installation_of(env) is None
