"""Secrets never reach a log line: not in the message, not in `extra=` fields, not in a traceback.

Logging is configured as `tugboat serve` configures it (`logs.configure`), and each test reads
what an operator would read: the lines on stdout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs

BOT_TOKEN = "xoxb-1234-5678-SECRETbot"
APP_TOKEN = "xapp-1-A0123-SECRETapp"
# A webhook secret an operator chose by hand: JSON escapes its quote and backslash.
WEBHOOK_SECRET = 'hand"made\\secret'
SECRETS = (BOT_TOKEN, APP_TOKEN, WEBHOOK_SECRET)


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(fmt: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """Log what a failing Slack call would: a secret in an `extra=` field and in a traceback."""
    logs.configure("INFO", fmt, SECRETS)
    log = logging.getLogger("bot.slack.api")
    log.info("calling slack", extra={"authorization": f"Bearer {BOT_TOKEN}", "secret": WEBHOOK_SECRET})
    try:
        try:
            raise ValueError(f"app token {APP_TOKEN} refused")
        except ValueError as cause:
            raise RuntimeError(f"request with token={BOT_TOKEN} failed") from cause
    except RuntimeError:
        log.exception("slack call crashed")
    lines = capsys.readouterr().out.splitlines()
    assert lines, "nothing was logged"
    return lines


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_no_secret_in_extra_fields_or_tracebacks(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = emit(fmt, capsys)
    out = "\n".join(lines)

    for secret in (*SECRETS, json.dumps(WEBHOOK_SECRET)[1:-1]):
        assert secret not in out, f"{secret!r} reached the {fmt} log"
    # What went wrong is still there for the operator, with the secret replaced.
    assert "RuntimeError: request with token=[redacted] failed" in out
    assert "ValueError: app token [redacted] refused" in out
    assert "Traceback (most recent call last)" in out


def test_json_lines_stay_json_with_the_fields_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    entries = [json.loads(line) for line in emit("json", capsys)]

    calling, crashed = entries
    assert calling["message"] == "calling slack"
    assert calling["authorization"] == "Bearer [redacted]"
    assert calling["secret"] == "[redacted]"
    assert crashed["message"] == "slack call crashed"
    assert "RuntimeError: request with token=[redacted] failed" in crashed["error"]
