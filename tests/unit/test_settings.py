"""etc/config.yaml: every problem reported in one run, each with its key, never a traceback
(issue 14.8). The single-problem messages are in test_configurer.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from studiohub.settings import SettingsError, load_settings


def _problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(SettingsError) as raised:
        load_settings(config, environ=environ or {})
    lines = str(raised.value).splitlines()
    assert all(line.startswith(f"{config}: ") for line in lines), lines
    assert raised.value.problems == [line[len(f"{config}: "):] for line in lines]
    return raised.value.problems


def test_two_bad_keys_are_both_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "port: abc\nculling:\n  idle_servr_timeout: 60\n"
                                   "  enabled: 'no'\n")
    assert problems[0] == "port: 'abc' is not a whole number"
    assert problems[1].startswith("unknown setting(s) culling.idle_servr_timeout; ")
    assert problems[2] == "culling.enabled: 'no' is not true or false"
    assert len(problems) == 3


def test_problems_in_different_sections_and_the_environment_together(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "prot: 9000\nauth:\n  admin_users: [ada, 7]\n"
                                   "spawner: [start_timeout]\n",
                         environ={"STUDIOHUB_PORT": "eighty"})
    assert problems == [
        "STUDIOHUB_PORT (environment): 'eighty' is not a whole number",
        "unknown setting(s) prot; known settings: auth, base_url, catalog_path, culling, "
        "db_url, ip, jobs, lab, models, port, sharing, spawner, state_dir",
        "auth.admin_users[1]: 7 is not text",
        "spawner: must be a mapping of default_url, max_placed_kernels, start_timeout, "
        "stop_timeout, not a list",
    ]


def test_a_list_at_the_top_is_a_clear_message(tmp_path: Path) -> None:
    assert _problems(tmp_path, "- port: 9000\n- ip: 0.0.0.0\n") == [
        "must be a mapping of settings (`key: value` lines, e.g. `port: 8000`), not a list"]


def test_text_at_the_top_is_a_clear_message(tmp_path: Path) -> None:
    assert _problems(tmp_path, "port 9000\n")[0].endswith("not text")


def test_not_yaml_is_a_clear_message_with_its_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "port: 9000\nauth: {type: firstuse\n")
    assert len(problems) == 1
    assert problems[0].startswith("not valid YAML: line 3, column 1: "), problems


def test_a_file_that_is_not_utf8_is_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(b"port: \xff\xfe\n")
    with pytest.raises(SettingsError, match=r"config.yaml: cannot be read: .*utf-8"):
        load_settings(config, environ={})


def test_auth_problems_join_the_others(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "auth:\n  type: shared-password\n  password: short\n"
                                   "culling:\n  enabled: 1\n")
    assert [p.split(":")[0] for p in problems] == ["culling.enabled", "auth.password"]
    problems = _problems(tmp_path, "auth:\n  type: no-such-auth\nport: x\n")
    assert [p.split(":")[0] for p in problems] == ["port", "auth.type"]
