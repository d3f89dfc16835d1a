"""GitHub webhooks: verified, deduplicated pushes and workflow runs become auto-deploys.

The handler only checks and routes, then answers at once (GitHub wants a 2xx within 10 s);
the deploys themselves run in tracked tasks (see bot.github.autodeploy). Status codes follow the
SPEC: 202 acted on, 200 ignored (with a reason), 401 bad or missing signature, 400 malformed,
413 too large, 503 while shutting down so GitHub shows a delivery worth redelivering.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from bot.domain.catalog import Catalog
from bot.domain.records import Target
from bot.github.autodeploy import AutoDeployer, PushEvent
from bot.settings import Settings
from bot.state import StateStore

log = logging.getLogger(__name__)

WebhookHandler = Callable[[web.Request], Awaitable[web.Response]]

MAX_BODY_BYTES = 10 * 1024 * 1024
"""GitHub caps payloads at 25 MB but pushes are far smaller; same as client_max_size."""
SIGNATURE_HEADER = "X-Hub-Signature-256"
ZERO_SHA = "0" * 40
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
SKIP_MARKER = "[skip deploy]"


# -- signatures ------------------------------------------------------------------------------


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True only if `header` is GitHub's HMAC of the raw body; constant-time comparison."""
    if not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


# -- what an event means ---------------------------------------------------------------------


class Malformed(Exception):
    """The payload is JSON but not the shape GitHub sends; the message names what is off."""


@dataclass(frozen=True)
class Ignored:
    """An event Tugboat does not act on, and why (the 200 answer's reason)."""

    reason: str


@dataclass(frozen=True)
class Deploys:
    """An event that ships `push` to each of `targets`."""

    push: PushEvent
    targets: tuple[Target, ...] = field(default=())


def route(catalog: Catalog, event: str, payload: Any, delivery: str = "") -> Deploys | Ignored:
    """What an event asks for: deploys to some targets, or why nothing happens."""
    if not isinstance(payload, dict):
        raise Malformed("expected a JSON object")
    match event:
        case "ping":
            return Ignored("pong: " + str(payload.get("zen") or "hook is set up"))
        case "push":
            return _route_push(catalog, payload, delivery)
        case "workflow_run":
            return _route_workflow_run(catalog, payload, delivery)
        case "":
            raise Malformed("missing X-GitHub-Event header")
        case _:
            return Ignored(f"event `{event}` is not one Tugboat acts on (push, workflow_run)")


def _route_push(catalog: Catalog, payload: dict[str, Any], delivery: str) -> Deploys | Ignored:
    ref = _text(payload, "ref")
    repo = _text(payload, "repository", "full_name")
    after = _text(payload, "after", required=False)
    if payload.get("deleted") is True or after in ("", ZERO_SHA):
        return Ignored(f"{ref} was deleted; deletions never deploy")
    if ref.startswith("refs/tags/"):
        return Ignored(f"tag push ({ref}); only branch pushes deploy")
    if not ref.startswith("refs/heads/"):
        return Ignored(f"{ref} is not a branch")
    if not FULL_SHA.match(after):
        raise Malformed(f"`after` is not a commit sha: {after[:50]!r}")
    branch = ref.removeprefix("refs/heads/")
    head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else {}
    message = str((head or {}).get("message") or "")
    push = PushEvent(
        repo=repo,
        ref=ref,
        branch=branch,
        sha=after,
        pusher=_login(payload, ("pusher", "name"), ("sender", "login")),
        head_line=message.strip().split("\n", 1)[0].strip(),
        compare_url=_text(payload, "compare", required=False) or None,
        trigger="push",
        delivery=delivery,
    )
    targets = _targets(catalog, repo, branch, on="push")
    if not targets:
        if _targets(catalog, repo, branch, on="workflow_run"):
            return Ignored(f"{repo} {branch} deploys after its workflow succeeds, not on push")
        return Ignored(f"no environment auto-deploys pushes to {branch} of {repo}")
    if SKIP_MARKER in message:
        return Ignored(f"the head commit says {SKIP_MARKER}")
    return Deploys(push, targets)


def _route_workflow_run(catalog: Catalog, payload: dict[str, Any], delivery: str) -> Deploys | Ignored:
    run = payload.get("workflow_run")
    if not isinstance(run, dict):
        raise Malformed("missing `workflow_run`")
    repo = _text(payload, "repository", "full_name")
    name = str(run.get("name") or _text(payload, "workflow", "name", required=False))
    action = _text(payload, "action", required=False)
    if action != "completed":
        return Ignored(f"workflow {name} is {action or 'in an unknown state'}; only completed runs")
    conclusion = str(run.get("conclusion") or "none")
    if conclusion != "success":
        return Ignored(f"workflow {name} concluded {conclusion}; only successful runs deploy")
    head_repo = _text(run, "head_repository", "full_name", required=False)
    if head_repo and head_repo.lower() != repo.lower():
        return Ignored(f"workflow {name} ran for {head_repo}, a fork; forks never deploy")
    branch = _text(run, "head_branch")
    sha = _text(run, "head_sha")
    if not FULL_SHA.match(sha):
        raise Malformed(f"`workflow_run.head_sha` is not a commit sha: {sha[:50]!r}")
    head = run.get("head_commit") if isinstance(run.get("head_commit"), dict) else {}
    message = str((head or {}).get("message") or "")
    push = PushEvent(
        repo=repo,
        ref=f"refs/heads/{branch}",
        branch=branch,
        sha=sha,
        pusher=_login(run, ("triggering_actor", "login"), ("actor", "login"), fallback=payload),
        head_line=message.strip().split("\n", 1)[0].strip(),
        trigger=f"workflow {name}",
        run_url=_text(run, "html_url", required=False) or None,
        delivery=delivery,
    )
    targets = _targets(catalog, repo, branch, on="workflow_run", workflow=name)
    if not targets:
        return Ignored(f"no environment auto-deploys {branch} of {repo} after workflow {name}")
    if SKIP_MARKER in message:
        return Ignored(f"the head commit says {SKIP_MARKER}")
    return Deploys(push, targets)


def _targets(
    catalog: Catalog, repo: str, branch: str, *, on: str, workflow: str | None = None
) -> tuple[Target, ...]:
    """Environments of `repo` whose auto_deploy matches (any workflow when None).

    GitHub repository names are case-insensitive; branch and workflow names are not.
    """
    found = []
    for app_name, app in catalog.apps.items():
        if app.repository is None or app.repository.lower() != repo.lower():
            continue
        for env_name, env in app.environments.items():
            auto = env.auto_deploy
            if auto is None or auto.branch != branch or auto.on != on:
                continue
            if workflow is not None and auto.workflow != workflow:
                continue
            found.append(Target(app_name, env_name))
    return tuple(found)


def _text(obj: Any, *path: str, required: bool = True) -> str:
    """A string field at `path`, or Malformed (or "" when not required)."""
    value = obj
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if isinstance(value, str):
        return value
    if required:
        raise Malformed(f"missing string field `{'.'.join(path)}`")
    return ""


def _login(obj: Any, *paths: tuple[str, ...], fallback: Any = None) -> str:
    for path in paths:
        if found := _text(obj, *path, required=False):
            return found
    return _text(fallback or obj, "sender", "login", required=False) or "someone on GitHub"


# -- HTTP ------------------------------------------------------------------------------------


def _answer(code: int, **body: Any) -> web.Response:
    return web.json_response(body, status=code)


class GitHubWebhook:
    """POST /github/webhook: check, route, answer; the deploys run after the answer."""

    def __init__(
        self,
        secret: str | None,
        *,
        catalog: Catalog,
        deliveries: StateStore,
        deployer: AutoDeployer,
        accepting: Callable[[], bool],
    ) -> None:
        self._secret = secret.encode() if secret else None
        self._catalog = catalog
        self._deliveries = deliveries
        self._deployer = deployer
        self._accepting = accepting

    async def handle(self, request: web.Request) -> web.Response:
        event = request.headers.get("X-GitHub-Event", "")
        delivery = request.headers.get("X-GitHub-Delivery", "")
        response = await self._handle(request, event, delivery)
        log.info(
            "webhook",
            extra={"event": event, "delivery": delivery, "status": response.status},
        )
        return response

    async def _handle(self, request: web.Request, event: str, delivery: str) -> web.Response:
        if not self._accepting():
            return _answer(503, error="Tugboat is shutting down; redeliver in a minute")
        if self._secret is None:
            return _answer(401, error="GITHUB_WEBHOOK_SECRET is not set; webhooks are refused")
        body = await read_limited(request, MAX_BODY_BYTES)
        if body is None:
            return _answer(413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
        header = request.headers.get(SIGNATURE_HEADER)
        if not verify_signature(self._secret, body, header):
            log.warning(
                "webhook signature rejected",
                extra={
                    "delivery": delivery,
                    "event": event,
                    "remote": request.remote,
                    "problem": "missing" if not header else "mismatch",
                },
            )
            what = "missing" if not header else "does not match"
            return _answer(401, error=f"{SIGNATURE_HEADER} {what}")
        try:
            payload = json.loads(_json_bytes(body, request.content_type))
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _answer(400, error=f"body is not valid JSON: {exc}")
        try:
            decision = route(self._catalog, event, payload, delivery)
        except Malformed as exc:
            return _answer(400, error=f"malformed {event or 'webhook'} payload: {exc}")
        if isinstance(decision, Ignored):
            return _answer(200, status="ignored", reason=decision.reason)
        if not delivery:
            return _answer(400, error="missing X-GitHub-Delivery header")
        if not await self._deliveries.first_delivery(f"github:{delivery}"):
            return _answer(200, status="ignored", reason=f"duplicate delivery {delivery}")
        records = [self._deployer.submit(target, decision.push) for target in decision.targets]
        return _answer(
            202,
            status="accepted",
            sha=decision.push.sha,
            targets=[str(t) for t in decision.targets],
            operations=[r.id for r in records],
        )


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The raw body, or None when it is over `limit` (by Content-Length or bytes read).

    Reads the stream itself so an oversized body is a clean 413 from here, whatever
    client_max_size the app was built with.
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_bytes(body: bytes, content_type: str) -> bytes | str:
    """GitHub sends JSON, or a form with the JSON in `payload` when so configured."""
    if content_type == "application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8"), max_num_fields=10).get("payload")
        if not values:
            raise ValueError("form body without a `payload` field")
        return values[0]
    return body


def webhook_handler(
    settings: Settings,
    *,
    catalog: Catalog,
    deliveries: StateStore,
    deployer: AutoDeployer,
    accepting: Callable[[], bool],
) -> WebhookHandler:
    """The POST /github/webhook handler; refuses everything when no secret is configured."""
    secret = settings.github_webhook_secret
    value = secret.get_secret_value() if secret else None
    hook = GitHubWebhook(
        value, catalog=catalog, deliveries=deliveries, deployer=deployer, accepting=accepting
    )
    return hook.handle
