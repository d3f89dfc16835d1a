"""A local GitHub REST API for the sandbox and the tests: commits, CI and Deployments of acme/api.

It answers the calls Tugboat makes with `GITHUB_TOKEN` as GitHub does (under `/api/v3/`, as
GitHub Enterprise Server serves them, so URL joining is exercised): commits, compare,
check runs, combined status, deployments and their statuses. It checks the token and the
`User-Agent` header like GitHub, and can answer 500 or stall on request, so faults show
through the real client. The history holds the world's `EXAMPLE_SHAS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from bot.sandbox.world import SandboxWorld

REPOSITORY = SandboxWorld.EXAMPLE_REPOSITORY
PREFIX = "/api/v3"
OLDER, MIDDLE, NEWEST = (
    SandboxWorld.EXAMPLE_SHAS[1],
    SandboxWorld.EXAMPLE_SHAS[0],
    SandboxWorld.EXAMPLE_SHAS[2],
)
"""The example commits in history order (as tests/test_webhook_hardening.py has them)."""
AUTHORS = ("mona", "hubot", "octocat", "nat")


@dataclass
class FakeCommit:
    sha: str
    message: str
    login: str
    committed_at: float


@dataclass
class FakeDeployment:
    id: int
    repo: str
    sha: str
    environment: str
    description: str
    payload: dict[str, Any]
    created_at: float
    statuses: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str | None:
        return self.statuses[-1]["state"] if self.statuses else None

    @property
    def production(self) -> bool:
        return self.environment == "production"  # GitHub's default for `production_environment`


def example_history(now: float) -> list[FakeCommit]:
    """acme/api's main branch, oldest first: 14 commits an hour apart, ending an hour ago."""
    middle = [hashlib.sha1(f"acme/api {n}".encode(), usedforsecurity=False).hexdigest() for n in range(11)]
    titles = [f"Tidy the checkout step {n + 1}" for n in range(11)]
    titles[3] = "Escape <b>tags</b> & <!channel> in receipts"
    shas = [OLDER, MIDDLE, *middle, NEWEST]
    messages = [
        "Add a health check endpoint",
        "Cache product lookups\n\nThe catalogue page read the same rows on every request.",
        *titles,
        "Ship the new checkout",
    ]
    start = now - len(shas) * 3600
    return [
        FakeCommit(sha, message, AUTHORS[i % len(AUTHORS)], start + i * 3600)
        for i, (sha, message) in enumerate(zip(shas, messages, strict=True))
    ]


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class FakeGitHub:
    """GitHub's REST API on 127.0.0.1 for one repository. Thread-safe; drive it from any thread."""

    token: Final = "ghp_sandboxFakeToken0000000000000000000"  # noqa: S105 - fake credential by design

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._fresh()

    def _fresh(self) -> None:
        self.commits: list[FakeCommit] = example_history(time.time())
        self.checks: dict[str, dict[str, str]] = {}
        """Per commit, check-run name → conclusion; a commit not listed has `build` and `test` green."""
        self.statuses: dict[str, dict[str, str]] = {}
        """Per commit, status context → state; none by default (combined state `pending`)."""
        self.deployments: list[FakeDeployment] = []
        self.requests: list[tuple[str, str, int]] = []
        """(method, path, answer status) of every request, in order."""
        self.failing: int | None = None
        self.stall_s = 0.0

    # -- what a test drives -------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{PREFIX}/"

    def reset(self) -> None:
        with self._lock:
            self._fresh()

    def fail_with(self, status: int | None) -> None:
        """Answer every request with `status` (500: GitHub is down); None: answer normally."""
        with self._lock:
            self.failing = status

    def stall(self, seconds: float) -> None:
        """Hold every answer this long (a GitHub that hangs)."""
        with self._lock:
            self.stall_s = seconds

    def set_check(self, sha: str, name: str, conclusion: str | None) -> None:
        """A check run of `sha`: `success`, `failure`…, or None while it runs."""
        with self._lock:
            self.checks.setdefault(sha, {"build": "success", "test": "success"})[name] = conclusion or ""

    def set_status(self, sha: str, context: str, state: str) -> None:
        with self._lock:
            self.statuses.setdefault(sha, {})[context] = state

    def deployments_of(self, environment: str | None = None) -> list[FakeDeployment]:
        with self._lock:
            return [d for d in self.deployments if environment in (None, d.environment)]

    def calls(self, fragment: str = "") -> list[tuple[str, str, int]]:
        with self._lock:
            return [r for r in self.requests if fragment in r[1]]

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run_loop, name="fake-github", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10) or not self._port:
            raise RuntimeError("fake GitHub did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop, self._thread = None, None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.run_until_complete(self._serve())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._gate])
        repo = PREFIX + "/repos/{owner}/{name}"
        app.router.add_get(repo + "/commits/{ref}/check-runs", self._check_runs)
        app.router.add_get(repo + "/commits/{ref}/status", self._status)
        app.router.add_get(repo + "/commits/{ref}", self._commit)
        app.router.add_get(repo + "/compare/{base}...{head}", self._compare)
        app.router.add_post(repo + "/deployments", self._create_deployment)
        app.router.add_get(repo + "/deployments", self._list_deployments)
        app.router.add_post(repo + "/deployments/{id}/statuses", self._create_status)
        app.router.add_get(repo + "/deployments/{id}/statuses", self._list_statuses)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- GitHub's manners -----------------------------------------------------------------------

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            failing, stall = self.failing, self.stall_s
        if stall:
            await asyncio.sleep(stall)
        if not request.headers.get("User-Agent"):
            answer: web.StreamResponse = _error(
                403,
                "Request forbidden by administrative rules."
                " Please make sure your request has a User-Agent header",
            )
        elif request.headers.get("Authorization") not in (f"Bearer {self.token}", f"token {self.token}"):
            answer = _error(401, "Bad credentials")
        elif failing is not None:
            answer = _error(failing, "Server Error")
        else:
            try:
                answer = await handler(request)
            except web.HTTPException as exc:
                answer = _error(exc.status, exc.reason)
        with self._lock:
            self.requests.append((request.method, request.path, answer.status))
        return answer

    def _repo(self, request: web.Request) -> None:
        if f"{request.match_info['owner']}/{request.match_info['name']}".lower() != REPOSITORY:
            raise web.HTTPNotFound(reason="Not Found")

    def _find(self, ref: str) -> FakeCommit:
        found = [c for c in self.commits if len(ref) >= 7 and c.sha.startswith(ref.lower())]
        if len(found) != 1:
            raise web.HTTPUnprocessableEntity(reason=f"No commit found for SHA: {ref}")
        return found[0]

    def _commit_json(self, commit: FakeCommit) -> dict[str, Any]:
        person = {
            "name": commit.login.title(),
            "email": f"{commit.login}@example.com",
            "date": _iso(commit.committed_at),
        }
        return {
            "sha": commit.sha,
            "commit": {"message": commit.message, "author": person, "committer": person},
            "author": {"login": commit.login},
            "html_url": f"https://github.com/{REPOSITORY}/commit/{commit.sha}",
        }

    # -- commits and CI -------------------------------------------------------------------------

    async def _commit(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            return web.json_response(self._commit_json(self._find(request.match_info["ref"])))

    async def _compare(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            base, head = self._find(request.match_info["base"]), self._find(request.match_info["head"])
            first, last = self.commits.index(base), self.commits.index(head)
            between = self.commits[first + 1 : last + 1] if last > first else []
            body = {
                "status": "ahead" if last > first else ("identical" if last == first else "behind"),
                "ahead_by": len(between),
                "total_commits": len(between),
                "commits": [self._commit_json(c) for c in between[:250]],
            }
        return web.json_response(body)

    async def _check_runs(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            commit = self._find(request.match_info["ref"])
            runs = self.checks.get(commit.sha, {"build": "success", "test": "success"})
            body = {
                "total_count": len(runs),
                "check_runs": [
                    {
                        "name": name,
                        "head_sha": commit.sha,
                        "status": "completed" if conclusion else "in_progress",
                        "conclusion": conclusion or None,
                    }
                    for name, conclusion in runs.items()
                ],
            }
        return web.json_response(body)

    async def _status(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            commit = self._find(request.match_info["ref"])
            statuses = self.statuses.get(commit.sha, {})
            states = set(statuses.values())
            combined = (
                "failure"
                if states & {"failure", "error"}
                else "success"
                if states and states <= {"success"}
                else "pending"
            )
            body = {
                "state": combined,
                "sha": commit.sha,
                "total_count": len(statuses),
                "statuses": [{"context": c, "state": s} for c, s in statuses.items()],
            }
        return web.json_response(body)

    # -- Deployments ----------------------------------------------------------------------------

    async def _create_deployment(self, request: web.Request) -> web.Response:
        self._repo(request)
        body = await request.json()
        with self._lock:
            commit = self._find(str(body.get("ref", "")))
            if body.get("required_contexts") != [] and any(
                not c for c in self.checks.get(commit.sha, {}).values()
            ):
                raise web.HTTPConflict(reason="Conflict: Commit status checks failed")
            deployment = FakeDeployment(
                id=len(self.deployments) + 1,
                repo=REPOSITORY,
                sha=commit.sha,
                environment=str(body.get("environment") or "production"),
                description=str(body.get("description") or ""),
                payload=dict(body.get("payload") or {}),
                created_at=time.time(),
            )
            self.deployments.append(deployment)
        return web.json_response(_deployment_json(deployment), status=201)

    async def _list_deployments(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            found = [_deployment_json(d) for d in reversed(self.deployments)]
        return web.json_response(found)

    def _deployment(self, request: web.Request) -> FakeDeployment:
        wanted = request.match_info["id"]
        found = next((d for d in self.deployments if str(d.id) == wanted), None)
        if found is None:
            raise web.HTTPNotFound(reason="Not Found")
        return found

    async def _create_status(self, request: web.Request) -> web.Response:
        self._repo(request)
        body = await request.json()
        state = str(body.get("state"))
        if state not in ("error", "failure", "inactive", "in_progress", "queued", "pending", "success"):
            raise web.HTTPUnprocessableEntity(reason="Validation Failed")
        if len(str(body.get("description") or "")) > 140:
            raise web.HTTPUnprocessableEntity(reason="description is too long (maximum is 140 characters)")
        with self._lock:
            deployment = self._deployment(request)
            status = {
                "id": sum(len(d.statuses) for d in self.deployments) + 1,
                "state": state,
                "log_url": body.get("log_url", ""),
                "description": body.get("description", ""),
                "environment": deployment.environment,
            }
            deployment.statuses.append(status)
            if state == "success" and body.get("auto_inactive", True) and not deployment.production:
                # GitHub's auto_inactive: earlier successful, non-production deployments of the
                # same environment become inactive (production ones are left to the deployer).
                for earlier in self.deployments:
                    if (
                        earlier.id < deployment.id
                        and earlier.environment == deployment.environment
                        and earlier.state == "success"
                    ):
                        earlier.statuses.append({**status, "state": "inactive", "description": "auto"})
        return web.json_response(status, status=201)

    async def _list_statuses(self, request: web.Request) -> web.Response:
        self._repo(request)
        with self._lock:
            return web.json_response(list(reversed(self._deployment(request).statuses)))


def _deployment_json(deployment: FakeDeployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "sha": deployment.sha,
        "ref": deployment.sha,
        "environment": deployment.environment,
        "description": deployment.description,
        "payload": deployment.payload,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"message": message, "documentation_url": "https://docs.github.com/rest"}, status=status
    )
