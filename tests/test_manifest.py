"""manifest.yml: valid for Slack, in step with the code, and every scope justified in the docs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.slack.app import SLASH_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "manifest.yml"
OPERATIONS = ROOT / "docs" / "operations.md"
# The public manifest schema (slackapi/manifest-schema, MIT), copied into tests/fixtures so a
# fresh clone needs nothing beside it; TUGBOAT_MANIFEST_SCHEMA points at another copy.
SCHEMA = Path(
    os.environ.get("TUGBOAT_MANIFEST_SCHEMA", ROOT / "tests" / "fixtures" / "manifest.schema.1.0.0.json")
)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def declared_commands(manifest: dict[str, Any]) -> list[str]:
    return [c["command"] for c in manifest["features"]["slash_commands"]]


def test_manifest_matches_slack_schema(manifest: dict[str, Any]) -> None:
    assert SCHEMA.is_file(), f"manifest schema not found at {SCHEMA} (set TUGBOAT_MANIFEST_SCHEMA)"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors
    )


def test_every_registered_command_is_declared_and_back(manifest: dict[str, Any]) -> None:
    declared = declared_commands(manifest)
    assert len(declared) == len(set(declared)), f"declared twice: {declared}"
    assert set(SLASH_COMMANDS) - set(declared) == set(), "registered but not in manifest.yml"
    assert set(declared) - set(SLASH_COMMANDS) == set(), "in manifest.yml but not registered"


def test_status_is_never_declared(manifest: dict[str, Any]) -> None:
    """`/status` is a Slack built-in: Slack rejects a manifest that declares it."""
    assert "/status" not in declared_commands(manifest)
    assert "/status" not in SLASH_COMMANDS


def test_every_command_says_what_it_does_and_how(manifest: dict[str, Any]) -> None:
    for command in manifest["features"]["slash_commands"]:
        assert command.get("description"), command
        assert command.get("usage_hint"), command
        assert "url" not in command, f"{command['command']}: no url in Socket Mode"


def test_socket_mode_interactivity_home_and_events(manifest: dict[str, Any]) -> None:
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert "request_url" not in settings["interactivity"]
    events = settings["event_subscriptions"]
    assert "request_url" not in events
    assert set(events["bot_events"]) == {"app_mention", "app_home_opened"}
    home = manifest["features"]["app_home"]
    assert home["home_tab_enabled"] is True
    assert home["messages_tab_enabled"] is False


def test_bot_scopes_are_the_ones_the_code_needs(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]
    assert set(scopes) == {"bot"}, "no user scopes: Tugboat acts only as its bot user"
    assert set(scopes["bot"]) == {
        "commands",
        "chat:write",
        "chat:write.public",
        "app_mentions:read",
        "usergroups:read",
    }


def test_every_bot_scope_is_justified_in_operations_doc(manifest: dict[str, Any]) -> None:
    """docs/operations.md has a table row `| `scope` | why |` for each scope."""
    text = OPERATIONS.read_text(encoding="utf-8")
    for scope in manifest["oauth_config"]["scopes"]["bot"]:
        row = re.search(rf"^\|\s*`{re.escape(scope)}`\s*\|\s*([^|]+?)\s*\|", text, re.MULTILINE)
        assert row is not None, f"docs/operations.md has no table row for scope `{scope}`"
        assert len(row.group(1)) >= 20, f"scope `{scope}` needs a real justification"
