"""Process settings, read from the environment with pydantic-settings.

Tokens are SecretStr so that no repr, log line or traceback ever shows them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOKEN_KINDS = {
    "slack_bot_token": ("a bot token", "xoxb-"),
    "slack_app_token": ("an app-level token", "xapp-"),
}
"""What each Slack token is, and how Slack's tokens of that kind begin."""


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """Everything `tugboat serve` reads from its environment (see SPEC: Settings)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    github_webhook_secret: SecretStr | None = None
    github_token: SecretStr | None = None
    """GitHub Deployments, commits on cards and the CI gate; unset: none of that."""
    github_api_url: str = "https://api.github.com/"
    """GitHub's REST API base; GitHub Enterprise Server's ends in /api/v3/ (kept, never replaced)."""
    tugboat_config: str = "tugboat.yml"
    """A file, `ssm:///PARAMETER` or `s3://BUCKET/KEY` (bot/catalog_source.py)."""
    tugboat_state: str = "sqlite:///tugboat.db"
    port: int = Field(default=8080, ge=0, le=65535)
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    tugboat_lease_seconds: float = Field(default=60.0, ge=5.0, le=3600.0)
    tugboat_replica_id: str | None = None
    tugboat_events_queue: str | None = None
    """SQS queue URL an EventBridge rule fills with ECS events; unset: watch by polling only."""
    tugboat_ecs_calls_per_second: float = Field(default=0.0, ge=0.0, le=100.0)
    """Deprecated: one ceiling over every ECS call, beside the per-bucket budgets (0: none)."""
    tugboat_aws_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """The share of each of ECS's per-account token buckets Tugboat may spend."""

    @field_validator("slack_bot_token", "slack_app_token")
    @classmethod
    def _token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        kind, prefix = TOKEN_KINDS[str(info.field_name)]
        if value is not None and not value.get_secret_value().startswith(prefix):
            raise ValueError(f"expected {kind} starting with {prefix}")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("github_api_url")
    @classmethod
    def _github_api_url(cls, value: str) -> str:
        """A trailing slash, so paths join onto it (GHES: https://HOST/api/v3/)."""
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                "expected an http(s) URL such as https://api.github.com/ or https://HOST/api/v3/"
            )
        return value if value.endswith("/") else value + "/"

    @field_validator("github_token")
    @classmethod
    def _github_token(cls, value: SecretStr | None) -> SecretStr | None:
        """Empty means unset, as for a variable left blank in a task definition."""
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("tugboat_events_queue")
    @classmethod
    def _events_queue(cls, value: str | None) -> str | None:
        """Empty means unset, as for a variable left blank in a task definition."""
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("expected an SQS queue URL, https://sqs.REGION.amazonaws.com/ACCOUNT/NAME")
        return value or None

    @field_validator("tugboat_state")
    @classmethod
    def _state(cls, value: str) -> str:
        for scheme in ("sqlite:///", "dynamodb://"):
            if value.startswith(scheme) and len(value) > len(scheme):
                return value
        raise ValueError("expected sqlite:///PATH or dynamodb://TABLE")

    @field_validator("metrics_port")
    @classmethod
    def _metrics_port(cls, value: int, info: ValidationInfo) -> int:
        """/metrics must not share PORT's listener, which may be published (0 picks a free one)."""
        if value != 0 and value == info.data.get("port"):
            raise ValueError(f"must differ from PORT ({value}): /metrics is served apart from the webhook")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def require_slack(self) -> tuple[str, str]:
        """Both Slack tokens, or SettingsError naming the one that is missing."""
        if self.slack_bot_token is None:
            raise SettingsError("SLACK_BOT_TOKEN is not set (expected a bot token xoxb-…)")
        if self.slack_app_token is None:
            raise SettingsError("SLACK_APP_TOKEN is not set (expected an app token xapp-…)")
        return self.slack_bot_token.get_secret_value(), self.slack_app_token.get_secret_value()


def load_settings() -> Settings:
    """Settings from the environment, or SettingsError with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{name}: {msg}") from None
