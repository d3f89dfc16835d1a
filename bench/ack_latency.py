"""Slash-command ack latency, as Slack measures it, with 0, 20 and 100 deploys in flight.

Prints p50/p99/max per load. Target (issues #2, #7): p99 < 100 ms with 20 and 100 in flight.
The bot runs as `tugboat serve` in a child process and climbs the loads one after the other
(`bench/memory.py: bot_under_load`, which also reads its RSS at each load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.sandbox.fake_slack import FakeSlack, wait_for


async def ack_latencies(fake: FakeSlack, count: int) -> list[float]:
    """Send `count` slash commands, one every 20 ms, and read each ack's latency off the fake."""
    envelopes = []
    for _ in range(count):
        envelopes.append(fake.slash_command("/tugboat", "help", user="U0BENCH", channel="C0BENCH"))
        await asyncio.sleep(0.02)
    acks = [await wait_for(lambda e=e: fake.ack_for(e), timeout=10, what="ack") for e in envelopes]
    return [a.latency_s for a in acks]


async def main() -> None:
    from bench.memory import bot_under_load  # memory.py imports ack_latencies from here

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loads", default="0,20,100", help="deploys in flight, comma-separated")
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = await bot_under_load([int(n) for n in args.loads.split(",")], args.commands)
    if args.json:
        keys = ("in_flight", "p50_ms", "p99_ms", "max_ms")
        args.json.write_text(json.dumps([{k: s[k] for k in keys} for s in result["steps"]], indent=2))


if __name__ == "__main__":
    asyncio.run(main())
