"""Fifty deploys at once inside ECS's real token buckets, half of each spent by other tools.

The world enforces ECS's buckets at ECS's own rates (`SandboxWorld.enforce_buckets`, 50%
pre-spent: half the burst gone, half of every refill taken). Measured from the outside: deploys
that failed (threads in the fake Slack), calls ECS throttled (the world's server), and seconds
from the first `/deploy` to the last `UpdateService`, against the lower bound the buckets impose
(the slowest bucket: 50 `RegisterTaskDefinition` from 10 tokens left, refilled at 0.5 a second).
The same wave then runs with the old pacing, one 4 calls/s budget for every ECS call.

Target (issue 16): no deploy fails; the last UpdateService within 1.25x the lower bound.

    .venv/bin/python bench/throttling.py [--deploys 50] [--prespent 0.5] [--no-old] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_calls import deploy_wave
from bench.harness import PRODUCTION_TUNING, fleet_catalog, running_bot, world_and_slack
from bot.runtime import Tuning
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.world import ECS_BUCKETS, SandboxWorld

ROLLOUT_SECONDS = 5.0
# What each deploy spends of each bucket: one describe of its task definition, one registration,
# one update (its describes of the service are batched ten to a call with the others').
PER_DEPLOY = {"task definition read": 1, "task definition modify": 1, "service modify": 1}
OLD_PACING = Tuning(http_host="127.0.0.1", ecs_limits=None, ecs_calls_per_s=4.0)


def lower_bound_s(deploys: int, prespent: float) -> tuple[float, str]:
    """The least time the buckets allow for every deploy's calls, and the bucket that sets it."""
    bounds = {}
    for name, per_deploy in PER_DEPLOY.items():
        burst, refill, _ = ECS_BUCKETS[name]
        left = 1.0 - prespent
        bounds[name] = max(0.0, (deploys * per_deploy - burst * left) / (refill * left))
    slowest = max(bounds, key=lambda name: bounds[name])
    return bounds[slowest], slowest


async def wave(
    world: SandboxWorld, fake: FakeSlack, deploys: int, prespent: float, tuning: Tuning, tag: str
) -> dict[str, Any]:
    if tag != "v2":  # a second wave: the harness pushed v1 and v2, and Slack starts empty again
        world.push_image("acme/api", tag)
        fake.reset()
        fake.rate_limits_enabled = False
    async with running_bot(fake, fleet_catalog(deploys), tuning) as bot:
        world.enforce_buckets(prespent=prespent)
        result = await deploy_wave(world, fake, bot, deploys, tag)
        throttled = world.throttled()
        world.stop_enforcing_buckets()
    updates = [t - result.began for t, op in result.call_log if op == "ecs:UpdateService"]
    registers = [t - result.began for t, op in result.call_log if op == "ecs:RegisterTaskDefinition"]
    succeeded = len(result.reported_at)
    return {
        "succeeded": succeeded,
        "failed": deploys - succeeded,
        "last_update_s": max(updates) if updates else float("nan"),
        "last_register_s": max(registers) if registers else float("nan"),
        "throttled": dict(throttled),
        "throttled_total": sum(throttled.values()),
        "ecs_calls": result.ecs_calls,
        "elapsed_s": result.elapsed,
    }


def report(name: str, figures: dict[str, Any], bound: float) -> None:
    ratio = figures["last_update_s"] / bound if bound else float("nan")
    figures["ratio_to_bound"] = ratio
    print(
        f"{name}: {figures['failed']} of {figures['succeeded'] + figures['failed']} deploys failed;"
        f" last UpdateService at {figures['last_update_s']:.1f} s = {ratio:.2f}x the lower bound;"
        f" ECS throttled {figures['throttled_total']} calls"
        + (
            f" ({', '.join(f'{op}={n}' for op, n in sorted(figures['throttled'].items()))})"
            if figures["throttled"]
            else ""
        )
        + f"; {figures['ecs_calls']} ECS calls; every thread final after {figures['elapsed_s']:.1f} s",
        flush=True,
    )


async def measure(deploys: int, prespent: float, old: bool) -> dict[str, Any]:
    bound, bucket = lower_bound_s(deploys, prespent)
    print(
        f"{deploys} deploys at once, {prespent:.0%} of every ECS bucket spent by other tools;"
        f" lower bound for the last UpdateService: {bound:.1f} s ({bucket} bucket)",
        flush=True,
    )
    result: dict[str, Any] = {
        "deploys": deploys,
        "prespent": prespent,
        "lower_bound_s": bound,
        "bucket": bucket,
    }
    with world_and_slack(deploys, ROLLOUT_SECONDS) as (world, fake):
        result["buckets"] = await wave(world, fake, deploys, prespent, PRODUCTION_TUNING, "v2")
        report("per-bucket budgets (share 0.5)", result["buckets"], bound)
        if old:
            result["old_4_per_s"] = await wave(world, fake, deploys, prespent, OLD_PACING, "v3")
            report("old single 4 calls/s budget", result["old_4_per_s"], bound)
    figures = result["buckets"]
    ok = figures["failed"] == 0 and figures["ratio_to_bound"] <= 1.25
    print(f"target (no deploy fails, last UpdateService <= 1.25x the bound): {'holds' if ok else 'MISSED'}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=50)
    parser.add_argument("--prespent", type=float, default=0.5)
    parser.add_argument("--no-old", action="store_true", help="skip the old single-budget comparison")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.deploys, args.prespent, not args.no_old))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
