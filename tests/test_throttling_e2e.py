"""Fifty deploys at once within ECS's real buckets, half of each spent by other tools: none fails.

The world enforces ECS's token buckets (`SandboxWorld.enforce_buckets`) and the bot paces by
them at its default share; both refill 20 times faster than ECS so that the 80 s the
task-definition bucket imposes on 50 registrations take 4 s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.aws.ecs_limits import ECS_LIMITS
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests import slackview as view
from tests.conftest import FAST, fleet_catalog, running, seed_fleet

DEPLOYS = 50
SPEED = 20.0


async def test_fifty_deploys_in_half_of_each_bucket_all_succeed(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed_fleet(world, DEPLOYS)
    fake.rate_limits_enabled = False  # Slack's limits have tests of their own; this one is ECS's
    world.enforce_buckets(prespent=0.5, speed=SPEED)
    tuning = dataclasses.replace(FAST, ecs_limits=ECS_LIMITS.sped_up(SPEED))
    async with running(fake, fleet_catalog(DEPLOYS, None), tmp_path / "t.db", tuning=tuning) as tugboat:
        for i in range(DEPLOYS):
            fake.slash_command("/deploy", f"svc{i} prod v2", user="U0DEV")
        await wait_for(lambda: world.calls()["ecs:UpdateService"] >= DEPLOYS, timeout=60, what="50 updates")
        await wait_for(lambda: tugboat.operations.in_flight() == 0, timeout=60, what="every deploy ended")

    finals = [view.parents(fake, f"C0FLEET{i}")[-1].flat for i in range(DEPLOYS)]
    failed = [i for i, text in enumerate(finals) if "*Succeeded*" not in text]
    assert failed == [], f"deploys of {[f'svc{i}' for i in failed]} did not succeed"
    ecs = world.client("ecs")
    for start in range(0, DEPLOYS, 10):
        names = [f"svc{i}" for i in range(start, start + 10)]
        for service in ecs.describe_services(cluster="fleet", services=names)["services"]:
            assert service["taskDefinition"].endswith(f"{service['serviceName']}:2")
    throttled = sum(world.throttled().values())
    assert throttled <= DEPLOYS // 10, f"ECS throttled {throttled} calls: {world.throttled()}"
    assert fake.block_kit_violations == []
