"""The shared RolloutWatcher against the simulated ECS: how many calls ECS sees, and what it reads."""

from __future__ import annotations

import asyncio
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
