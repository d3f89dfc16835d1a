"""A missing or malformed setting names the variable; secrets never show in a repr."""

import pytest

from bot.settings import SettingsError, load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_API_URL", "PORT", "METRICS_PORT", "TUGBOAT_STATE", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.port == 8080 and settings.tugboat_state == "sqlite:///tugboat.db"
    assert settings.metrics_port == 9090, "/metrics has its own port by default"
    assert settings.log_format == "json"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SLACK_BOT_TOKEN", "xapp-wrong-kind", "SLACK_BOT_TOKEN: expected a bot token"),
        ("SLACK_APP_TOKEN", "xoxb-wrong-kind", "SLACK_APP_TOKEN: expected an app-level token"),
        ("PORT", "eighty", "PORT:"),
        ("METRICS_PORT", "8080", "METRICS_PORT: must differ from PORT (8080)"),
        (
            "TUGBOAT_STATE",
            "postgres://db",
            "TUGBOAT_STATE: expected sqlite:///PATH or dynamodb://TABLE",
        ),
        ("LOG_FORMAT", "xml", "LOG_FORMAT:"),
    ],
)
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_missing_tokens_are_named_and_secrets_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-secret-value")
    settings = load_settings()
    with pytest.raises(SettingsError, match="SLACK_BOT_TOKEN is not set"):
        settings.require_slack()
    assert "secret-value" not in repr(settings)
