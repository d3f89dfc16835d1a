"""GitHubClient: the few REST calls Tugboat makes with `GITHUB_TOKEN`, each short and counted.

GitHub is never on a deploy's critical path: every request gives up after `timeout_s` (a
second by default), every failure is one `CodeHostError` and one count in
`tugboat_github_errors_total`, and callers decide what an error means (usually nothing).
URLs are joined onto `GITHUB_API_URL`, whose path is kept: GitHub Enterprise Server's API
lives under `/api/v3/`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import SecretStr

from bot import metrics
from bot.domain.code import CiCheck, CiReport, CodeHostError, Resolved
from bot.domain.commits import Commit, CommitList

USER_AGENT = "tugboat-chatops"
API_VERSION = "2022-11-28"
DESCRIPTION_CHARS = 140
"""GitHub's limit for a deployment status's description."""


def _parse_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _commit(item: dict[str, Any]) -> Commit:
    body = item.get("commit") or {}
    login = (item.get("author") or {}).get("login")
    name = (body.get("author") or {}).get("name")
    title = str(body.get("message") or "").split("\n", 1)[0]
    return Commit(str(item.get("sha", "")), title, str(login or name or "unknown"))


class GitHubClient:
    """GitHub's REST API for the catalog's repositories (the `CodeHost` port, and Deployments)."""

    def __init__(self, token: SecretStr, api_url: str, *, timeout_s: float = 1.0) -> None:
        self._token = token
        self._base = api_url if api_url.endswith("/") else api_url + "/"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        """`path` under the API base, never replacing the base's own path (GHES: /api/v3/)."""
        return self._base + path.lstrip("/")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, call: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request; its JSON answer, or CodeHostError (counted) for anything else."""
        if self._session is None:  # created on first use, inside the running loop
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=True)
        headers = {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token.get_secret_value()}",
            "User-Agent": USER_AGENT,
            "X-GitHub-Api-Version": API_VERSION,
        }
        try:
            async with self._session.request(method, self.url(path), json=body, headers=headers) as answer:
                if answer.status >= 400:
                    raise CodeHostError(call, answer.status)
                return await answer.json(content_type=None)
        except CodeHostError as exc:
            metrics.GITHUB_ERRORS.labels(call=call, reason=str(exc.status)).inc()
            raise
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else "connection"
            metrics.GITHUB_ERRORS.labels(call=call, reason=reason).inc()
            raise CodeHostError(call, None, reason) from None

    @staticmethod
    def _repo(repo: str) -> str:
        owner, name = repo.split("/", 1)
        return f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"

    # -- reads (the CodeHost port) ----------------------------------------------------------

    async def resolve(self, repo: str, ref: str) -> Resolved:
        item = await self._request("commit", "GET", f"{self._repo(repo)}/commits/{quote(ref, safe='')}")
        committer = ((item.get("commit") or {}).get("committer")) or {}
        return Resolved(str(item.get("sha") or ref), _parse_time(committer.get("date")))

    async def compare(self, repo: str, base: str, head: str) -> CommitList:
        basehead = f"{quote(base, safe='')}...{quote(head, safe='')}"
        answer = await self._request("compare", "GET", f"{self._repo(repo)}/compare/{basehead}")
        commits = tuple(_commit(item) for item in answer.get("commits") or [])
        return CommitList(commits, int(answer.get("total_commits", len(commits))))

    async def ci(self, repo: str, ref: str) -> CiReport:
        """Check runs and commit statuses, asked together (one timeout for both)."""
        commit = f"{self._repo(repo)}/commits/{quote(ref, safe='')}"
        runs, combined = await asyncio.gather(
            self._request("check-runs", "GET", f"{commit}/check-runs?per_page=100"),
            self._request("status", "GET", f"{commit}/status?per_page=100"),
        )
        checks = [
            CiCheck(str(run.get("name")), str(run.get("conclusion") or run.get("status") or "queued"))
            for run in runs.get("check_runs") or []
        ]
        # A combined status with no statuses at all says `pending`: no verdict, not a red one.
        checks += [
            CiCheck(str(status.get("context")), str(status.get("state")))
            for status in combined.get("statuses") or []
        ]
        return CiReport(tuple(checks))

    # -- Deployments -------------------------------------------------------------------------

    async def create_deployment(
        self, repo: str, sha: str, environment: str, description: str, payload: dict[str, Any]
    ) -> int:
        """A deployment of `sha` to `environment`, created whatever the commit's statuses say."""
        answer = await self._request(
            "deployments",
            "POST",
            f"{self._repo(repo)}/deployments",
            {
                "ref": sha,
                "environment": environment,
                "auto_merge": False,
                "required_contexts": [],
                "description": description[:DESCRIPTION_CHARS],
                "payload": payload,
            },
        )
        try:
            return int(answer["id"])
        except (KeyError, TypeError, ValueError):
            metrics.GITHUB_ERRORS.labels(call="deployments", reason="answer").inc()
            raise CodeHostError("deployments", None, "no deployment id in the answer") from None

    async def find_deployment(self, repo: str, sha: str, environment: str, operation: str) -> int | None:
        """The deployment `create_deployment` made for Tugboat's `operation`, if GitHub has one
        (a resumed operation whose record never learnt the id)."""
        query = f"sha={quote(sha, safe='')}&environment={quote(environment, safe='')}&per_page=100"
        answer = await self._request("deployments", "GET", f"{self._repo(repo)}/deployments?{query}")
        for item in answer if isinstance(answer, list) else []:
            payload = item.get("payload") if isinstance(item, dict) else None
            if (
                isinstance(payload, dict)
                and payload.get("tugboat_operation") == operation
                and item.get("sha") == sha
                and item.get("environment") == environment
                and isinstance(item.get("id"), int)
            ):
                return int(item["id"])
        return None

    async def set_status(
        self, repo: str, deployment: int, state: str, *, log_url: str | None, description: str
    ) -> None:
        body: dict[str, Any] = {"state": state, "description": description[:DESCRIPTION_CHARS]}
        if log_url:
            body["log_url"] = log_url
        await self._request(
            "deployment-statuses", "POST", f"{self._repo(repo)}/deployments/{deployment}/statuses", body
        )
