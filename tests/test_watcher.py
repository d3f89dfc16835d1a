"""The shared RolloutWatcher against the simulated ECS: how many calls ECS sees, and what it reads."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from bot.aws.ecs import EcsGateway
from bot.aws.watcher import PollTiming, RolloutWatcher, rollout_phase
from bot.domain.aws import ServiceNotFound, ServiceRef
from bot.sandbox.world import SandboxWorld
from tests.conftest import IMAGE, seed_fleet

REGION = "us-east-1"


@pytest.fixture
async def watcher() -> AsyncIterator[RolloutWatcher]:
    ecs = EcsGateway()
    watcher = RolloutWatcher(ecs, PollTiming.brisk(0.2))
    watcher.start()
    try:
        yield watcher
    finally:
        await watcher.stop()
        ecs.close()


def fleet(count: int) -> list[ServiceRef]:
    return [ServiceRef(REGION, "fleet", f"svc{i}", None) for i in range(count)]


async def test_ten_deploys_reading_ten_services_cost_ecs_one_call(
    world: SandboxWorld, watcher: RolloutWatcher
) -> None:
    seed_fleet(world, 10)
    snapshots = await asyncio.gather(*(watcher.describe(ref) for ref in fleet(10)))
    assert [s.ref.service for s in snapshots] == [f"svc{i}" for i in range(10)]
    assert all(s.task_definition.endswith(f"svc{i}:1") for i, s in enumerate(snapshots))
    assert world.calls()["ecs:DescribeServices"] == 1


async def test_describing_a_missing_service_names_it(world: SandboxWorld, watcher: RolloutWatcher) -> None:
    with pytest.raises(ServiceNotFound, match="service nope is not active in cluster staging"):
        await watcher.describe(ServiceRef(REGION, "staging", "nope", None))


async def test_a_rollout_moves_from_launching_through_draining_to_finishing(
    world: SandboxWorld, watcher: RolloutWatcher
) -> None:
    """The phases the watcher paces itself by, read off a real (simulated) rolling deployment."""
    seed_fleet(world, 1)
    world.simulator.rollout_seconds = 3
    ref = fleet(1)[0]
    ecs = world.client("ecs")
    definition = ecs.describe_task_definition(taskDefinition="svc0:1")["taskDefinition"]
    containers = [{**c, "image": f"{IMAGE}:v2"} for c in definition["containerDefinitions"]]
    arn = ecs.register_task_definition(family="svc0", containerDefinitions=containers)["taskDefinition"][
        "taskDefinitionArn"
    ]
    ecs.update_service(cluster="fleet", service="svc0", taskDefinition=arn)
    phases: list[str] = []
    async with watcher.watch(ref) as subscription:
        while True:
            snapshot = await subscription.next(timeout=10)
            assert snapshot is not None, f"no snapshot; phases so far {phases}"
            phase = rollout_phase(snapshot)
            if not phases or phases[-1] != phase:
                phases.append(phase)
            if len(snapshot.deployments) == 1 and snapshot.deployments[0].rollout_state == "COMPLETED":
                break
    assert phases[0] == "launching"
    assert phases[-1] == "finishing"
    assert phases == sorted(phases, key=["launching", "draining", "finishing"].index), phases


# -- one ECS limiter: the watcher shares the gateway's CallBudget with every other caller --


async def test_the_watcher_gets_its_turn_while_other_callers_keep_the_budget_busy(
    world: SandboxWorld,
) -> None:
    """Four callers always queued at 10 calls/s: a describe still comes within a few turns."""
    seed_fleet(world, 1)
    ref = fleet(1)[0]
    ecs = EcsGateway(ecs_calls_per_s=10)
    await ecs.ecs(ref, "list_task_definitions", familyPrefix="svc0")  # makes the client
    watcher = RolloutWatcher(ecs, PollTiming.brisk(0.2))
    watcher.start()
    stop = asyncio.Event()

    async def busy() -> None:
        while not stop.is_set():
            await ecs.ecs(ref, "list_task_definitions", familyPrefix="svc0")

    others = [asyncio.create_task(busy()) for _ in range(4)]
    try:
        await asyncio.sleep(0.5)
        started = time.monotonic()
        snapshot = await watcher.describe(ref, timeout=5)
        waited = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.gather(*others)
        await watcher.stop()
        ecs.close()
    assert snapshot.ref == ref
    assert waited < 1.5, f"the watcher waited {waited:.2f} s behind four callers at 10 calls/s"
    assert world.calls()["ecs:ListTaskDefinitions"] >= 5


async def test_a_busy_watcher_leaves_other_callers_their_turn(world: SandboxWorld) -> None:
    """Twelve clusters due every 0.2 s want 60 describes/s of a 10/s budget; others still get in."""
    admin = world.client("ecs")
    refs = []
    for i in range(12):
        admin.create_cluster(clusterName=f"c{i}")
        refs.append(ServiceRef(REGION, f"c{i}", "svc", None))
    seed_fleet(world, 1)
    ecs = EcsGateway(ecs_calls_per_s=10)
    await ecs.ecs(fleet(1)[0], "list_task_definitions", familyPrefix="svc0")  # makes the client
    watcher = RolloutWatcher(ecs, PollTiming.brisk(0.2))
    watcher.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for ref in refs:
                await stack.enter_async_context(watcher.watch(ref))
            await asyncio.sleep(0.5)  # the watcher now has a describe queued at all times
            before = world.calls()["ecs:DescribeServices"]
            await asyncio.sleep(1.0)
            polled = world.calls()["ecs:DescribeServices"] - before
            started = time.monotonic()
            await ecs.ecs(fleet(1)[0], "list_task_definitions", familyPrefix="svc0")
            waited = time.monotonic() - started
    finally:
        await watcher.stop()
        ecs.close()
    assert polled >= 5, f"the watcher made {polled} describes in a second of a 10/s budget"
    assert waited < 1.0, f"a deploy's call waited {waited:.2f} s behind the watcher at 10 calls/s"
