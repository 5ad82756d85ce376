from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from cronicorn.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_embedded_development_on_3333() -> None:
    settings = load_settings()
    assert settings.embedded
    assert settings.port == 3333
    assert settings.is_dev
    assert settings.home == (Path.cwd() / ".cronicorn").resolve()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "not-a-number"),
        ("PORT", "70000"),
        ("LOG_LEVEL", "loud"),
        ("LOG_FORMAT", "xml"),
        ("DATABASE_URL", "mysql://x/y"),
        ("CRONICORN_ALLOW_NETWORKS", "10.0.0.0/8,banana"),
        ("DB_POOL_SIZE", "0"),
        ("QUOTA_MAX_ENDPOINTS", "-1"),
        ("QUOTA_RUNS_PER_MONTH", "lots"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in str(info.value)
    assert "\n" not in str(info.value)


def test_auth_secret_required_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONICORN_ENV", "production")
    with pytest.raises(ConfigError, match="AUTH_SECRET is required"):
        load_settings()
    monkeypatch.setenv("AUTH_SECRET", "x" * 40)
    assert not load_settings().is_dev


def test_short_auth_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_SECRET", "short")
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings()


def test_secrets_never_appear_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_SECRET", "s3cret-" * 6)
    monkeypatch.setenv("ADMIN_USER_PASSWORD", "hunter2-password")
    text = repr(load_settings())
    assert "s3cret-" not in text
    assert "hunter2" not in text


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "PORT=4444\nCRONICORN_ALLOW_NETWORKS=10.0.0.0/8, 192.168.1.0/24\n"
    )
    settings = load_settings(_env_file=".env")  # conftest turns .env off for every other test
    assert settings.port == 4444
    assert settings.allow_networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.0/24"),
    )


def test_dev_auth_secret_is_generated_once_and_persisted(tmp_path: Path) -> None:
    settings = load_settings(CRONICORN_HOME=str(tmp_path / "home"))
    first = settings.resolved_auth_secret()
    assert len(first) >= 32
    assert load_settings(CRONICORN_HOME=str(tmp_path / "home")).resolved_auth_secret() == first
    assert (tmp_path / "home" / "auth_secret").stat().st_mode & 0o077 == 0
