"""Settings become the right JupyterHub traits, on a bare Config with no hub running."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config

from studiohub import configurer
from studiohub.catalog import load_catalog
from studiohub.settings import SettingsError, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> dict:
    config = tmp_path / "config.yaml"
    config.write_text(f"port: 9000\nstate_dir: {tmp_path / 'state'}\n"
                      "auth:\n  type: shared-password\n  admin_users: [ada]\n"
                      "culling:\n  idle_server_timeout: 600\n")
    return load_settings(config, environ={})


def test_settings_merge_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("port: 9000\nculling:\n  idle_kernel_timeout: 60\n")
    s = load_settings(config, environ={"STUDIOHUB_PORT": "9100",
                                       "STUDIOHUB_DB_URL": "postgresql://u@h/db"})
    assert s["port"] == 9100
    assert s["db_url"] == "postgresql://u@h/db"
    assert s["culling"]["idle_kernel_timeout"] == 60
    assert s["culling"]["idle_server_timeout"] == 3600


def test_default_database_is_sqlite_in_state_dir(settings: dict) -> None:
    assert settings["db_url"] == f"sqlite:///{settings['state_dir']}/jupyterhub.sqlite"


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("prot: 9000\n")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) prot; known settings: auth"):
        load_settings(config, environ={})


BAD_SETTINGS = [
    ("culling:\n  idle_servr_timeout: 60\n",
     r"unknown setting\(s\) culling.idle_servr_timeout; known settings under culling: "
     r"cull_busy_kernels"),
    ("port: abc\n", r"port: 'abc' is not a whole number"),
    ("auth: null\n", r"auth: must be a mapping of admin_users, config, password, type"),
    ("culling:\n  enabled: 'no'\n", r"culling.enabled: 'no' is not true or false"),
    ("auth:\n  admin_users: ada\n", r"auth.admin_users: 'ada' is not a list"),
    ("auth:\n  type: shared-password\n  password: short\n",
     r"auth.password: at least 8 characters"),
    ("auth:\n  config: [x]\n", r"auth.config: must be a mapping"),
    ("auth:\n  config:\n    NativeAuthenticator: true\n",
     r"auth.config.NativeAuthenticator: must be a mapping of the class's settings"),
]


def test_empty_free_form_sections_mean_their_defaults(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("sharing:\n  # max_notebook_mb: 50\nauth:\n  config:\n")
    settings = load_settings(config, environ={})
    assert settings["sharing"] == {} and settings["auth"]["config"] == {}


@pytest.mark.parametrize(("text", "message"), BAD_SETTINGS)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=f"^{config}: {message}"):
        load_settings(config, environ={})


def test_apply_sets_hub_proxy_auth_spawner(settings: dict) -> None:
    c = Config()
    configurer.apply(c, settings, load_catalog())
    assert c.JupyterHub.port == 9000
    assert c.JupyterHub.hub_port == 9081
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:9001"
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.spawner_class == "studiohub.spawners.local.StudioSpawner"
    assert c.JupyterHub.authenticator_class == "shared-password"
    password = (Path(settings["state_dir"]) / "password").read_text().strip()
    assert c.SharedPasswordAuthenticator.user_password == password
    assert len(c.SharedPasswordAuthenticator.admin_password) >= 32
    assert (Path(settings["state_dir"]) / "password").stat().st_mode & 0o077 == 0
    assert c.Authenticator.admin_users == {"ada"}
    # A stopping server gets 10 s to shut its kernels down, not LocalProcessSpawner's 30.
    assert c.Spawner.term_timeout == 10


def test_apply_is_idempotent(settings: dict) -> None:
    c = Config()
    configurer.apply(c, settings, load_catalog())
    first = dict(c)
    configurer.apply(c, settings, load_catalog())
    assert dict(c) == first
    assert [s["name"] for s in c.JupyterHub.services].count("idle-culler") == 1


def test_domains_become_groups(settings: dict) -> None:
    c = Config()
    configurer.update_groups(c, load_catalog())
    assert c.JupyterHub.load_groups == {"everyone": {"users": []},
                                        "ml-research": {"users": []}}


def test_groups_managed_by_the_authenticator_are_not_loaded(settings: dict) -> None:
    """JupyterHub refuses to start with load_groups when the authenticator manages groups."""
    settings["auth"] = {**settings["auth"], "type": "generic-oauth",
                        "config": {"GenericOAuthenticator": {"manage_groups": True}}}
    c = Config()
    configurer.apply(c, settings, load_catalog())
    assert "load_groups" not in c.JupyterHub
    later = Config()  # turned on by a file of jupyterhub_config.d, after apply()
    configurer.apply(later, {**settings, "auth": {**settings["auth"], "config": {}}},
                     load_catalog())
    assert "load_groups" in later.JupyterHub
    later.Authenticator.manage_groups = True
    configurer.defer_groups_to_authenticator(later)
    assert "load_groups" not in later.JupyterHub


def test_culler_service_has_narrow_role(settings: dict) -> None:
    c = Config()
    configurer.update_culler(c, settings)
    (service,) = c.JupyterHub.services
    assert "--timeout=600" in service["command"]
    (role,) = c.JupyterHub.load_roles
    assert role["scopes"] == ["list:users", "read:users:activity", "read:servers",
                              "delete:servers"]


def test_kernel_culling_and_server_logs(settings: dict) -> None:
    c = Config()
    configurer.update_spawner(c, settings)
    assert c.StudioSpawner.kernel_cull_idle_timeout == 1200
    assert c.StudioSpawner.kernel_cull_interval == 120
    assert c.StudioSpawner.server_log_dir == f"{settings['state_dir']}/servers"


def test_culling_can_be_disabled(settings: dict) -> None:
    settings["culling"] = {**settings["culling"], "enabled": False}
    c = Config()
    configurer.update_culler(c, settings)
    configurer.update_spawner(c, settings)
    assert "services" not in c.JupyterHub
    assert c.StudioSpawner.kernel_cull_idle_timeout == 0


def test_other_authenticator_with_its_config(settings: dict) -> None:
    settings["auth"] = {**settings["auth"], "type": "native",
                        "config": {"NativeAuthenticator": {"open_signup": False}}}
    c = Config()
    configurer.update_auth(c, settings)
    assert c.JupyterHub.authenticator_class == "nativeauthenticator.NativeAuthenticator"
    assert c.NativeAuthenticator.open_signup is False


@pytest.mark.parametrize(("system", "kind"), [(True, "firstuse"), (False, "shared-password")])
def test_default_login_is_per_user_passwords_on_a_system_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, system: bool, kind: str) -> None:
    """Issue 12.11: as root, one shared password would let anyone log in as anyone."""
    monkeypatch.setattr("studiohub.settings.system_mode", lambda: system)
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    assert load_settings(config, environ={})["auth"]["type"] == kind


def test_a_hub_that_had_the_shared_password_keeps_it_until_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Switched silently, whoever logged in first as an existing user would set their
    password: an upgraded hub keeps the shared password until auth.type says otherwise."""
    monkeypatch.setattr("studiohub.settings.system_mode", lambda: True)
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "password").write_text("generated-by-an-older-hub\n")
    assert load_settings(config, environ={})["auth"]["type"] == "shared-password"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  type: firstuse\n")
    assert load_settings(config, environ={})["auth"]["type"] == "firstuse"


def test_first_use_passwords_are_kept_in_state(settings: dict,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("studiohub.configurer.system_mode", lambda: True)
    settings["auth"] = {**settings["auth"], "type": "firstuse"}
    c = Config()
    configurer.update_auth(c, settings)
    assert c.JupyterHub.authenticator_class == "firstuseauthenticator.FirstUseAuthenticator"
    assert c.FirstUseAuthenticator.dbm_path == f"{settings['state_dir']}/passwords.dbm"
    assert c.FirstUseAuthenticator.min_password_length == 8
    assert c.Authenticator.allow_all is True
    assert "user_password" not in c.SharedPasswordAuthenticator


@pytest.mark.parametrize("kind", ["firstuse", "native", "generic-oauth", "github", "ldap",
                                  "shared-password", "dummy", "my_auth.TeamAuthenticator"])
def test_auth_types_that_are_accepted(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"auth:\n  type: {kind}\n")
    assert load_settings(config, environ={})["auth"]["type"] == kind


def test_an_unknown_auth_type_names_the_choices(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("auth:\n  type: frstuse\n")
    with pytest.raises(SettingsError, match=r"auth.type: unknown auth.type 'frstuse': use one "
                       r"of firstuse, native, generic-oauth, github, ldap, shared-password"):
        load_settings(config, environ={})


def test_managed_services_start_through_the_pid_recording_wrapper(settings: dict) -> None:
    """Issue 12.9: each service dies with its hub and leaves a record for the next `up`."""
    c = Config()
    configurer.apply(c, settings, load_catalog())
    configurer.apply(c, settings, load_catalog())  # wrapped once, however often applied
    run = f"{settings['state_dir']}/run"
    # studiohub-cli is a token only (studiohub reload), no process.
    assert [s["name"] for s in c.JupyterHub.services if "command" not in s] == ["studiohub-cli"]
    for service in (s for s in c.JupyterHub.services if "command" in s):
        command = service["command"]
        assert command[1:6] == ["-m", "studiohub.servicewrap", run, service["name"], "--"]
        assert command.count("studiohub.servicewrap") == 1
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert culler["command"][7:9] == ["-m", "jupyterhub_idle_culler"]
    assert c.JupyterHub.proxy_class == "studiohub.hubapp.StudioProxy"
    # A service slow to answer on a loaded machine does not make the hub give up on it
    # (and exit) after JupyterHub's 30 s.
    assert {s["name"]: s["timeout"] for s in c.JupyterHub.services if "url" in s} == {
        "sharing": configurer.SERVICE_START_TIMEOUT, "jobs": configurer.SERVICE_START_TIMEOUT,
        "models": configurer.SERVICE_START_TIMEOUT}
    assert configurer.SERVICE_START_TIMEOUT >= 120


def test_reload_is_mounted_with_a_service_token_of_narrow_scopes(settings: dict) -> None:
    """Issue 14.3: `studiohub reload` calls the hub with state/cli-token (0600)."""
    c = Config()
    configurer.apply(c, settings, load_catalog())
    configurer.apply(c, settings, load_catalog())  # once, however often applied
    token_file = Path(settings["state_dir"]) / "cli-token"
    assert token_file.stat().st_mode & 0o077 == 0
    cli = [s for s in c.JupyterHub.services if s["name"] == "studiohub-cli"]
    assert cli == [{"name": "studiohub-cli", "api_token": token_file.read_text().strip(),
                    "display": False}]
    role = [r for r in c.JupyterHub.load_roles if r["name"] == "studiohub-cli"]
    assert role[0]["scopes"] == ["admin:users", "admin:groups", "list:users", "list:groups"]
    assert role[0]["services"] == ["studiohub-cli"] and len(role) == 1
    paths = [h[0] for h in c.JupyterHub.extra_handlers]
    assert paths.count("/api/studiohub/reload") == 1
