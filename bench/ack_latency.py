"""Slash-command ack latency, as Slack measures it, with 0, 20 and 100 deploys in flight.

Prints p50/p99/max per load. Target (issues #2, #7): p99 < 100 ms with 20 and 100 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_catalog, percentile, running_bot, summary_ms, world_and_slack
from bot.sandbox.fake_slack import FakeSlack, wait_for


async def ack_latencies(fake: FakeSlack, count: int) -> list[float]:
    """Send `count` slash commands, one every 20 ms, and read each ack's latency off the fake."""
    envelopes = []
    for _ in range(count):
        envelopes.append(fake.slash_command("/tugboat", "help", user="U0BENCH", channel="C0BENCH"))
        await asyncio.sleep(0.02)
    acks = [await wait_for(lambda e=e: fake.ack_for(e), timeout=10, what="ack") for e in envelopes]
    return [a.latency_s for a in acks]


async def measure(in_flight: int, commands: int) -> dict[str, float]:
    services = max(in_flight, 1)
    with world_and_slack(services, rollout_seconds=120) as (_, fake):
        async with running_bot(fake, fleet_catalog(services)) as bot:
            for i in range(in_flight):
                fake.slash_command("/deploy", f"svc{i} prod v2", user="U0DEPLOYER", channel="C0DEPLOY")
            await wait_for(lambda: bot.runner.in_flight() >= in_flight, timeout=120, what="deploys in flight")
            latencies = await ack_latencies(fake, commands)
            still = bot.runner.in_flight()
    print(f"{in_flight:>3} deploys in flight ({still} still rolling at the end): {summary_ms(latencies)}")
    ms = [x * 1000 for x in latencies]
    return {
        "in_flight": in_flight,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", default="0,20,100", help="deploys in flight, comma-separated")
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = [await measure(int(n), args.commands) for n in args.loads.split(",")]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
