"""Tugboat against fabfuel's ecs-deploy: the same N deploys, the same world, the same rollout.

For each N (default 1, 10 and 50): one world with N services (moto over HTTP plus the rollout
simulator, `rollout_seconds` per rollout). First Tugboat (in process, production Tuning)
deploys all N through the fake Slack; then N `ecs deploy fleet svcI -t TAG` processes run at
once, each with its own polling defaults (`--sleep-time 1`). Every AWS call is counted by the
world's server per operation. Detection delay is measured from the moment the simulator
marked a deployment COMPLETED to the moment the tool said so: Tugboat's "Succeeded" edit of
the thread's parent message landing at the fake Slack, or the ecs-deploy process exiting.

    .venv/bin/python bench/peer.py [--counts 1,10,50] [--rollout-seconds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_calls import deploy_wave
from bench.harness import fleet_catalog, percentile, running_bot, world_and_slack
from bot.sandbox.world import SandboxWorld

CLUSTER = "fleet"
PEER_TIMEOUT_S = 600


def default_ecs_deploy() -> str:
    """The `ecs` script next to this interpreter (the bench extra), else a `.venv-peer`."""
    here = Path(sys.executable).parent / "ecs"
    if here.exists():
        return str(here)
    peer = Path(__file__).resolve().parent.parent / ".venv-peer" / "bin" / "ecs"
    return str(peer)


@dataclass
class Side:
    """One tool's run: calls counted by the world, and when each deploy was reported done."""

    tool: str
    count: int
    began: float
    calls: dict[str, int]
    call_log: list[tuple[float, str]]
    reported_at: dict[int, float]
    completed_at: dict[int, float]
    failures: list[str]
    extra: dict[str, Any] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        ecs = {op: n for op, n in sorted(self.calls.items()) if op.startswith("ecs:")}
        total_ecs, total_aws = sum(ecs.values()), sum(self.calls.values())
        delays = [
            self.reported_at[i] - self.completed_at[i]
            for i in sorted(self.reported_at)
            if i in self.completed_at
        ]
        end = max(self.reported_at.values(), default=self.began)
        per_second = _per_second([t for t, op in self.call_log if op.startswith("ecs:")], self.began, end)
        updates = [t for t, op in self.call_log if op == "ecs:UpdateService"]
        watching_from = max(updates, default=self.began) - self.began
        watching = per_second[math.ceil(watching_from) :]
        return {
            "tool": self.tool,
            "deploys": self.count,
            "succeeded": len(delays),
            "failures": self.failures,
            "ecs_calls": total_ecs,
            "aws_calls": total_aws,
            "ecs_per_deploy": total_ecs / self.count,
            "aws_per_deploy": total_aws / self.count,
            "by_operation": dict(sorted(self.calls.items())),
            "detection_s": delays,
            "detection_median_s": statistics.median(delays) if delays else None,
            "detection_p90_s": percentile(delays, 90) if delays else None,
            "detection_max_s": max(delays) if delays else None,
            "run_s": end - self.began,
            "ecs_per_second": per_second,
            "max_ecs_per_second": max(per_second, default=0),
            "max_ecs_per_second_watching": max(watching, default=0),
            "watching_from_s": watching_from,
            **self.extra,
        }


def _per_second(times: list[float], began: float, end: float) -> list[int]:
    """ECS calls in each whole second from `began`, up to the second holding `end`."""
    buckets = [0] * (int(end - began) + 1)
    for moment in times:
        second = int(moment - began)
        if 0 <= second < len(buckets):
            buckets[second] += 1
    return buckets


def completion_times(world: SandboxWorld, count: int) -> dict[int, float]:
    """When the simulator completed each service's current PRIMARY deployment.

    Read after the run's figures were taken (these describe calls are the bench's own).
    """
    ecs = world.client("ecs")
    out: dict[int, float] = {}
    for first in range(0, count, 10):
        names = [f"svc{i}" for i in range(first, min(count, first + 10))]
        for service in ecs.describe_services(cluster=CLUSTER, services=names)["services"]:
            primary = service["deployments"][0]
            done = world.simulator.completed_at(CLUSTER, service["serviceName"], primary["id"])
            if done is not None and primary.get("rolloutState") == "COMPLETED":
                out[int(service["serviceName"][3:])] = done
    return out


async def tugboat_side(world: SandboxWorld, fake: Any, count: int, tag: str) -> Side:
    async with running_bot(fake, fleet_catalog(count)) as bot:
        wave = await deploy_wave(world, fake, bot, count, tag)
    failures = [f"svc{i}: no Succeeded edit" for i in range(count) if i not in wave.reported_at]
    side = Side("tugboat", count, wave.began, dict(wave.calls), wave.call_log, wave.reported_at, {}, failures)
    side.completed_at = completion_times(world, count)
    slack = [c.method for c in wave.slack_calls]
    side.extra = {
        "slack_calls": len(slack),
        "slack_per_deploy": len(slack) / count,
        "slack_by_method": {m: slack.count(m) for m in sorted(set(slack))},
    }
    return side


async def ecs_deploy_side(world: SandboxWorld, count: int, tag: str, ecs_bin: str, logs: Path) -> Side:
    """N `ecs deploy` processes at once, each with its defaults (1 s between checks)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(world.env())  # AWS_ENDPOINT_URL: boto3 >= 1.28 sends every call to the world
    reported: dict[int, float] = {}
    failures: list[str] = []

    async def one(i: int) -> None:
        log = logs / f"ecs-deploy-svc{i}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                ecs_bin,
                "deploy",
                CLUSTER,
                f"svc{i}",
                "-t",
                tag,
                "--timeout",
                str(PEER_TIMEOUT_S),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
            )
            code = await process.wait()
        exited = time.monotonic()
        if code == 0:
            reported[i] = exited
        else:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            failures.append(f"svc{i}: exit {code}: {' | '.join(tail)}")

    world.reset_calls()
    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(count)))
    calls, log = dict(world.calls()), world.call_log()
    side = Side("ecs-deploy", count, began, calls, log, reported, {}, failures)
    side.completed_at = completion_times(world, count)
    return side


async def compare(count: int, rollout_seconds: float, ecs_bin: str) -> dict[str, Any]:
    with world_and_slack(count, rollout_seconds) as (world, fake), tempfile.TemporaryDirectory() as tmp:
        world.push_image("acme/api", "v3")
        tugboat = await tugboat_side(world, fake, count, "v2")
        peer = await ecs_deploy_side(world, count, "v3", ecs_bin, Path(tmp))
    ours, theirs = tugboat.figures(), peer.figures()
    result = {
        "deploys": count,
        "rollout_seconds": rollout_seconds,
        "tugboat": ours,
        "ecs_deploy": theirs,
        "ratio": {
            "ecs_calls": _ratio(theirs["ecs_per_deploy"], ours["ecs_per_deploy"]),
            "aws_calls": _ratio(theirs["aws_per_deploy"], ours["aws_per_deploy"]),
            "detection_median": _ratio(ours["detection_median_s"], theirs["detection_median_s"]),
        },
    }
    _print(result)
    return result


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def _print(result: dict[str, Any]) -> None:
    n = result["deploys"]
    print(f"N = {n} concurrent deploys, {result['rollout_seconds']:.0f} s rollouts:", flush=True)
    for key in ("tugboat", "ecs_deploy"):
        side = result[key]
        median = side["detection_median_s"]
        print(
            f"  {side['tool']:>10}: {side['succeeded']}/{n} ok"
            f" · ECS calls/deploy {side['ecs_per_deploy']:.1f}"
            f" · AWS calls/deploy {side['aws_per_deploy']:.1f}"
            f" · detection median {_seconds(median)} max {_seconds(side['detection_max_s'])}"
            f" · max ECS calls/s {side['max_ecs_per_second']}"
            f" (watching: {side['max_ecs_per_second_watching']}) · {side['run_s']:.0f} s",
            flush=True,
        )
        for failure in side["failures"][:5]:
            print(f"      {failure}", flush=True)
    ratio = result["ratio"]
    print(
        f"  ecs-deploy ÷ Tugboat: ECS calls {ratio['ecs_calls']:.1f}, AWS calls {ratio['aws_calls']:.1f};"
        f" Slack calls/deploy (Tugboat) {result['tugboat']['slack_per_deploy']:.1f}",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--rollout-seconds", type=float, default=60.0)
    parser.add_argument("--ecs-deploy", default=default_ecs_deploy(), help="the `ecs` script")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = [await compare(int(n), args.rollout_seconds, args.ecs_deploy) for n in args.counts.split(",")]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
