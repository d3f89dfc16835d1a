"""A token Slack rejects stops `tugboat serve` at start: exit 2, one line naming it, no traceback.

The bot runs as the operator runs it, `python -m bot` in a child process, against the fake Slack:
a token the fake does not know gets `invalid_auth`, one it was told to revoke gets that error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack
from tests.conftest import EXAMPLE

# Well-formed (they pass the settings' prefix checks) but unknown to the fake Slack.
WRONG_BOT_TOKEN = "xoxb-1111-2222-wrongbottoken"
WRONG_APP_TOKEN = "xapp-1-A0123-wrongapptoken"
EXIT_WITHIN_S = 30.0  # python start-up and imports on a busy machine; the check itself is one call each


def serve(fake: FakeSlack, tmp_path: Path, bot_token: str, app_token: str) -> tuple[int, list[str]]:
    """Run `python -m bot` until it exits (failing the test past EXIT_WITHIN_S); its code and lines."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(
        SLACK_BOT_TOKEN=bot_token,
        SLACK_APP_TOKEN=app_token,
        SLACK_API_URL=fake.api_url,
        TUGBOAT_CONFIG=str(EXAMPLE),
        TUGBOAT_STATE=f"sqlite:///{tmp_path / 'tugboat.db'}",
        PORT="0",
        METRICS_PORT="0",
        LOG_FORMAT="json",
        # Nothing here may reach a real AWS account: a closed port and dummy credentials.
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "bot"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        out, _ = child.communicate(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate(timeout=10)
        pytest.fail(f"tugboat serve still running after {EXIT_WITHIN_S:.0f} s:\n{out[-3000:]}")
    return child.returncode, out.splitlines()


@pytest.mark.parametrize(
    ("variable", "wrong_bot", "wrong_app", "revoked", "error"),
    [
        ("SLACK_BOT_TOKEN", True, False, None, "invalid_auth"),
        ("SLACK_APP_TOKEN", False, True, None, "invalid_auth"),
        ("SLACK_BOT_TOKEN", False, False, "bot", "token_revoked"),
        ("SLACK_APP_TOKEN", False, False, "app", "account_inactive"),
    ],
    ids=["bot-invalid_auth", "app-invalid_auth", "bot-token_revoked", "app-account_inactive"],
)
def test_a_rejected_token_stops_serve_with_one_line_naming_it(
    fake: FakeSlack,
    tmp_path: Path,
    variable: str,
    wrong_bot: bool,
    wrong_app: bool,
    revoked: str | None,
    error: str,
) -> None:
    bot_token = WRONG_BOT_TOKEN if wrong_bot else fake.bot_token
    app_token = WRONG_APP_TOKEN if wrong_app else fake.app_token
    if revoked is not None:
        fake.revoke_token(fake.bot_token if revoked == "bot" else fake.app_token, error)

    code, lines = serve(fake, tmp_path, bot_token, app_token)

    output = "\n".join(lines)
    assert code == 2, output
    naming = [line for line in lines if variable in line]
    assert len(naming) == 1, output
    (line,) = naming
    assert line.startswith("tugboat: "), line
    assert error in line, line
    assert "api.slack.com/apps" in line, f"the line says where to get a new token: {line}"
    assert "Traceback" not in output
    for token in (bot_token, app_token):
        assert token not in output
    assert fake.connection_count == 0, "no Socket Mode connection was left open"
