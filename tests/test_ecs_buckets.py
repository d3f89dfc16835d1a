"""Tugboat's per-bucket ECS budgets: a slow bucket holds back no other, waiters go in turn,
and a throttle slows that bucket down until it recovers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from bot.aws.buckets import BucketBudget, EcsBuckets
from bot.aws.ecs import EcsGateway
from bot.aws.ecs_limits import ECS_LIMITS, BucketLimit
from bot.domain.aws import ServiceRef
from bot.sandbox.fake_slack import wait_for
from bot.sandbox.world import ECS_BUCKETS, SandboxWorld

REGION = "us-east-1"
STAGING = ServiceRef(REGION, "staging", "api", None)


class Clock:
    """A hand-moved clock, so refill and recovery are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def paced() -> Iterator[EcsGateway]:
    """The gateway as `tugboat serve` builds it: half of each of ECS's real buckets."""
    ecs = EcsGateway(limits=ECS_LIMITS, share=0.5, backoff_base_s=0.01, backoff_cap_s=0.05)
    try:
        yield ecs
    finally:
        ecs.close()


def test_tugboat_paces_by_the_buckets_the_world_enforces() -> None:
    """Each action of the SPEC's table draws on the bucket, burst and refill ECS gives it."""
    for name, (burst, refill, actions) in ECS_BUCKETS.items():
        for action in actions:
            assert ECS_LIMITS.bucket_of(action) == name
            assert ECS_LIMITS.limit(name) == BucketLimit(burst, refill)
    assert ECS_LIMITS.bucket_of("register_task_definition") == "task definition modify"
    assert ECS_LIMITS.bucket_of("describe_service_deployments") == "other"


def test_the_share_scales_burst_and_refill_per_region_and_account() -> None:
    buckets = EcsBuckets(ECS_LIMITS, 0.5)
    register = buckets.budget(REGION, None, "register_task_definition")
    assert register.limit == BucketLimit(10, 0.5)
    assert buckets.budget(REGION, None, "deregister_task_definition") is register
    assert buckets.budget("eu-west-1", None, "register_task_definition") is not register
    other_account = "arn:aws:iam::210987654321:role/tugboat-deployer"
    assert buckets.budget(REGION, other_account, "register_task_definition") is not register


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    budget = BucketBudget(BucketLimit(3, 2), clock=clock)
    assert [budget.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.try_take() == pytest.approx(0.5)
    clock.now += 0.5
    assert budget.try_take() == 0.0


def test_a_throttle_halves_the_rate_once_per_episode_and_it_climbs_back() -> None:
    clock = Clock()
    budget = BucketBudget(BucketLimit(10, 10), recovery_s=10, clock=clock)
    sent = clock.now
    clock.now += 0.1
    budget.throttled(sent)
    assert budget.rate == pytest.approx(5)
    assert budget.try_take() > 0, "ECS said the bucket is empty"
    budget.throttled(sent)  # sent before the cut: the same episode
    assert budget.rate == pytest.approx(5)
    clock.now += 2.5
    assert budget.rate == pytest.approx(7.5)
    clock.now += 10
    assert budget.rate == pytest.approx(10)
    budget.throttled(clock.now)
    assert budget.rate == pytest.approx(5)


async def test_waiters_on_one_bucket_go_in_arrival_order() -> None:
    budget = BucketBudget(BucketLimit(1, 100))
    order: list[int] = []

    async def caller(i: int) -> None:
        await budget.take()
        order.append(i)

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(caller(i)))
        await asyncio.sleep(0)  # arrive one after another
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_queued_registrations_hold_back_no_describe(world: SandboxWorld, paced: EcsGateway) -> None:
    """Fifteen registrations (ten at once, then one every 2 s): status still answers at once."""
    ecs = world.client("ecs")
    spec = ecs.describe_task_definition(taskDefinition="api-staging:1")["taskDefinition"]
    register = {
        k: spec[k] for k in ("family", "containerDefinitions", "requiresCompatibilities", "networkMode")
    }
    await paced.describe_service(STAGING)  # makes the client
    queued = [asyncio.create_task(paced.register_task_definition(STAGING, register)) for _ in range(15)]
    try:
        await wait_for(lambda: world.calls()["ecs:RegisterTaskDefinition"] >= 10, timeout=10, what="burst")
        started = time.monotonic()
        snapshot = await paced.describe_service(STAGING)
        waited = time.monotonic() - started
        registered = world.calls()["ecs:RegisterTaskDefinition"]
    finally:
        for task in queued:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*queued)
    assert snapshot.ref == STAGING
    assert registered < 15, "the registrations should still be queued"
    assert waited < 0.5, f"a describe waited {waited:.2f} s behind task-definition registrations"


async def test_a_throttle_slows_its_bucket_and_the_call_still_succeeds(
    world: SandboxWorld, paced: EcsGateway
) -> None:
    world.inject_error("ecs:DescribeServices", "ThrottlingException", "Rate exceeded", times=1)
    assert paced.buckets is not None
    reads = paced.buckets.budget(REGION, None, "describe_services")
    writes = paced.buckets.budget(REGION, None, "update_service")

    snapshot = await paced.describe_service(STAGING)

    assert snapshot.ref == STAGING
    assert world.calls()["ecs:DescribeServices"] == 2
    assert reads.rate < reads.limit.refill_per_s, "the throttled bucket should have slowed down"
    assert writes.rate == writes.limit.refill_per_s, "another bucket should be untouched"
