"""The bot under load: resident memory and slash-command ack latency, at 0, 20 and 100 in flight.

The bot runs as `tugboat serve` in a child process (tests/faults/process.py: BotProcess), as
in production: VmRSS from /proc/<pid>/status is the bot's alone, and the world (moto, the
rollout simulator) and the fake Slack, here in this process, take none of its CPU. One bot
climbs a staircase of loads: at each step enough `/deploy` commands are sent to bring the
number of deploys rolling out (counted by the world's server: `UpdateService` calls) up to
the load; then the RSS is sampled and 200 `/tugboat help` commands measure the ack latency
(`bench/ack_latency.py: ack_latencies`). Rollouts take 300 s, so none ends during the climb.

Targets (issue #7): RSS < 150 MB and ack p99 < 100 ms with 100 deploys in flight.

    .venv/bin/python bench/memory.py [--loads 0,20,100] [--commands 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ack_latency import ack_latencies
from bench.api_calls import finished
from bench.harness import fleet_yaml, percentile, summary_ms, world_and_slack
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.faults.process import BotProcess

ROLLOUT_SECONDS = 300.0
RAMP_TIMEOUT_S = 400.0


def proc_status_kb(pid: int, field: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} not in /proc/{pid}/status")


async def sample_rss(pid: int, seconds: float, every: float = 0.5) -> list[int]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(proc_status_kb(pid, "VmRSS"))
        await asyncio.sleep(every)
    return samples


async def climb_to(world: SandboxWorld, fake: FakeSlack, sent: int, load: int) -> float:
    """Send deploys `sent`..`load`-1; wait until all `load` are rolling out. Returns the seconds."""
    began = time.monotonic()
    for i in range(sent, load):
        fake.slash_command("/deploy", f"svc{i} prod v2", user="U0DEPLOYER", channel="C0DEPLOY")
    await wait_for(
        lambda: world.calls()["ecs:UpdateService"] >= load, timeout=RAMP_TIMEOUT_S, what=f"{load} rolling out"
    )
    return time.monotonic() - began


async def bot_under_load(loads: list[int], commands: int) -> dict[str, Any]:
    services = max([*loads, 1])
    steps: list[dict[str, Any]] = []
    with world_and_slack(services, ROLLOUT_SECONDS) as (world, fake), tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "fleet.yml"
        catalog.write_text(fleet_yaml(services))
        bot = BotProcess(world, fake, catalog, f"sqlite:///{tmp}/bench.db", Path(tmp) / "bot.log")
        try:
            pid = (await bot.up(fake, timeout=60)).pid
            await asyncio.sleep(2)  # let start-up settle
            sent = 0
            for load in sorted(loads):
                ramp = await climb_to(world, fake, sent, load)
                sent = max(sent, load)
                await asyncio.sleep(2 if load else 0)  # a watcher round or two on the new load
                rss = await sample_rss(pid, 3)
                latencies = await ack_latencies(fake, commands) if commands else []
                ms = [x * 1000 for x in latencies]
                step: dict[str, Any] = {
                    "in_flight": load,
                    "ramp_s": ramp,
                    "rss_mb": max(rss) / 1024,
                    "rss_kb": rss,
                    "finished": finished(fake, services),
                }
                if ms:
                    step.update(p50_ms=percentile(ms, 50), p99_ms=percentile(ms, 99), max_ms=max(ms))
                steps.append(step)
                print(
                    f"{load:>3} deploys in flight (reached in {ramp:.0f} s): RSS {step['rss_mb']:.1f} MB"
                    + (f"; ack {summary_ms(latencies)}" if ms else ""),
                    flush=True,
                )
            peak = proc_status_kb(pid, "VmHWM")
        finally:
            bot.stop()
    return {
        "steps": steps,
        "idle_rss_mb": steps[0]["rss_mb"],
        "busy_rss_mb": steps[-1]["rss_mb"],
        "busy_in_flight": steps[-1]["in_flight"],
        "peak_rss_mb": peak / 1024,
        "rollout_seconds": ROLLOUT_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", default="0,20,100", help="deploys in flight, comma-separated")
    parser.add_argument("--commands", type=int, default=200, help="ack-timed commands per load (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(bot_under_load([int(n) for n in args.loads.split(",")], args.commands))
    print(
        f"bot RSS: idle {result['idle_rss_mb']:.1f} MB; with {result['busy_in_flight']} deploys in flight"
        f" {result['busy_rss_mb']:.1f} MB; VmHWM {result['peak_rss_mb']:.1f} MB",
        flush=True,
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
