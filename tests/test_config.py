"""Settings: defaults, validation, and the generated secret key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetprompt.config import ConfigError, load_settings


def test_defaults_are_the_embedded_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for variable in ("FLEETPROMPT_DATABASE_URL", "FLEETPROMPT_DATA_DIR", "FLEETPROMPT_QUEUE", "FLEETPROMPT_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    settings = load_settings()
    assert settings.data_dir == Path("var") and settings.queue == "auto" and not settings.is_postgres
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'var' / 'fleetprompt.db'}"
    monkeypatch.setenv("FLEETPROMPT_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("FLEETPROMPT_PLUGINS", "a.b, c")
    settings = load_settings()
    assert settings.effective_database_url == "postgresql+psycopg://u@h/db" and settings.is_postgres
    assert settings.plugins == ["a.b", "c"]


def test_secret_key_is_generated_once_and_kept_private(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var")
    key = settings.resolved_secret_key()
    assert len(key) >= 48 and key == settings.resolved_secret_key()
    assert oct((tmp_path / "var" / "secret_key").stat().st_mode)[-3:] == "600"
    assert key not in repr(settings)
    given = load_settings(data_dir=tmp_path / "other", secret_key="s" * 40)
    assert given.resolved_secret_key() == "s" * 40 and "s" * 40 not in repr(given)
    assert not (tmp_path / "other" / "secret_key").exists()


def test_the_first_start_generates_the_secret_key(tmp_path: Path) -> None:
    from conftest import make_settings

    from fleetprompt.platform import Platform

    platform = Platform.build(make_settings(f"sqlite:///{tmp_path / 'var' / 'fp.db'}", tmp_path / "var"))
    platform.close()
    key_file = tmp_path / "var" / "secret_key"
    assert key_file.exists() and len(key_file.read_text()) >= 48
    assert [p.name for p in (tmp_path / "var").iterdir() if p.name.startswith(".secret_key")] == []


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETPROMPT_QUEUE", "kafka")
    monkeypatch.setenv("FLEETPROMPT_SWEEP_INTERVAL", "soon")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "FLEETPROMPT_QUEUE" in str(info.value) and "FLEETPROMPT_SWEEP_INTERVAL" in str(info.value)
