"""The webhook under attack: replays, unsigned or slow uploads, hostile JSON, runs from forks.

Each test sends what an attacker (or a confused GitHub) could send to the bot's real port and
checks what a user would notice: the HTTP answer and its reason, the image staging runs
afterwards, the threads in Slack. Uploads that stall on purpose use raw sockets, so the test
controls exactly how much of the body the bot has been sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.domain.catalog import Catalog
from bot.github.webhook import Deploys, GitHubWebhook, Ignored, Malformed, route
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.web import build_web_app
from tests.conftest import one_service_catalog, running
from tests.fixtures_github import (
    PING,
    SECRET,
    STAGING,
    final_thread_about,
    push_payload,
    running_image,
    sender,
    signed_headers,
    workflow_run_payload,
)
from tests.slackview import parents

OLD, MIDDLE, NEW = SandboxWorld.EXAMPLE_SHAS[1], SandboxWorld.EXAMPLE_SHAS[0], SandboxWorld.EXAMPLE_SHAS[2]
ON_WORKFLOW = ("on: push", "on: workflow_run\n          workflow: CI")
ANSWER_WITHIN_S = 5.0
"""How long a refusal may take; far less than the time a stalled upload would need."""


@contextlib.asynccontextmanager
async def hooked_bot(
    fake: FakeSlack, tmp_path: Path, catalog: Catalog | None = None
) -> AsyncIterator[tuple[Tugboat, aiohttp.ClientSession]]:
    """The bot with a webhook secret (the example deploying `api` alone unless told), and an HTTP client."""
    async with (
        running(
            fake, catalog or one_service_catalog(), tmp_path / "t.db", github_webhook_secret=SecretStr(SECRET)
        ) as tugboat,
        aiohttp.ClientSession() as http,
    ):
        yield tugboat, http


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).astimezone(UTC).timestamp()


# -- raw uploads: the test decides how much of the body the bot gets -----------------------------


class Upload:
    """A POST to /github/webhook over a raw socket whose body arrives only when the test says."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes) -> None:
        self.reader, self.writer, self.rest = reader, writer, rest

    @classmethod
    async def start(cls, port: int, headers: dict[str, str], body: bytes, sent: int) -> Upload:
        """Send the request line, `headers` and the first `sent` bytes of `body`, then stall."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [
            "POST /github/webhook HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            f"Content-Length: {len(body)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body[:sent])
        await writer.drain()
        return cls(reader, writer, body[sent:])

    async def finish(self) -> None:
        self.writer.write(self.rest)
        await self.writer.drain()
        self.rest = b""

    async def answer(self, within: float = ANSWER_WITHIN_S) -> tuple[int, dict[str, str], dict[str, Any]]:
        """The status, headers and JSON body the bot answered with, waiting at most `within` s."""
        async with asyncio.timeout(within):
            status = int((await self.reader.readline()).split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self.reader.readexactly(int(headers["content-length"]))
        return status, headers, json.loads(body)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# -- 4: a replayed webhook never downgrades a service ------------------------------------------


async def test_a_replayed_or_older_push_never_downgrades_staging(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with hooked_bot(fake, tmp_path) as (tugboat, http):
        send = sender(http, tugboat)
        old_body = json.dumps(push_payload(OLD, timestamp="2024-03-01T10:00:00Z")).encode()
        status, answer = await send("push", None, body=old_body)
        assert status == 202, answer
        assert "*Succeeded*" in (await final_thread_about(fake, OLD)).flat
        new_push = push_payload(NEW, timestamp="2024-03-02T09:30:00+01:00")
        status, answer = await send("push", new_push)
        assert status == 202, answer
        assert "*Succeeded*" in (await final_thread_about(fake, NEW)).flat
        assert running_image(world).endswith(f"acme/api:{NEW}")
        live = answer["operations"][0]

        # The old signed body again, under a fresh X-GitHub-Delivery (the one header not signed).
        status, answer = await send("push", None, body=old_body)
        assert (status, answer["status"]) == (200, "ignored"), answer
        assert answer["reason"] == (
            f"{OLD[:7]} (committed 2024-03-01 10:00 UTC) is older than {NEW[:7]} (committed"
            " 2024-03-02 08:30 UTC), which api staging last auto-deployed; an older commit never"
            f" auto-deploys. To ship it on purpose: /deploy api staging {OLD}"
        )
        # A commit between the two that Tugboat never saw (say its delivery failed back then).
        status, answer = await send("push", push_payload(MIDDLE, timestamp="2024-03-01T23:59:59Z"))
        assert (status, answer["status"]) == (200, "ignored"), answer
        assert answer["reason"].startswith(f"{MIDDLE[:7]} (committed 2024-03-01 23:59 UTC) is older than")
        # The live commit again: once is enough.
        status, answer = await send("push", new_push)
        assert (status, answer["status"]) == (200, "ignored"), answer
        assert answer["reason"] == (
            f"{NEW[:7]} of acme/api already had an auto-deploy to api staging; a commit"
            f" auto-deploys once. To ship it again: /deploy api staging {NEW}"
        )

        await tugboat.idle()
        assert running_image(world).endswith(f"acme/api:{NEW}")
        assert len(parents(fake, STAGING)) == 2
        assert world.calls()["ecs:UpdateService"] == 2
        # What let the bot tell: the history keeps each auto-deploy's commit and its time.
        record = await tugboat.store.get(live)
        assert record is not None
        assert (record.extra["sha"], record.extra["committed_at"]) == (NEW, epoch("2024-03-02T08:30Z"))


async def test_concurrent_deliveries_of_one_commit_deploy_it_once(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = one_service_catalog(ON_WORKFLOW)
    async with hooked_bot(fake, tmp_path, catalog) as (tugboat, http):
        send = sender(http, tugboat)
        run = workflow_run_payload(NEW)
        deliveries = await asyncio.gather(*(send("workflow_run", run) for _ in range(3)))
        assert sorted(status for status, _ in deliveries) == [200, 200, 202], deliveries
        assert "*Succeeded*" in (await final_thread_about(fake, NEW)).flat
        for status, answer in deliveries:
            if status == 200:
                assert answer["reason"].startswith(f"{NEW[:7]} of acme/api already had an auto-deploy")
        await tugboat.idle()
        assert len(parents(fake, STAGING)) == 1
        assert world.calls()["ecs:UpdateService"] == 1


def test_commit_times_come_from_the_head_commit_or_else_the_run() -> None:
    catalog = one_service_catalog(ON_WORKFLOW)
    run = workflow_run_payload(NEW)
    decision = route(catalog, "workflow_run", run, "d1")
    assert isinstance(decision, Deploys)
    assert decision.push.committed_at == epoch("2020-10-05T16:32:07Z")  # the fixture's head commit
    del run["workflow_run"]["head_commit"]["timestamp"]
    decision = route(catalog, "workflow_run", run, "d2")
    assert isinstance(decision, Deploys)
    assert decision.push.committed_at == epoch("2020-10-05T16:33:24Z")  # the run's created_at
    push = push_payload(NEW)
    del push["head_commit"]["timestamp"]
    with pytest.raises(Malformed, match=r"head_commit\.timestamp"):
        route(one_service_catalog(), "push", push, "d3")


# -- 7: unsigned uploads are refused before their body is read; few bodies at once -----------


async def test_unsigned_uploads_are_refused_before_their_body_is_read(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    body = b"x" * (8 * 1024 * 1024)  # under the 10 MiB limit: only the signature can refuse it
    malformed = "X-Hub-Signature-256 is malformed: expected `sha256=` and 64 lowercase hex digits"
    bad: list[tuple[str | None, str]] = [
        (None, "X-Hub-Signature-256 missing"),
        ("sha1=" + "0" * 40, malformed),
        ("sha256=" + "0" * 63, malformed),
        ("sha256=" + "g" * 64, malformed),
    ]
    async with hooked_bot(fake, tmp_path) as (tugboat, http):
        uploads = []
        for i in range(12):  # a dozen at once: more than the bodies read concurrently
            value, expected = bad[i % len(bad)]
            headers = signed_headers("push", b"", SECRET)
            del headers["X-Hub-Signature-256"]
            if value is not None:
                headers["X-Hub-Signature-256"] = value
            uploads.append((await Upload.start(tugboat.port, headers, body, sent=1024), expected))
        try:
            for upload, expected in uploads:
                # Only 1 KiB of 8 MiB has been sent: an answer now means the body was not awaited.
                status, _, answer = await upload.answer()
                assert (status, answer["error"]) == (401, expected)
                assert len(upload.rest) == len(body) - 1024
        finally:
            for upload, _ in uploads:
                await upload.close()

        status, answer = await sender(http, tugboat)("ping", PING)
        assert (status, answer["status"]) == (200, "ignored")
        assert parents(fake, STAGING) == []


async def test_signed_bodies_beyond_the_cap_are_answered_503_with_retry_after(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with hooked_bot(fake, tmp_path) as (tugboat, http):
        body = json.dumps(PING).encode()
        stalled = [
            await Upload.start(tugboat.port, signed_headers("ping", body, SECRET), body, sent=10)
            for _ in range(8)
        ]
        try:
            send = sender(http, tugboat)
            url = f"http://127.0.0.1:{tugboat.port}/github/webhook"

            async def refused() -> tuple[dict[str, Any], str] | None:
                async with http.post(url, data=body, headers=signed_headers("ping", body, SECRET)) as r:
                    return (await r.json(), r.headers["Retry-After"]) if r.status == 503 else None

            answer, retry_after = await wait_for(refused, timeout=15, what="a 503 while 8 bodies stall")
            assert answer["error"] == (
                "8 webhook bodies are being read already; redeliver in 10 s (Retry-After)"
            )
            assert retry_after == "10"

            for upload in stalled:  # the stalled deliveries end, and are answered as usual
                await upload.finish()
            for upload in stalled:
                status, _, answered = await upload.answer()
                assert (status, answered["status"]) == (200, "ignored")
            status, answered = await send("ping", PING)
            assert (status, answered["status"]) == (200, "ignored")
        finally:
            for upload in stalled:
                await upload.close()


async def test_a_body_over_the_cap_waits_for_a_free_slot(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with hooked_bot(fake, tmp_path) as (tugboat, http):
        hook = GitHubWebhook(
            SECRET,
            catalog=tugboat.catalog,
            deliveries=tugboat.store,
            deployer=tugboat.deployer,
            accepting=lambda: True,
            max_bodies=1,
            slot_wait_s=30,
        )
        server = TestServer(build_web_app(tugboat.healthy, hook.handle), port=0)
        await server.start_server()
        body = json.dumps(PING).encode()
        stalled = await Upload.start(server.port or 0, signed_headers("ping", body, SECRET), body, sent=10)
        try:
            await wait_for(lambda: hook.reading == 1, what="the first body being read")
            url = str(server.make_url("/github/webhook"))

            async def post() -> tuple[int, dict[str, Any]]:
                async with http.post(url, data=body, headers=signed_headers("ping", body, SECRET)) as r:
                    return r.status, await r.json()

            queued = asyncio.ensure_future(post())
            await wait_for(lambda: hook.waiting == 1, what="the second body waiting for a slot")
            assert not queued.done()
            await stalled.finish()
            status, _, answer = await stalled.answer()
            assert (status, answer["status"]) == (200, "ignored")
            status, answer = await asyncio.wait_for(queued, ANSWER_WITHIN_S)
            assert (status, answer["status"]) == (200, "ignored")
            assert (hook.reading, hook.waiting) == (0, 0)
        finally:
            await stalled.close()
            await server.close()


# -- 8: deeply nested JSON is a 400, and the server keeps serving ------------------------------


async def test_deeply_nested_signed_json_is_a_400_and_the_bot_keeps_serving(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with hooked_bot(fake, tmp_path) as (tugboat, http):
        send = sender(http, tugboat)
        nested = b'{"zen": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        status, answer = await send("push", None, body=nested)
        assert status == 400, answer
        assert answer["error"] == "body is not valid JSON: it nests deeper than Tugboat can read"
        # Around the parser's own limit: parsed but too deep to print, or not parsed; never a 500.
        for depth in range(900, 1000, 4):
            body = b'{"zen": ' + b"[" * depth + b"]" * depth + b"}"
            status, answer = await send("ping", None, body=body)
            assert status in (200, 400), (depth, status, answer)

        status, answer = await send("push", push_payload(NEW))
        assert status == 202, answer
        assert "*Succeeded*" in (await final_thread_about(fake, NEW)).flat
        assert running_image(world).endswith(f"acme/api:{NEW}")


# -- 9: workflow runs deploy only when pushed to the catalog's repository itself -----------------


async def test_workflow_runs_deploy_only_for_pushes_to_the_catalogs_repository(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    def run(*, event: str | None = "push", head: dict[str, Any] | str | None = "same") -> dict[str, Any]:
        payload = workflow_run_payload(NEW)
        if event is None:
            del payload["workflow_run"]["event"]
        else:
            payload["workflow_run"]["event"] = event
        if head != "same":
            payload["workflow_run"]["head_repository"] = head
        return payload

    repo_id = workflow_run_payload(NEW)["repository"]["id"]
    cases = {
        "workflow CI ran for a `pull_request` event; only runs for pushes deploy": run(
            event="pull_request", head=None
        ),
        "workflow CI ran for an unknown event; only runs for pushes deploy": run(event=None),
        "workflow CI names no head repository, so it may have run on a fork;"
        " only runs on acme/api itself deploy": run(head=None),
        f"workflow CI ran on repository id 4242, not acme/api (id {repo_id}): a fork;"
        " forks never deploy": run(head={"id": 4242, "full_name": "acme/api"}),
        "workflow CI ran for mallory/api, a fork; forks never deploy": run(
            head={"id": repo_id, "full_name": "mallory/api"}
        ),
        "workflow CI names its head repository by neither id nor full name;"
        " only runs on acme/api itself deploy": run(head={"name": "api"}),
    }
    async with hooked_bot(fake, tmp_path, one_service_catalog(ON_WORKFLOW)) as (tugboat, http):
        send = sender(http, tugboat)
        for reason, payload in cases.items():
            status, answer = await send("workflow_run", payload)
            assert (status, answer.get("reason")) == (200, reason)
        await tugboat.idle()
        assert parents(fake, STAGING) == []
        assert world.calls()["ecs:UpdateService"] == 0

        # The repository itself, its name in another case (GitHub names are case-insensitive).
        status, answer = await send("workflow_run", run(head={"id": repo_id, "full_name": "ACME/API"}))
        assert status == 202, answer
        assert "*Succeeded*" in (await final_thread_about(fake, NEW)).flat
        assert running_image(world).endswith(f"acme/api:{NEW}")


def test_a_pull_request_run_is_ignored_by_the_router_too() -> None:
    payload = workflow_run_payload(NEW)
    payload["workflow_run"]["event"] = "pull_request"
    payload["workflow_run"]["head_repository"] = None
    decision = route(one_service_catalog(ON_WORKFLOW), "workflow_run", payload, "d1")
    assert isinstance(decision, Ignored)
    assert decision.reason.startswith("workflow CI ran for a `pull_request` event")
