"""What `studiohub up` prints: the generated password once, then only where it is kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from studiohub.installer import banner, ensure_password
from studiohub.settings import load_settings


def test_the_generated_password_is_printed_once(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    settings = load_settings(config, environ={})
    first = ensure_password(settings)
    assert first and len(first) >= 16
    kept = tmp_path / "state" / "password"
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first in banner(settings, first)
    again = ensure_password(settings)  # the next start: the same password, not shown
    assert again is None and kept.read_text().strip() == first
    text = banner(settings, again)
    assert first not in text and f"kept in {tmp_path / 'state'}/password" in text


def test_an_operator_password_is_never_printed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nauth:\n  password: s3cret-enough\n")
    settings = load_settings(config, environ={})
    assert ensure_password(settings) is None
    assert "s3cret-enough" not in banner(settings, None)
    assert not (tmp_path / "state" / "password").exists()
