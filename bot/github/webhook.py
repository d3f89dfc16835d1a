"""GitHub webhooks: verified, deduplicated pushes and workflow runs become auto-deploys.

The handler only checks and routes, then answers at once (GitHub wants a 2xx within 10 s);
the deploys themselves run in tracked tasks (see bot.github.autodeploy). Status codes follow the
SPEC: 202 acted on, 200 ignored (with a reason), 401 bad or missing signature, 400 malformed,
413 too large, 503 while shutting down or while too many bodies are being read, so GitHub
shows a delivery worth redelivering (and 408 for a body that does not arrive in time).

Only the signature is trusted, and `X-GitHub-Delivery` is not part of it: anyone holding an
old signed body can send it again under a new delivery id. So a delivery deploys only a commit
that is new to its target (deduplicated on repository, sha and target), and never one older
than what the target last auto-deployed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from bot.domain.catalog import Catalog
from bot.domain.records import OperationRecord, Target
from bot.github.autodeploy import AutoDeployer, PushEvent
from bot.settings import Settings
from bot.state import StateStore

log = logging.getLogger(__name__)

WebhookHandler = Callable[[web.Request], Awaitable[web.Response]]

MAX_BODY_BYTES = 10 * 1024 * 1024
"""GitHub caps payloads at 25 MB but pushes are far smaller; same as client_max_size."""
SIGNATURE_HEADER = "X-Hub-Signature-256"
SIGNATURE_FORMAT = re.compile(r"sha256=[0-9a-f]{64}")
ZERO_SHA = "0" * 40
FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
SKIP_MARKER = "[skip deploy]"

MAX_BODIES = 8
"""Bodies read at once; each may hold up to MAX_BODY_BYTES until its signature is checked."""
SLOT_WAIT_S = 2.0
"""How long a delivery waits for a free slot before its 503: long enough for a burst of real
deliveries (read in milliseconds), short enough to answer GitHub within its 10 s."""
RETRY_AFTER_S = 10
BODY_TIMEOUT_S = 10.0
"""A body that has not fully arrived by then gets a 408 and frees its slot (slow uploads)."""
COMMIT_TTL_S = 90 * 86_400
"""How long a (repository, sha, target) that was sent stays remembered; the history check
below covers what is older."""
HISTORY_WINDOW = 50
"""Operations on a target read back to find what it last auto-deployed."""
DEPLOYED_STATES = ("succeeded", "running")
"""Auto-deploys that count as what a target runs or is about to run (not failed or skipped)."""


# -- signatures ------------------------------------------------------------------------------


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True only if `header` is GitHub's HMAC of the raw body; constant-time comparison."""
    if not header:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


def signature_problem(header: str | None) -> str | None:
    """What is wrong with the header's shape, or None; checked before any byte of the body."""
    if not header or not header.strip():
        return f"{SIGNATURE_HEADER} missing"
    if not SIGNATURE_FORMAT.fullmatch(header.strip()):
        return f"{SIGNATURE_HEADER} is malformed: expected `sha256=` and 64 lowercase hex digits"
    return None


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
    committed_at = _epoch((head or {}).get("timestamp"))
    if committed_at is None:
        raise Malformed("`head_commit.timestamp` is missing or not an ISO 8601 time")
    return Deploys(dataclasses.replace(push, committed_at=committed_at), targets)


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
    trigger = run.get("event")
    if trigger != "push":
        what = f"a `{trigger}`" if isinstance(trigger, str) and trigger else "an unknown"
        return Ignored(f"workflow {name} ran for {what} event; only runs for pushes deploy")
    if foreign := _foreign_head(run, payload, repo):
        return Ignored(f"workflow {name} {foreign}")
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
    committed_at = next(
        (at for at in map(_epoch, ((head or {}).get("timestamp"), run.get("created_at"))) if at is not None),
        None,
    )
    if committed_at is None:
        raise Malformed("neither `head_commit.timestamp` nor `created_at` of `workflow_run` is a time")
    return Deploys(dataclasses.replace(push, committed_at=committed_at), targets)


def _foreign_head(run: dict[str, Any], payload: dict[str, Any], repo: str) -> str | None:
    """Why the run's head repository is not `repo` itself (a fork, or cannot tell); None if it is.

    Every identity the payload gives must match (the id, and the name case-insensitively);
    a run that gives neither is not trusted.
    """
    head = run.get("head_repository")
    if not isinstance(head, dict):
        return f"names no head repository, so it may have run on a fork; only runs on {repo} itself deploy"
    head_id, repo_id = head.get("id"), (payload.get("repository") or {}).get("id")
    head_name = head.get("full_name")
    ids = all(isinstance(i, int) and not isinstance(i, bool) for i in (head_id, repo_id))
    if ids and head_id != repo_id:
        return f"ran on repository id {head_id}, not {repo} (id {repo_id}): a fork; forks never deploy"
    if isinstance(head_name, str) and head_name:
        if head_name.lower() != repo.lower():
            return f"ran for {head_name}, a fork; forks never deploy"
    elif not ids:
        return f"names its head repository by neither id nor full name; only runs on {repo} itself deploy"
    return None


def _epoch(value: object) -> float | None:
    """Epoch seconds of an ISO 8601 time as GitHub writes them (`Z` or an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


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


def _answer(code: int, *, headers: dict[str, str] | None = None, **body: Any) -> web.Response:
    return web.json_response(body, status=code, headers=headers)


class Refused(Exception):
    """The request ends with `response` before its JSON is looked at (size, time, load, HMAC)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(eq=False)
class GitHubWebhook:
    """POST /github/webhook: check, route, answer; the deploys run after the answer.

    No byte of the body is read before the signature header has GitHub's shape, and at most
    `max_bodies` bodies are read at once, since each may hold MAX_BODY_BYTES until its HMAC is
    known. A delivery beyond the cap waits up to `slot_wait_s` for a slot (a burst of real
    deliveries clears in milliseconds), then gets a 503 with Retry-After; memory never grows
    with the number of uploads. A body slower than `body_timeout_s` gets a 408 and frees its slot.
    """

    secret: InitVar[str | None]
    _: KW_ONLY
    catalog: Catalog
    deliveries: StateStore
    deployer: AutoDeployer
    accepting: Callable[[], bool]
    max_bodies: int = MAX_BODIES
    slot_wait_s: float = SLOT_WAIT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    reading: int = field(default=0, init=False)
    """Bodies being read now (at most `max_bodies`)."""
    waiting: int = field(default=0, init=False)
    """Deliveries waiting for a slot to read their body."""

    def __post_init__(self, secret: str | None) -> None:
        self._secret = secret.encode() if secret else None
        self._slots = asyncio.Semaphore(self.max_bodies)

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
        if not self.accepting():
            return _answer(503, error="Tugboat is shutting down; redeliver in a minute")
        if self._secret is None:
            return _answer(401, error="GITHUB_WEBHOOK_SECRET is not set; webhooks are refused")
        header = request.headers.get(SIGNATURE_HEADER)
        if problem := signature_problem(header):
            self._rejected(request, event, delivery, "missing" if not header else "malformed")
            return _answer(401, error=problem)
        assert header is not None
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return _answer(413, error=f"body is larger than {MAX_BODY_BYTES} bytes")
        try:
            body = await self._read_signed(request, header.strip(), self._secret)
        except Refused as refused:
            if refused.response.status == 401:
                self._rejected(request, event, delivery, "mismatch")
            return refused.response
        try:
            payload = parse_json(body, request.content_type)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _answer(400, error=f"body is not valid JSON: {exc}")
        try:
            decision = route(self.catalog, event, payload, delivery)
        except Malformed as exc:
            return _answer(400, error=f"malformed {event or 'webhook'} payload: {exc}")
        except RecursionError:  # a value nested just under the parser's limit, then printed
            return _answer(400, error=f"malformed {event or 'webhook'} payload: it nests too deeply")
        if isinstance(decision, Ignored):
            return _answer(200, status="ignored", reason=decision.reason)
        if not delivery:
            return _answer(400, error="missing X-GitHub-Delivery header")
        if not await self.deliveries.first_delivery(f"github:{delivery}"):
            return _answer(200, status="ignored", reason=f"duplicate delivery {delivery}")
        targets, ignored = [], []
        for target in decision.targets:
            why = await self._not_new(target, decision.push)
            if why is None:
                targets.append(target)
            else:
                ignored.append(why)
        if not targets:
            return _answer(200, status="ignored", reason="; ".join(ignored))
        records = [self.deployer.submit(target, decision.push) for target in targets]
        accepted: dict[str, Any] = {
            "status": "accepted",
            "sha": decision.push.sha,
            "targets": [str(t) for t in targets],
            "operations": [r.id for r in records],
        }
        if ignored:
            accepted["ignored"] = ignored
        return web.json_response(accepted, status=202)

    async def _read_signed(self, request: web.Request, header: str, secret: bytes) -> bytes:
        """The body, once its HMAC matches `header`; else Refused (busy, slow, large, forged)."""
        async with self._slot():
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    read = await read_hmac(request, secret, MAX_BODY_BYTES)
            except TimeoutError:
                raise Refused(
                    _answer(408, error=f"the body did not arrive within {self.body_timeout_s:g} s")
                ) from None
            except ConnectionError:
                raise Refused(_answer(400, error="the connection closed before the body ended")) from None
        if read is None:
            raise Refused(_answer(413, error=f"body is larger than {MAX_BODY_BYTES} bytes"))
        digest, chunks = read
        if not hmac.compare_digest(f"sha256={digest}".encode(), header.encode()):
            raise Refused(_answer(401, error=f"{SIGNATURE_HEADER} does not match"))
        return b"".join(chunks)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of `max_bodies` reading slots; Refused (503) if none frees in `slot_wait_s`."""
        self.waiting += 1
        try:
            async with asyncio.timeout(self.slot_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            busy = (
                f"{self.max_bodies} webhook bodies are being read already;"
                f" redeliver in {RETRY_AFTER_S} s (Retry-After)"
            )
            raise Refused(_answer(503, headers={"Retry-After": str(RETRY_AFTER_S)}, error=busy)) from None
        finally:
            self.waiting -= 1
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1
            self._slots.release()

    async def _not_new(self, target: Target, push: PushEvent) -> str | None:
        """Why `push` must not auto-deploy to `target`, or None (and then it is remembered).

        A signed body can be replayed under a new delivery id, so the commit itself must be new
        to the target: never sent to it before, and not older than what it last auto-deployed
        (or is auto-deploying now). A commit as old as that one but different still ships: two
        commits can share a second.
        """
        where = f"{target.app} {target.env}"
        again = f"/deploy {where} {push.sha}"
        newest_sha, newest_at, seen = "", None, False
        for record in await self.deliveries.history(target.app, target.env, HISTORY_WINDOW):
            if not record.extra.get("auto_deploy") or record.state not in DEPLOYED_STATES:
                continue
            seen = seen or record.extra.get("sha") == push.sha
            at = _committed_at(record)
            if at is not None and (newest_at is None or at > newest_at):
                newest_sha, newest_at = str(record.extra.get("sha")), at
        if newest_at is not None and push.committed_at is not None and push.committed_at < newest_at:
            return (
                f"{push.short_sha} (committed {_when(push.committed_at)}) is older than"
                f" {newest_sha[:7]} (committed {_when(newest_at)}), which {where} last auto-deployed;"
                f" an older commit never auto-deploys. To ship it on purpose: {again}"
            )
        if seen:
            return _already(push, where, again)
        key = f"github-commit:{push.repo.lower()}@{push.sha}:{target.app}/{target.env}"
        if not await self.deliveries.first_delivery(key, ttl_s=COMMIT_TTL_S):
            return _already(push, where, again)
        return None

    @staticmethod
    def _rejected(request: web.Request, event: str, delivery: str, problem: str) -> None:
        log.warning(
            "webhook signature rejected",
            extra={"delivery": delivery, "event": event, "remote": request.remote, "problem": problem},
        )


def _already(push: PushEvent, where: str, again: str) -> str:
    return (
        f"{push.short_sha} of {push.repo} already had an auto-deploy to {where};"
        f" a commit auto-deploys once. To ship it again: {again}"
    )


def _committed_at(record: OperationRecord) -> float | None:
    value = record.extra.get("committed_at")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


async def read_hmac(request: web.Request, secret: bytes, limit: int) -> tuple[str, list[bytes]] | None:
    """The body's HMAC-SHA256 (hex) and its chunks, streamed; None once it is over `limit`.

    The HMAC is fed chunk by chunk as it arrives; the chunks are kept only because the JSON is
    parsed once the signature matches, and never more than `limit` bytes of them. Reading the
    stream here makes an oversized body a clean 413, whatever client_max_size the app has.
    """
    mac = hmac.new(secret, digestmod=hashlib.sha256)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        mac.update(chunk)
        chunks.append(chunk)
    return mac.hexdigest(), chunks


def parse_json(body: bytes, content_type: str) -> Any:
    """The payload; ValueError for anything that is not JSON Tugboat can read.

    Python's decoder recurses once per nesting level, so a deeply nested body would raise
    RecursionError (a 500 and a noisy log); it is a malformed body like any other.
    """
    try:
        return json.loads(_json_bytes(body, content_type))
    except RecursionError:
        raise ValueError("it nests deeper than Tugboat can read") from None


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
