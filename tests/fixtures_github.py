"""GitHub webhook payloads for tests: real examples plus builders that adapt them.

The three payloads are GitHub's own examples as published by octokit/webhooks (MIT), copied
verbatim into tests/fixtures/github so tests exercise the real shape; builders change only
what a test is about.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

from bot.github.webhook import signature

FIXTURES = Path(__file__).parent / "fixtures" / "github"


def _load(name: str) -> dict[str, Any]:
    payload = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert isinstance(payload, dict)
    return payload


PUSH_NEW_BRANCH = _load("push.new-branch.json")
WORKFLOW_RUN_COMPLETED = _load("workflow_run.completed.json")
PING = _load("ping.json")


def push_payload(
    sha: str,
    *,
    branch: str = "main",
    repo: str = "acme/api",
    pusher: str = "octocat",
    message: str = "Speed up the order page\n\nLonger explanation.",
    ref: str | None = None,
    deleted: bool = False,
) -> dict[str, Any]:
    """A push shaped like push.new-branch.json, to `ref` (default refs/heads/BRANCH) of `repo`."""
    payload = copy.deepcopy(PUSH_NEW_BRANCH)
    owner, name = repo.split("/")
    payload["ref"] = ref or f"refs/heads/{branch}"
    payload["after"] = "0" * 40 if deleted else sha
    payload["before"] = "1" * 40
    payload["created"], payload["deleted"] = False, deleted
    payload["compare"] = f"https://github.com/{repo}/compare/1111111...{sha[:12]}"
    payload["repository"].update(
        name=name, full_name=repo, html_url=f"https://github.com/{repo}", default_branch="main"
    )
    payload["repository"]["owner"].update(login=owner, name=owner)
    payload["pusher"] = {"name": pusher, "email": f"{pusher}@users.noreply.github.com"}
    payload["sender"]["login"] = pusher
    if deleted:
        payload["head_commit"], payload["commits"] = None, []
    else:
        commit = payload["head_commit"]
        commit.update(id=sha, message=message, url=f"https://github.com/{repo}/commit/{sha}")
        payload["commits"] = [copy.deepcopy(commit)]
    return payload


def workflow_run_payload(
    sha: str,
    *,
    workflow: str = "CI",
    conclusion: str = "success",
    action: str = "completed",
    branch: str = "main",
    repo: str = "acme/api",
    actor: str = "octocat",
    message: str = "Speed up the order page",
) -> dict[str, Any]:
    """A workflow_run event shaped like workflow_run.completed.json, for `sha` on `branch`."""
    payload = copy.deepcopy(WORKFLOW_RUN_COMPLETED)
    payload["action"] = action
    payload["workflow"]["name"] = workflow
    payload["repository"]["full_name"] = repo
    run = payload["workflow_run"]
    run.update(
        name=workflow,
        head_branch=branch,
        head_sha=sha,
        conclusion=conclusion if action == "completed" else None,
        status=action if action != "requested" else "queued",
        event="push",
    )
    run["head_commit"].update(id=sha, message=message)
    run["head_repository"]["full_name"] = repo
    run["repository"]["full_name"] = repo
    run["actor"]["login"] = actor
    run["triggering_actor"]["login"] = actor
    return payload


def signed_headers(event: str, body: bytes, secret: str, delivery: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery (a fresh delivery id unless one is given)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/044aadd",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182",
        "X-Hub-Signature-256": signature(secret.encode(), body),
    }
