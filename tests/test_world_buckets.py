"""The sandbox world throttles ECS calls by ECS's token buckets, when asked, as ECS would."""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.sandbox.fake_slack import wait_for
from bot.sandbox.world import SandboxWorld

ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})
TASK = {"family": "probe", "containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128}]}


def client(world: SandboxWorld) -> Any:
    return world.client("ecs", config=ONE_ATTEMPT)


def registered(ecs: Any, times: int) -> list[str]:
    """Register `times` task definitions; 'ok' or the error code of each answer."""
    answers = []
    for _ in range(times):
        try:
            ecs.register_task_definition(**TASK)
            answers.append("ok")
        except ClientError as exc:
            assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            answers.append(exc.response["Error"]["Code"])
    return answers


def test_without_enforcement_nothing_is_throttled(world: SandboxWorld) -> None:
    assert registered(client(world), 25) == ["ok"] * 25
    assert world.throttled() == {}


def test_a_bucket_allows_its_burst_then_throttles_like_ecs(world: SandboxWorld) -> None:
    world.enforce_buckets()
    ecs = client(world)
    answers = registered(ecs, 21)
    assert answers[:20] == ["ok"] * 20
    assert answers[20] == "ThrottlingException"
    assert world.throttled() == {"ecs:RegisterTaskDefinition": 1}
    assert world.calls()["ecs:RegisterTaskDefinition"] == 21, "a throttled call is still a call"
    # Other buckets are their own: describes and task-definition reads still go through.
    assert ecs.describe_services(cluster="staging", services=["api"])["services"]
    assert ecs.describe_task_definition(taskDefinition="probe:1")["taskDefinition"]


async def test_other_tools_spend_a_share_of_the_burst_and_of_the_refill(world: SandboxWorld) -> None:
    """Half pre-spent: 10 registrations at once, then one every 2 s (here 20x faster: 0.1 s)."""
    world.enforce_buckets(prespent=0.5, speed=20)
    ecs = client(world)
    started = time.monotonic()
    answers = registered(ecs, 11)
    assert answers == ["ok"] * 10 + ["ThrottlingException"]
    throttled_at = time.monotonic()
    # Refill share: 1/s x 20 x (1 - 0.5) = 10 tokens/s: the burst's 10 tokens plus refills
    # make the 11th call possible no sooner than 0.1 s after the first, however slow the calls.
    await wait_for(lambda: registered(ecs, 1) == ["ok"], timeout=5, what="a refilled token")
    assert time.monotonic() - started >= 0.095
    assert time.monotonic() - throttled_at < 1.0


def test_reset_turns_enforcement_off(world: SandboxWorld) -> None:
    world.enforce_buckets(prespent=0.9)
    assert "ThrottlingException" in registered(client(world), 3)
    world.reset()
    world.seed_example()
    assert registered(client(world), 25) == ["ok"] * 25


def test_prespent_must_leave_something(world: SandboxWorld) -> None:
    with pytest.raises(ValueError, match="prespent"):
        world.enforce_buckets(prespent=1.0)
