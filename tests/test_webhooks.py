"""GitHub webhooks end to end: signed HTTP to the bot's real port, fake Slack, moto.

Each test sends what GitHub would send and checks what a user would see (threads in the
staging channel) and what ECS ends up running; nothing of ours is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from bot.domain.records import Lock
from bot.github.autodeploy import tag_for
from bot.github.webhook import (
    MAX_BODY_BYTES,
    Deploys,
    Ignored,
    route,
    signature,
    verify_signature,
    webhook_handler,
)
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
    new_sha,
    push_payload,
    running_image,
    sender,
    signed_headers,
    thread_about,
    workflow_run_payload,
)
from tests.slackview import is_final, parents, revisions, thread_text

SHA = SandboxWorld.EXAMPLE_SHAS[0]


@pytest.fixture
async def hooked(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    """The bot on the example deploying `api` alone, with a webhook secret."""
    async with running(
        fake, one_service_catalog(), tmp_path / "t.db", github_webhook_secret=SecretStr(SECRET)
    ) as tugboat:
        yield tugboat


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# -- signatures, unit --------------------------------------------------------------------------


def test_githubs_own_hmac_test_vector() -> None:
    secret, body = b"It's a Secret to Everybody", b"Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(secret, body) == expected
    assert verify_signature(secret, body, expected)
    assert not verify_signature(secret, body + b" ", expected)
    assert not verify_signature(b"another secret", body, expected)
    assert not verify_signature(secret, body, expected.replace("sha256=", "sha1="))
    assert not verify_signature(secret, body, None)
    assert not verify_signature(secret, body, "")


def test_tags_follow_tag_format_and_forks_never_deploy() -> None:
    assert tag_for("{sha}", SHA) == SHA
    assert tag_for("{short_sha}", SHA) == "3f2a9c1"
    catalog = one_service_catalog(("on: push", "on: workflow_run\n          workflow: CI"))
    decision = route(catalog, "workflow_run", workflow_run_payload(SHA), "d1")
    assert isinstance(decision, Deploys) and decision.push.trigger == "workflow CI"
    fork = workflow_run_payload(SHA)
    fork["workflow_run"]["head_repository"]["full_name"] = "mallory/api"
    ignored = route(catalog, "workflow_run", fork, "d2")
    assert isinstance(ignored, Ignored) and "a fork" in ignored.reason


# -- end to end --------------------------------------------------------------------------------


async def test_signed_push_to_main_deploys_staging(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    send = sender(http, hooked)
    status, answer = await send("push", push_payload(SHA, message="Speed up the <order> page\n\nbody"))
    assert status == 202, answer
    assert answer["targets"] == ["api staging"]

    parent = await final_thread_about(fake, SHA)
    assert "*Succeeded*" in parent.flat and "by octocat" in parent.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "*octocat* pushed `3f2a9c1` to `main` of acme/api: Speed up the &lt;order&gt; page" in replies
    assert "triggered by push" in replies
    assert "https://github.com/acme/api/compare/1111111...3f2a9c1e7b4d" in replies
    assert "body" not in replies.split("Speed up")[1].split("\n")[0]
    assert running_image(world).endswith(f"acme/api:{SHA}")
    assert "Schedule `nightly-report`: `api-staging:1` → `:2`" in replies  # as a manual deploy
    nightly = world.client("scheduler").get_schedule(Name="nightly-report", GroupName="staging")
    assert nightly["Target"]["EcsParameters"]["TaskDefinitionArn"].endswith("api-staging:2")
    record = await hooked.store.get(answer["operations"][0])
    assert record is not None
    assert (record.actor, record.trigger, record.state) == ("octocat", "push", "succeeded")


async def test_bad_missing_or_oversized_requests_deploy_nothing(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    send = sender(http, hooked)
    payload = push_payload(SHA)
    status, answer = await send("push", payload, secret="not the secret")
    assert (status, answer["error"]) == (401, "X-Hub-Signature-256 does not match")
    status, answer = await send("push", payload, headers={"X-Hub-Signature-256": ""})
    assert (status, answer["error"]) == (401, "X-Hub-Signature-256 missing")

    big = json.dumps(payload | {"padding": "x" * MAX_BODY_BYTES}).encode()
    status, _ = await send("push", None, body=big)
    assert status == 413

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the bytes read decide
        for start_at in range(0, len(big), 1 << 20):
            yield big[start_at : start_at + (1 << 20)]

    url = f"http://127.0.0.1:{hooked.port}/github/webhook"
    headers = signed_headers("push", big, SECRET)
    async with http.post(url, data=chunked(), headers=headers) as answer_:
        assert answer_.status == 413

    status, answer = await send("push", None, body=b"{not json")
    assert (status, answer["error"][:24]) == (400, "body is not valid JSON: ")

    hooked.operations.accepting = False
    status, _ = await send("push", payload)
    assert status == 503
    hooked.operations.accepting = True

    # No secret configured: every webhook is refused, signed or not.
    unset = hooked.settings.model_copy(update={"github_webhook_secret": None})
    hook = webhook_handler(
        unset,
        catalog=hooked.catalog,
        deliveries=hooked.store,
        deployer=hooked.deployer,
        accepting=lambda: hooked.operations.accepting,
    )
    server = TestServer(build_web_app(hooked.healthy, hook))
    await server.start_server()
    try:
        status, answer = await send("push", payload, url=str(server.make_url("/github/webhook")))
        assert (status, answer["error"]) == (401, "GITHUB_WEBHOOK_SECRET is not set; webhooks are refused")
    finally:
        await server.close()

    assert hooked.operations.in_flight() == 0
    assert parents(fake, STAGING) == []
    assert world.calls()["ecs:UpdateService"] == 0


async def test_the_same_delivery_twice_deploys_once(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    send = sender(http, hooked)
    delivery = str(uuid.uuid4())
    payload = push_payload(SandboxWorld.EXAMPLE_SHAS[1])
    answers = await asyncio.gather(
        send("push", payload, delivery=delivery), send("push", payload, delivery=delivery)
    )
    assert sorted(status for status, _ in answers) == [200, 202]
    duplicate = next(answer for status, answer in answers if status == 200)
    assert duplicate["reason"] == f"duplicate delivery {delivery}"

    parent = await final_thread_about(fake, SandboxWorld.EXAMPLE_SHAS[1])
    assert "*Succeeded*" in parent.flat
    status, answer = await send("push", payload, delivery=delivery)  # a manual redelivery, later
    assert (status, answer["status"]) == (200, "ignored")
    await hooked.idle()
    assert len(parents(fake, STAGING)) == 1
    assert len(revisions(world, "api-staging")) == 2


async def test_deletions_tags_unmapped_refs_and_skip_markers_never_deploy(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    send = sender(http, hooked)
    cases = {
        "deleted; deletions never deploy": push_payload(SHA, deleted=True),
        "tag push (refs/tags/v1.2.0)": push_payload(SHA, ref="refs/tags/v1.2.0"),
        "no environment auto-deploys pushes to feature/x of acme/api": push_payload(SHA, branch="feature/x"),
        "no environment auto-deploys pushes to main of acme/web": push_payload(SHA, repo="acme/web"),
        "the head commit says [skip deploy]": push_payload(SHA, message="Docs only [skip deploy]"),
    }
    for expected, payload in cases.items():
        status, answer = await send("push", payload)
        assert status == 200 and answer["status"] == "ignored", answer
        assert expected in answer["reason"]

    status, answer = await send("ping", PING)
    assert status == 200 and answer["reason"].startswith("pong")
    status, answer = await send("issues", {"action": "opened"})
    assert status == 200 and "not one Tugboat acts on" in answer["reason"]

    await hooked.idle()
    assert parents(fake, STAGING) == []
    assert world.calls()["ecs:UpdateService"] == 0
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0


async def test_deploy_waits_for_the_image_then_ships_it(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    sha = new_sha()
    status, _ = await sender(http, hooked)("push", push_payload(sha))
    assert status == 202
    parent = await wait_for(lambda: thread_about(fake, sha), what="the thread")
    await thread_text(fake, parent, must_contain="Waiting for image")
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0

    world.push_image("acme/api", sha)
    final = await final_thread_about(fake, sha)
    assert "*Succeeded*" in final.flat
    assert running_image(world).endswith(f"acme/api:{sha}")


async def test_image_that_never_appears_fails_the_thread_with_the_reason(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    catalog = one_service_catalog(("image_wait: 900", "image_wait: 1"))
    async with running(fake, catalog, tmp_path / "t.db", github_webhook_secret=SecretStr(SECRET)) as tugboat:
        sha = new_sha()
        status, answer = await sender(http, tugboat)("push", push_payload(sha))
        assert status == 202
        final = await final_thread_about(fake, sha)
        assert "*Failed*" in final.flat
        assert f"Image tag `{sha}` did not appear in ECR repository `acme/api` within 1 s" in final.flat
        record = await tugboat.store.get(answer["operations"][0])
        assert record is not None and record.state == "failed"
        assert world.calls()["ecs:RegisterTaskDefinition"] == 0


async def test_latest_push_wins(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    send = sender(http, hooked)
    shas = [new_sha() for _ in range(3)]
    for sha in shas:
        status, _ = await send("push", push_payload(sha, message=f"Commit {sha[:7]}"))
        assert status == 202

    for older, newer in itertools.pairwise(shas):
        skipped = await final_thread_about(fake, older)
        assert "*Failed*" in skipped.flat and "Succeeded" not in skipped.flat
        assert f"Skipped: superseded by {newer[:7]}." in skipped.flat
    for sha in shas:
        world.push_image("acme/api", sha)

    winner = await final_thread_about(fake, shas[2])
    assert "*Succeeded*" in winner.flat
    await hooked.idle()
    assert running_image(world).endswith(f"acme/api:{shas[2]}")
    assert len(revisions(world, "api-staging")) == 2
    assert world.calls()["ecs:UpdateService"] == 1


async def test_auto_deploy_queues_behind_a_manual_deploy(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging v2", user="U0DEV")
    await wait_for(lambda: hooked.operations.in_flight() == 1, what="the manual deploy")
    sha = SandboxWorld.EXAMPLE_SHAS[2]
    status, _ = await sender(http, hooked)("push", push_payload(sha))
    assert status == 202

    auto = await wait_for(lambda: thread_about(fake, sha), what="the auto-deploy thread")
    await thread_text(fake, auto, must_contain="Queued behind the running deploy of `v2`")
    final = await final_thread_about(fake, sha)
    assert "*Succeeded*" in final.flat

    def manual_when_final() -> object:  # its last edit may still be on its way to Slack
        manual = next(m for m in parents(fake, STAGING) if "v2" in m.flat)
        return manual if is_final(manual) else None

    await wait_for(manual_when_final, what="the manual deploy's final state")
    manual = next(m for m in parents(fake, STAGING) if "v2" in m.flat)
    assert "*Succeeded*" in manual.flat
    assert running_image(world).endswith(f"acme/api:{sha}")
    assert len(revisions(world, "api-staging")) == 3


async def test_locked_environment_skips_with_one_line(
    hooked: Tugboat, http: aiohttp.ClientSession, fake: FakeSlack, world: SandboxWorld
) -> None:
    await hooked.store.lock(Lock("api", "staging", "U0ONCALL", "incident 42", time.time()))
    status, _ = await sender(http, hooked)("push", push_payload(SHA))
    assert status == 202
    line = await wait_for(
        lambda: next((m for m in fake.channel_messages(STAGING) if ":lock:" in m.flat), None),
        what="the lock line",
    )
    assert "Not auto-deploying `3f2a9c1`" in line.flat
    assert "locked by <@U0ONCALL>: incident 42" in line.flat
    await hooked.idle()
    assert parents(fake, STAGING) == [line]
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0


async def test_workflow_run_success_deploys_and_failure_does_not(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    catalog = one_service_catalog(("on: push", "on: workflow_run\n          workflow: CI"))
    async with running(fake, catalog, tmp_path / "t.db", github_webhook_secret=SecretStr(SECRET)) as tugboat:
        send = sender(http, tugboat)
        sha = SandboxWorld.EXAMPLE_SHAS[1]
        status, answer = await send("push", push_payload(sha))
        assert status == 200 and "after its workflow succeeds" in answer["reason"]
        status, answer = await send("workflow_run", workflow_run_payload(sha, conclusion="failure"))
        assert status == 200 and "concluded failure" in answer["reason"]
        status, answer = await send("workflow_run", workflow_run_payload(sha, workflow="Lint"))
        assert status == 200 and "after workflow Lint" in answer["reason"]
        status, answer = await send("workflow_run", workflow_run_payload(sha, action="in_progress"))
        assert status == 200
        await tugboat.idle()
        assert parents(fake, STAGING) == []

        status, answer = await send("workflow_run", workflow_run_payload(sha))
        assert status == 202, answer
        final = await final_thread_about(fake, sha)
        assert "*Succeeded*" in final.flat
        replies = await thread_text(fake, final, must_contain="is live")
        assert "triggered by workflow CI" in replies
        record = await tugboat.store.get(answer["operations"][0])
        assert record is not None and record.trigger == "workflow CI"
        assert running_image(world).endswith(f"acme/api:{sha}")
