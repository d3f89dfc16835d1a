"""GitHub webhook payloads for tests: real examples plus builders that adapt them.

The three payloads are GitHub's own examples as published by octokit/webhooks (MIT), copied
verbatim into tests/fixtures/github so tests exercise the real shape; builders change only
what a test is about. Below them, what the webhook tests share: a signed sender, and what a
user would look at afterwards (the staging thread about a commit, the image staging runs).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.github.webhook import signature
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from tests.slackview import parents, service

if TYPE_CHECKING:
    from bot.runtime import Tugboat

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
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A push shaped like push.new-branch.json, to `ref` (default refs/heads/BRANCH) of `repo`.

    `timestamp` replaces the head commit's (ISO 8601; the fixture's is 2019-05-15T15:19:25Z).
    """
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
        if timestamp is not None:
            commit["timestamp"] = timestamp
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
    timestamp: str | None = None,
) -> dict[str, Any]:
    """A workflow_run event shaped like workflow_run.completed.json, for `sha` on `branch`.

    Run by a push to `repo` itself; `timestamp` replaces the head commit's.
    """
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
    if timestamp is not None:
        run["head_commit"]["timestamp"] = timestamp
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


# -- what the webhook tests share ----------------------------------------------------------------

SECRET = "It's a Secret to Everybody, in tests"
STAGING = "C0STAGING"

Sender = Callable[..., Awaitable[tuple[int, dict[str, Any]]]]


def new_sha() -> str:
    """A commit nobody has built an image for yet."""
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


def sender(http: aiohttp.ClientSession, tugboat: Tugboat) -> Sender:
    """POSTs to the bot's webhook as GitHub would; returns (status, JSON answer)."""

    async def send(
        event: str,
        payload: Any,
        *,
        delivery: str | None = None,
        secret: str = SECRET,
        headers: dict[str, str] | None = None,
        body: Any = None,
        url: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        raw = body if body is not None else json.dumps(payload).encode()
        signed = signed_headers(event, raw if isinstance(raw, bytes) else b"", secret, delivery)
        target = url or f"http://127.0.0.1:{tugboat.port}/github/webhook"
        async with http.post(target, data=raw, headers=signed | (headers or {})) as answer:
            text = await answer.text()
        try:
            return answer.status, json.loads(text)
        except ValueError:  # not Tugboat's answer: aiohttp's own page for an uncaught error
            return answer.status, {"not_json": text}

    return send


def thread_about(fake: FakeSlack, sha: str) -> Message | None:
    """The auto-deploy thread in staging whose subject is `sha`."""
    return next((m for m in parents(fake, STAGING) if sha in m.flat), None)


async def final_thread_about(fake: FakeSlack, sha: str, timeout: float = 30) -> Message:
    def check() -> Message | None:
        found = thread_about(fake, sha)
        return (
            found if found is not None and ("*Succeeded*" in found.flat or "*Failed*" in found.flat) else None
        )

    return await wait_for(check, timeout=timeout, what=f"a final thread about {sha[:7]}")


def running_image(world: SandboxWorld) -> str:
    """The web container's image in the task definition staging runs now."""
    arn = service(world, "staging", "api")["taskDefinition"]
    definition = world.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return str(next(c["image"] for c in definition["containerDefinitions"] if c["name"] == "web"))
