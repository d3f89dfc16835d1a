"""A large estate: 500 services in 5 clusters. Start-up, `/ecs-status` and the Home tab.

`tugboat serve` runs as a child process (tests/faults/process.py: BotProcess) with production
pacing (half of each ECS bucket) and Slack's own rate limits in the fake. Measured from the
outside: seconds from spawning to /healthz 200; seconds from the slash command until every
service is in the channel (and until the first message), messages, blocks and section sizes;
seconds from opening the Home tab to its view; ECS calls (the world's server) for each; RSS.
Each is measured cold (nothing described in the last OVERVIEW_FRESH_S, the bucket full) and warm
(right after another look, which an overview may reuse).

Targets (issue 16): answers within 3 s with at most 60 ECS calls, within Slack's limits
(50 blocks a message, 100 a view, 3000 characters a section); start-up < 3 s; RSS < 150 MB.

    .venv/bin/python bench/estate.py [--runs 3] [--json out.json]     (--runs: start-ups)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.memory import proc_status_kb
from bench.startup import time_to_healthy
from bot.sandbox.blockkit import MAX_MESSAGE_BLOCKS, MAX_SECTION_TEXT, MAX_VIEW_BLOCKS
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.dispatch import OVERVIEW_FRESH_S
from tests.estate import APPS, CLUSTERS, estate_yaml, seed_estate
from tests.faults.process import BotProcess
from tests.slackview import parents

SERVICES = APPS * CLUSTERS
USER = "U0ONCALL"


def listed(text: str) -> int:
    return len(re.findall(r"\*app\d+ env\d+\*", text))


def section_sizes(blocks: list[Any] | None) -> list[int]:
    return [len(b["text"]["text"]) for b in blocks or [] if b.get("type") == "section"]


def ecs_calls(world: SandboxWorld) -> int:
    return sum(n for op, n in world.calls().items() if op.startswith("ecs:"))


async def overview(world: SandboxWorld, fake: FakeSlack, channel: str) -> dict[str, Any]:
    world.reset_calls()
    began = time.monotonic()
    fake.slash_command("/ecs-status", "", user=USER, channel=channel)
    first = await wait_for(lambda: parents(fake, channel), timeout=30, what="the first message")
    first_s = time.monotonic() - began

    def complete() -> list[Message] | None:
        found = parents(fake, channel)
        return found if sum(listed(m.flat) for m in found) >= SERVICES else None

    messages = await wait_for(complete, timeout=30, what="every service")
    last_s = time.monotonic() - began
    assert first
    return {
        "first_message_s": first_s,
        "answered_s": last_s,
        "messages": len(messages),
        "max_blocks": max(len(m.blocks or []) for m in messages),
        "max_section_chars": max(max(section_sizes(m.blocks), default=0) for m in messages),
        "ecs_calls": ecs_calls(world),
    }


async def home(world: SandboxWorld, fake: FakeSlack) -> dict[str, Any]:
    world.reset_calls()
    before = len(fake.views(USER))
    began = time.monotonic()
    fake.app_home_opened(USER)
    views = await wait_for(lambda: fake.views(USER)[before:], timeout=30, what="the home view")
    answered = time.monotonic() - began
    view = views[-1]
    return {
        "answered_s": answered,
        "blocks": len(view.blocks),
        "max_section_chars": max(section_sizes(view.blocks), default=0),
        "services_shown": listed(view.flat),
        "ecs_calls": ecs_calls(world),
    }


async def measure(runs: int) -> dict[str, Any]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    with SandboxWorld(rollout_seconds=10, tick=0.1) as world, FakeSlack() as fake:
        seed_estate(world)
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "estate.yml"
            catalog.write_text(estate_yaml())
            startups = []
            for run in range(runs):
                bot = BotProcess(
                    world, fake, catalog, f"sqlite:///{tmp}/s{run}.db", Path(tmp) / f"s{run}.log"
                )
                try:
                    startups.append(await time_to_healthy(bot))
                finally:
                    if run < runs - 1:
                        bot.stop()
            assert bot.process is not None
            try:
                await wait_for(lambda: fake.connection_count >= 1, timeout=10, what="the socket")
                cold = await overview(world, fake, "C0OPS0")
                warm = await overview(world, fake, "C0OPS1")
                warm_home = await home(world, fake)
                await asyncio.sleep(OVERVIEW_FRESH_S + 1)  # nothing recent left to reuse
                cold_home = await home(world, fake)
                rss_mb = proc_status_kb(bot.process.pid, "VmRSS") / 1024
                peak_mb = proc_status_kb(bot.process.pid, "VmHWM") / 1024
            finally:
                bot.stop()
        violations = fake.block_kit_violations
    result = {
        "services": SERVICES,
        "clusters": CLUSTERS,
        "startup_median_s": statistics.median(startups),
        "startup_s": startups,
        "overview": {"cold": cold, "warm": warm},
        "home": {"cold": cold_home, "warm": warm_home},
        "rss_mb": rss_mb,
        "peak_rss_mb": peak_mb,
        "block_kit_violations": violations,
    }
    print(f"{SERVICES} services in {CLUSTERS} clusters:")
    print(
        f"  start-up to /healthz 200: median {result['startup_median_s']:.2f} s (max {max(startups):.2f} s)"
    )
    for name, figures in (("cold", cold), ("warm", warm)):
        print(
            f"  /ecs-status, {name}: every service shown after {figures['answered_s']:.2f} s,"
            f" {figures['messages']} messages, at most {figures['max_blocks']} blocks (limit"
            f" {MAX_MESSAGE_BLOCKS}) and {figures['max_section_chars']} characters a section (limit"
            f" {MAX_SECTION_TEXT}), {figures['ecs_calls']} ECS calls"
        )
    for name, figures in (("cold", cold_home), ("warm", warm_home)):
        print(
            f"  Home tab, {name}: published after {figures['answered_s']:.2f} s, {figures['blocks']} blocks"
            f" (limit {MAX_VIEW_BLOCKS}), {figures['services_shown']} services shown,"
            f" {figures['ecs_calls']} ECS calls"
        )
    print(f"  RSS after: {rss_mb:.1f} MB (VmHWM {peak_mb:.1f} MB); Block Kit refusals: {len(violations)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(measure(args.runs))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
