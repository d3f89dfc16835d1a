"""Watching by ECS events against polling, next to fabfuel's ecs-deploy: calls and detection delay.

For each rollout length (default 10 s and 60 s): one world with N services (default 10), and
three waves of N concurrent deploys on it: Tugboat with TUGBOAT_EVENTS_QUEUE (the simulator
publishes ECS's events to the world's EventBridge, whose rule feeds an SQS queue), Tugboat
polling only, then N `ecs deploy` processes. ECS calls are counted by the world's server;
detection delay runs from the simulator marking a deployment COMPLETED (the moment its
SERVICE_DEPLOYMENT_COMPLETED event is made) to the tool saying so (Tugboat's "Succeeded" edit
landing at the fake Slack, or the ecs-deploy process exiting). Tugboat runs with production
timings (`PollTiming()`: a 30 s safety net while events flow).

    .venv/bin/python bench/events.py [--count 10] [--rollouts 10,60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_calls import deploy_wave
from bench.harness import fleet_catalog, running_bot, world_and_slack
from bench.peer import Side, completion_times, default_ecs_deploy, ecs_deploy_side
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.world import SandboxWorld

# Targets (issue 16), checked against the figures this prints.
EVENTS_MAX_ECS_PER_DEPLOY = 4.5
EVENTS_MAX_MEDIAN_S = 0.3
EVENTS_MAX_WORST_S = 1.0
POLLING_MAX_WORST_S = 2.0
POLLING_MIN_FEWER_CALLS = 8.0  # than ecs-deploy, at the shortest rollout
TIMES = "\u00d7"  # the multiplication sign


async def tugboat_side(world: SandboxWorld, fake: FakeSlack, count: int, tag: str, queue: str | None) -> Side:
    fake.reset()  # each wave is judged by its own threads
    fake.rate_limits_enabled = False
    async with running_bot(fake, fleet_catalog(count), events_queue=queue) as bot:
        wave = await deploy_wave(world, fake, bot, count, tag)
    name = "tugboat+events" if queue else "tugboat polling"
    failures = [f"svc{i}: no Succeeded edit" for i in range(count) if i not in wave.reported_at]
    side = Side(name, count, wave.began, dict(wave.calls), wave.call_log, wave.reported_at, {}, failures)
    side.completed_at = completion_times(world, count)
    return side


async def measure(count: int, rollout_seconds: float, ecs_bin: str) -> dict[str, Any]:
    with world_and_slack(count, rollout_seconds) as (world, fake), tempfile.TemporaryDirectory() as tmp:
        for tag in ("v3", "v4"):
            world.push_image("acme/api", tag)
        queue = world.enable_events()
        events = await tugboat_side(world, fake, count, "v2", queue)
        polling = await tugboat_side(world, fake, count, "v3", None)
        peer = await ecs_deploy_side(world, count, "v4", ecs_bin, Path(tmp))
    result = {
        "deploys": count,
        "rollout_seconds": rollout_seconds,
        "events": events.figures(),
        "polling": polling.figures(),
        "ecs_deploy": peer.figures(),
    }
    _print(result)
    return result


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _print(result: dict[str, Any]) -> None:
    n, rollout = result["deploys"], result["rollout_seconds"]
    print(f"{n} concurrent deploys, {rollout:.0f} s rollouts:", flush=True)
    for key in ("events", "polling", "ecs_deploy"):
        side = result[key]
        print(
            f"  {side['tool']:>16}: {side['succeeded']}/{n} ok"
            f" · ECS calls/deploy {side['ecs_per_deploy']:.1f}"
            f" · detection median {_seconds(side['detection_median_s'])}"
            f" worst {_seconds(side['detection_max_s'])}"
            f" · by operation {_ecs_only(side['by_operation'])}",
            flush=True,
        )
        for failure in side["failures"][:5]:
            print(f"      {failure}", flush=True)


def _ecs_only(by_operation: dict[str, int]) -> str:
    return ", ".join(f"{op[4:]}={n}" for op, n in by_operation.items() if op.startswith("ecs:"))


def verdicts(results: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """Each target, measured: (what was measured against what, met)."""
    rows: list[tuple[str, bool]] = []
    shortest = min(r["rollout_seconds"] for r in results)
    for r in results:
        at = f"{r['rollout_seconds']:.0f} s"
        ev, poll, peer = r["events"], r["polling"], r["ecs_deploy"]
        ok = ev["succeeded"] == poll["succeeded"] == r["deploys"]
        rows.append((f"{at}: every deploy succeeded (events and polling)", ok))
        calls = ev["ecs_per_deploy"]
        rows.append(
            (
                f"{at}, events: {calls:.2f} ECS calls/deploy ≤ {EVENTS_MAX_ECS_PER_DEPLOY}",
                calls <= EVENTS_MAX_ECS_PER_DEPLOY,
            )
        )
        median, worst = ev["detection_median_s"] or 99.0, ev["detection_max_s"] or 99.0
        rows.append(
            (
                f"{at}, events: detection median {median:.2f} s ≤ {EVENTS_MAX_MEDIAN_S} s",
                median <= EVENTS_MAX_MEDIAN_S,
            )
        )
        rows.append(
            (
                f"{at}, events: detection worst {worst:.2f} s ≤ {EVENTS_MAX_WORST_S} s",
                worst <= EVENTS_MAX_WORST_S,
            )
        )
        median, theirs = poll["detection_median_s"] or 99.0, peer["detection_median_s"] or 0.0
        rows.append(
            (
                f"{at}, polling: detection median {median:.2f} s ≤ ecs-deploy's {theirs:.2f} s",
                median <= theirs,
            )
        )
        worst = poll["detection_max_s"] or 99.0
        rows.append(
            (
                f"{at}, polling: detection worst {worst:.2f} s ≤ {POLLING_MAX_WORST_S} s",
                worst <= POLLING_MAX_WORST_S,
            )
        )
        if r["rollout_seconds"] == shortest:
            fewer = peer["ecs_per_deploy"] / poll["ecs_per_deploy"]
            target = POLLING_MIN_FEWER_CALLS
            rows.append(
                (
                    f"{at}, polling: {fewer:.1f}{TIMES} fewer ECS calls than ecs-deploy"
                    f" (≥ {target:.0f}{TIMES})",
                    fewer >= target,
                )
            )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--rollouts", default="10,60", help="rollout lengths in seconds")
    parser.add_argument("--ecs-deploy", default=default_ecs_deploy(), help="the `ecs` script")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [
        await measure(args.count, float(seconds), args.ecs_deploy) for seconds in args.rollouts.split(",")
    ]
    print("targets:", flush=True)
    for text, ok in verdicts(results):
        print(f"  {'✓' if ok else '✗'} {text}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
