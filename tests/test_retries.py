"""One retry layer per dependency: the call metrics count real HTTP requests, retries included.

AWS faults are injected server-side by the sandbox world and Slack's by FakeSlack, so the
servers' own tallies are the truth the counters are held to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

from bot.aws.ecs import EcsGateway
from bot.domain.aws import AwsError, ServiceRef
from bot.sandbox.fake_slack import ApiCall, FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.api import slack_clients

REGION = "us-east-1"
STAGING = ServiceRef(REGION, "staging", "api", None)
ROLE = "arn:aws:iam::123456789012:role/tugboat-deployer"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def aws_calls(operation: str, code: str) -> float:
    return sample("tugboat_aws_calls_total", operation=operation, code=code)


def slack_calls(method: str, status: str) -> float:
    return sample("tugboat_slack_calls_total", method=method, status=status)


@pytest.fixture
def gateway() -> Iterator[EcsGateway]:
    """Short backoff so k retries take milliseconds; the rule itself is tested on its own."""
    ecs = EcsGateway(budget_s=10, backoff_base_s=0.01, backoff_cap_s=0.05)
    try:
        yield ecs
    finally:
        ecs.close()


# -- AWS -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
async def test_a_throttled_ecs_call_counts_each_http_request(
    world: SandboxWorld, gateway: EcsGateway, k: int
) -> None:
    """botocore retries nothing underneath: k throttles and a success are k+1 requests, k+1 counts."""
    throttled = aws_calls("list_task_definitions", "ThrottlingException")
    ok = aws_calls("list_task_definitions", "OK")
    retries = sample("tugboat_aws_retries_total", operation="list_task_definitions")
    world.inject_error("ecs:ListTaskDefinitions", "ThrottlingException", "Rate exceeded", times=k)

    revisions = await gateway.list_revisions(STAGING, "api-staging")

    assert revisions and revisions[0].endswith("task-definition/api-staging:1")
    assert world.injected()["ecs:ListTaskDefinitions:ThrottlingException"] == k
    assert world.calls()["ecs:ListTaskDefinitions"] == k + 1
    assert aws_calls("list_task_definitions", "ThrottlingException") - throttled == k
    assert aws_calls("list_task_definitions", "OK") - ok == 1
    assert sample("tugboat_aws_retries_total", operation="list_task_definitions") - retries == k


async def test_without_retry_a_throttled_call_is_one_request(
    world: SandboxWorld, gateway: EcsGateway
) -> None:
    """The watcher's polls (retry=False) back off in the watcher, not in botocore."""
    throttled = aws_calls("describe_services", "ThrottlingException")
    world.inject_error("ecs:DescribeServices", "ThrottlingException", "Rate exceeded", times=5)

    with pytest.raises(AwsError) as raised:
        await gateway.describe_services([STAGING], retry=False)

    assert raised.value.throttled
    assert world.calls()["ecs:DescribeServices"] == 1
    assert aws_calls("describe_services", "ThrottlingException") - throttled == 1


async def test_a_throttled_assume_role_is_counted_as_itself_and_retried_once(
    world: SandboxWorld, gateway: EcsGateway
) -> None:
    """The STS client retries nothing either; the ECS call it held up was never sent or counted."""
    ref = ServiceRef(REGION, "staging", "api", ROLE)
    assumed = {code: aws_calls("assume_role", code) for code in ("Throttling", "OK")}
    listed = {code: aws_calls("list_task_definitions", code) for code in ("Throttling", "OK")}
    world.inject_error("sts:AssumeRole", "Throttling", "Rate exceeded", times=1)

    assert await gateway.list_revisions(ref, "api-staging")

    assert world.calls()["sts:AssumeRole"] == 2
    assert world.calls()["ecs:ListTaskDefinitions"] == 1
    assert {code: aws_calls("assume_role", code) - n for code, n in assumed.items()} == {
        "Throttling": 1,
        "OK": 1,
    }
    assert {code: aws_calls("list_task_definitions", code) - n for code, n in listed.items()} == {
        "Throttling": 0,
        "OK": 1,
    }


async def test_each_dropped_connection_is_one_attempt_and_one_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing listens on port 1: every attempt fails to connect, and each is counted once."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    gateway = EcsGateway(budget_s=0.5, backoff_base_s=0.02, backoff_cap_s=0.05)
    sent: list[str] = []

    def count(**_: Any) -> None:
        sent.append("sent")

    gateway._client("ecs", REGION, None).meta.events.register("before-send.ecs", count)
    before = aws_calls("list_task_definitions", "ConnectionError")
    try:
        with pytest.raises(AwsError, match="ConnectionError"):
            await gateway.list_revisions(STAGING, "api-staging")
    finally:
        gateway.close()
    assert len(sent) > 1, "the gateway should have retried within its budget"
    assert aws_calls("list_task_definitions", "ConnectionError") - before == len(sent)


# -- Slack -----------------------------------------------------------------------------


def posts(fake: FakeSlack) -> list[ApiCall]:
    return [c for c in fake.calls if c.method == "chat.postMessage"]


def test_only_bolts_client_retries_in_slack_sdk(fake: FakeSlack) -> None:
    bolt, api = slack_clients(fake.bot_token, fake.api_url)
    assert api.client.retry_handlers == []
    assert any(isinstance(h, AsyncRateLimitErrorRetryHandler) for h in bolt.retry_handlers)
    assert api.client is not bolt


@pytest.mark.parametrize("n", [1, 2])
async def test_a_post_through_n_429s_makes_n_plus_one_http_calls(fake: FakeSlack, n: int) -> None:
    _, api = slack_clients(fake.bot_token, fake.api_url)
    limited = slack_calls("chat.postMessage", "429")
    ok = slack_calls("chat.postMessage", "ok")
    fake.fail_every_nth_call(1, status=429, retry_after=1, methods=["chat.postMessage"])

    posting = asyncio.create_task(api.post("C0RETRY", "hello"))
    # Each 429 asks for a second's wait: ample time to lift the fault after the n-th.
    await wait_for(lambda: len(posts(fake)) >= n, timeout=10, what=f"{n} rate-limited posts")
    fake.clear_faults()
    ts = await asyncio.wait_for(posting, timeout=10)

    assert [c.status for c in posts(fake)] == [429] * n + [200]
    assert fake.message("C0RETRY", ts) is not None
    assert slack_calls("chat.postMessage", "429") - limited == n
    assert slack_calls("chat.postMessage", "ok") - ok == 1


async def test_a_post_through_5xx_answers_retries_once_per_answer(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.slack.api.full_jitter", lambda *_, **__: 0.5)
    _, api = slack_clients(fake.bot_token, fake.api_url)
    failed = slack_calls("chat.update", "503")
    ts = await api.post("C0RETRY", "first")
    fake.fail_every_nth_call(1, status=503, methods=["chat.update"])

    updating = asyncio.create_task(api.update("C0RETRY", ts, "second", []))
    await wait_for(lambda: sum(c.method == "chat.update" for c in fake.calls) >= 2, what="two 503s")
    fake.clear_faults()
    await asyncio.wait_for(updating, timeout=10)

    assert [c.status for c in fake.calls if c.method == "chat.update"] == [503, 503, 200]
    assert slack_calls("chat.update", "503") - failed == 2


async def test_bolts_client_retries_a_429_in_slack_sdk_once_per_answer(fake: FakeSlack) -> None:
    """Bolt's calls (auth.test) have slack_sdk's handlers as their one layer, honouring Retry-After."""
    bolt, _ = slack_clients(fake.bot_token, fake.api_url)
    before = len([c for c in fake.calls if c.method == "auth.test"])
    fake.fail_every_nth_call(2, status=429, retry_after=1, methods=["auth.test"])
    await bolt.auth_test()  # the first call succeeds: the fault hits every second one
    answer = await bolt.auth_test()
    assert answer["ok"]
    statuses = [c.status for c in fake.calls if c.method == "auth.test"][before:]
    assert statuses == [200, 429, 200]
