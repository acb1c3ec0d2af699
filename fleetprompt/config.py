"""Settings from FLEETPROMPT_* environment variables, validated once at start-up."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "FLEETPROMPT_"


class ConfigError(Exception):
    """A setting is invalid; the message names the environment variable."""


class Settings(BaseSettings):
    """Everything FleetPrompt reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    data_dir: Path = Path("./var")
    database_url: str | None = None
    queue: Literal["auto", "memory"] = "auto"
    secret_key: SecretStr | None = None
    # The chat's model: any pydantic-ai model name ("openai:gpt-5-mini", "anthropic:claude-sonnet-4-5", ...).
    # With OPENAI_BASE_URL, the name is sent as is to that OpenAI-compatible service (OpenRouter, vLLM, ...).
    model: str | None = None
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FLEETPROMPT_OPENAI_API_KEY", "OPENROUTER_API_KEY", "openai_api_key"),
    )
    # PostgreSQL connections each process keeps open (more are opened under bursts, then closed): size it to the
    # requests a server handles at once, since opening a connection costs more than most queries.
    db_pool_size: int = Field(default=20, ge=1, le=500)
    # Runner tuning: a lease must outlive the slowest handler; the sweeper reclaims expired ones.
    lease_seconds: float = Field(default=300.0, gt=0)
    sweep_interval: float = Field(default=5.0, gt=0)
    requeue_after: float = Field(default=30.0, ge=0)
    retry_base_seconds: float = Field(default=2.0, gt=0)
    retry_max_seconds: float = Field(default=600.0, gt=0)
    # Extra modules imported by every process at start-up (they register directive types or fanout handlers).
    plugins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where people reach the web UI (links in receipts, e.g. to approve a directive).
    public_url: str = "http://127.0.0.1:8000"
    # Host headers /mcp accepts (DNS-rebinding protection); add the proxy's name when served behind one.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        if not value.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("plugins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("openai_base_url", mode="before")
    @classmethod
    def _blank_url_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("public_url", "openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("model")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    @field_validator("allowed_hosts")
    @classmethod
    def _some_hosts(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one host (for example fleet.example.com or 127.0.0.1:*)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under DATA_DIR."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'fleetprompt.db').resolve()}"

    @property
    def is_postgres(self) -> bool:
        return self.effective_database_url.startswith("postgresql")

    @property
    def tenants_dir(self) -> Path:
        return self.data_dir / "tenants"

    def resolved_secret_key(self) -> str:
        """The configured key, or one generated into DATA_DIR on first use (never logged)."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Write a private temporary file, then link it into place: concurrent first starts agree on one
            # key, and nobody ever reads a half-written file.
            fd, temporary = tempfile.mkstemp(dir=self.data_dir, prefix=".secret_key.")
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, path)
            finally:
                os.unlink(temporary)
        return path.read_text().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the environment; turn validation errors into one message per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
