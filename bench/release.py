"""ECS calls and Slack messages: one release of 3 services, against the same 3 services deployed
one after another as 3 separate deploys (what a team did before releases).

Counted from the outside: AWS calls by the world's server, Slack calls by the fake Slack. The
bot runs with production pacing (`PRODUCTION_TUNING`), so the watcher's batching shows: one
describe_services covers every service of the release.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_catalog, fleet_channel, running_bot, world_and_slack
from bot.domain.catalog import Catalog, parse_catalog
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.conftest import IMAGE
from tests.slackview import is_final, parents

SERVICES = 3
RELEASE_CHANNEL = "C0RELEASE"
SLACK_MESSAGES = ("chat.postMessage", "chat.update")


@dataclass(frozen=True)
class Cost:
    ecs_calls: int
    describe_services: int
    slack_messages: int
    seconds: float
    succeeded: int

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def release_catalog(count: int) -> Catalog:
    """One app whose environment deploys svc0…svc{count-1} of cluster `fleet` as one release."""
    services = "\n".join(f"          - name: svc{i}" for i in range(count))
    return parse_catalog(
        f"""apps:
  app:
    container: web
    image: {IMAGE}
    environments:
      prod:
        cluster: fleet
        channel: {RELEASE_CHANNEL}
        timeout: 900
        services:
{services}
""",
        "release.yml",
    )


async def _finished(fake: FakeSlack, channel: str, count: int) -> None:
    await wait_for(
        lambda: len([m for m in parents(fake, channel) if is_final(m)]) >= count,
        timeout=900,
        what=f"{count} final thread(s) in {channel}",
    )


def _cost(world: SandboxWorld, fake: FakeSlack, slack_before: int, began: float, succeeded: int) -> Cost:
    calls = world.calls()
    return Cost(
        ecs_calls=sum(n for op, n in calls.items() if op.startswith("ecs:")),
        describe_services=calls["ecs:DescribeServices"],
        slack_messages=sum(c.method in SLACK_MESSAGES for c in fake.calls[slack_before:]),
        seconds=time.monotonic() - began,
        succeeded=succeeded,
    )


async def separate(world: SandboxWorld, fake: FakeSlack, tag: str) -> Cost:
    """`/deploy svcI prod TAG` for each service, the next once the last has finished."""
    async with running_bot(fake, fleet_catalog(SERVICES)) as bot:
        world.reset_calls()
        slack_before, began = len(fake.calls), time.monotonic()
        for i in range(SERVICES):
            fake.slash_command("/deploy", f"svc{i} prod {tag}", user="U0BENCH", channel="C0BENCH")
            await _finished(fake, fleet_channel(i), 1)
        await bot.idle()
        ok = sum("*Succeeded*" in parents(fake, fleet_channel(i))[-1].flat for i in range(SERVICES))
        return _cost(world, fake, slack_before, began, ok)


async def release(world: SandboxWorld, fake: FakeSlack, tag: str) -> Cost:
    """`/deploy app prod TAG`: the same services as one release."""
    async with running_bot(fake, release_catalog(SERVICES)) as bot:
        world.reset_calls()
        slack_before, began = len(fake.calls), time.monotonic()
        fake.slash_command("/deploy", f"app prod {tag}", user="U0BENCH", channel="C0BENCH")
        await _finished(fake, RELEASE_CHANNEL, 1)
        await bot.idle()
        ok = SERVICES if "*Succeeded*" in parents(fake, RELEASE_CHANNEL)[-1].flat else 0
        return _cost(world, fake, slack_before, began, ok)


async def measure(rollout_seconds: float) -> dict[str, object]:
    with world_and_slack(SERVICES, rollout_seconds) as (world, fake):
        world.push_image("acme/api", "v3")
        apart = await separate(world, fake, "v2")
        together = await release(world, fake, "v3")
    print(f"{SERVICES} services, {rollout_seconds:.0f} s rollouts, production pacing:")
    for label, cost in ((f"{SERVICES} separate deploys", apart), ("one release", together)):
        print(
            f"  {label:>20}: {cost.ecs_calls} ECS calls ({cost.describe_services} describe_services),"
            f" {cost.slack_messages} Slack messages, {cost.seconds:.1f} s,"
            f" {cost.succeeded} services succeeded"
        )
    ratio = together.ecs_calls / apart.ecs_calls if apart.ecs_calls else float("nan")
    per_deploy = apart.slack_messages / SERVICES
    slack_ratio = together.slack_messages / per_deploy if per_deploy else float("nan")
    print(f"  ECS calls, release / separate: {ratio:.2f}")
    print(
        f"  Slack messages, release / one single-service deploy: {slack_ratio:.2f}"
        f" ({together.slack_messages} vs {per_deploy:.1f}; the budget is 1.5)"
    )
    return {
        "services": SERVICES,
        "rollout_seconds": rollout_seconds,
        "separate": apart.to_dict(),
        "release": together.to_dict(),
        "ecs_ratio": ratio,
        "slack_ratio_to_one_deploy": slack_ratio,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rollout-seconds", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = await measure(args.rollout_seconds)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
