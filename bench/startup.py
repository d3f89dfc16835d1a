"""Start-up time: from spawning `tugboat serve` to its /healthz answering 200.

/healthz is 200 only once the Socket Mode connection is up, so this covers imports, the
catalog, the state store, Slack's auth.test and the socket. Each run is a fresh child process
(BotProcess: `python -m bot`, the same entry point as the `tugboat serve` script) with a fresh
state file, against the sandbox world and the fake Slack. Target (issue #7): < 3 s.

    .venv/bin/python bench/startup.py [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_yaml, world_and_slack
from tests.faults.process import BotProcess

SERVICES = 10


async def time_to_healthy(bot: BotProcess, timeout: float = 30.0) -> float:
    began = time.monotonic()
    bot.start()
    assert bot.process is not None
    while time.monotonic() - began < timeout:
        if bot.process.poll() is not None:
            raise RuntimeError(f"tugboat serve exited with {bot.process.returncode}; see {bot.log}")
        if bot.healthy():
            return time.monotonic() - began
        await asyncio.sleep(0.01)
    raise TimeoutError(f"/healthz not 200 within {timeout} s")


async def measure(runs: int) -> dict[str, Any]:
    times = []
    with world_and_slack(SERVICES, rollout_seconds=10) as (world, fake), tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "fleet.yml"
        catalog.write_text(fleet_yaml(SERVICES))
        for run in range(runs):
            state = f"sqlite:///{tmp}/run{run}.db"
            bot = BotProcess(world, fake, catalog, state, Path(tmp) / f"bot{run}.log")
            try:
                times.append(await time_to_healthy(bot))
            finally:
                bot.stop()
    result = {
        "runs": runs,
        "seconds": times,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "min_s": min(times),
    }
    print(
        f"tugboat serve healthy after {result['median_s']:.2f} s (median of {runs};"
        f" min {result['min_s']:.2f} s, max {result['max_s']:.2f} s)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
