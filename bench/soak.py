"""Soak: many deploys over ~10 minutes with ECS throttling, Slack 429s and two restarts.

The bot runs as a real `tugboat serve` child process (so it can be SIGTERMed and SIGKILLed
and its RSS read from /proc). At the end it prints how many threads ended in a wrong or
missing final state (target: 0): every image can start, so any failure is wrong, except a
deploy the SIGKILL caught before update_service, which must end failed and not re-run. RSS is
read at the start and end of each of the bot's three lives (it must not grow).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import fleet_channel, fleet_yaml, world_and_slack
from bench.memory import proc_status_kb
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from tests.faults.process import BotProcess
from tests.slackview import is_final

INTERRUPTED = "Tugboat restarted before the service was changed"
"""A deploy the SIGKILL caught before update_service: failed, as it must be (issue #6), not wrong."""


def threads(fake: FakeSlack, services: int) -> list[Message]:
    return [
        m
        for i in range(services)
        for m in fake.channel_messages(fleet_channel(i))
        if m.user == "U0TUGBOAT" and m.text.startswith("Deploy ")
    ]


def refusals(fake: FakeSlack) -> list[str]:
    return [e.text for e in fake.ephemerals(user="U0SOAK") if not e.text.startswith("Deploying ")]


async def all_answered(fake: FakeSlack, services: int, sent: int) -> None:
    """Wait (a bounded while) until each command sent has a thread or a refusal.

    A restart then catches deploys in flight, not envelopes still on the wire, and the run
    does not end before the last command's thread exists. One never answered is counted.
    """
    with contextlib.suppress(TimeoutError):
        await wait_for(
            lambda: len(threads(fake, services)) + len(refusals(fake)) >= sent,
            timeout=30,
            what="every command answered",
        )


def idle_services(fake: FakeSlack, services: int) -> list[int]:
    idle = []
    for i in range(services):
        mine = [m for m in fake.channel_messages(fleet_channel(i)) if m.user == "U0TUGBOAT"]
        if not mine or is_final(mine[-1]):
            idle.append(i)
    return idle


async def soak(deploys: int, interval: float, services: int) -> dict[str, object]:
    rng = random.Random(7)
    world_slack = world_and_slack(services, rollout_seconds=4.0)
    with world_slack as (world, fake), tempfile.TemporaryDirectory() as tmp:
        world.push_image("acme/api", "v3")
        catalog = Path(tmp) / "fleet.yml"
        catalog.write_text(fleet_yaml(services, timeout=300))
        bot = BotProcess(world, fake, catalog, f"sqlite:///{tmp}/soak.db", Path(tmp) / "bot.log", lease_s=15)
        await bot.up(fake, timeout=60)
        lives: list[dict[str, float]] = [{"start_mb": proc_status_kb(bot.pid, "VmRSS") / 1024}]
        world.inject_error("ecs:*", "ThrottlingException", "Rate exceeded", probability=0.1)
        fake.fail_every_nth_call(9, status=429, retry_after=1)
        restarts = {deploys // 3: "SIGTERM", 2 * deploys // 3: "SIGKILL"}
        sent = 0
        began = time.monotonic()
        while sent < deploys:
            if sent in restarts:
                kind = restarts.pop(sent)
                await all_answered(fake, services, sent)
                lives[-1]["end_mb"] = proc_status_kb(bot.pid, "VmRSS") / 1024
                if kind == "SIGTERM":
                    bot.terminate()
                else:
                    bot.kill()
                await bot.up(fake, timeout=60)
                lives.append({"start_mb": proc_status_kb(bot.pid, "VmRSS") / 1024})
                print(f"  restarted with {kind} after {sent} deploys", flush=True)
            free = idle_services(fake, services)
            if free:
                target = rng.choice(free)
                fake.slash_command(
                    "/deploy", f"svc{target} prod {rng.choice(['v1', 'v2', 'v3'])}", user="U0SOAK"
                )
                sent += 1
            await asyncio.sleep(interval)
        await all_answered(fake, services, sent)
        await wait_for(lambda: not set(range(services)) - set(idle_services(fake, services)), timeout=600)
        world.clear_errors()
        fake.clear_faults()
        elapsed = time.monotonic() - began
        finals = threads(fake, services)
        refused = refusals(fake)
        lives[-1]["end_mb"] = proc_status_kb(bot.pid, "VmRSS") / 1024
        bot.stop()
    succeeded = sum("*Succeeded*" in m.flat for m in finals)
    failed = sum("*Failed*" in m.flat for m in finals)
    interrupted = sum(INTERRUPTED in m.flat and "*Failed*" in m.flat for m in finals)
    missing = len(finals) - succeeded - failed
    unanswered = sent - len(finals) - len(refused)
    for text in refused:
        print("  refused:", text[:200], flush=True)
    for message in finals:
        if "*Succeeded*" not in message.flat:
            print("  not a success:", message.flat.replace("\n", " | ")[:300], flush=True)
    result = {
        "deploys_sent": sent,
        "threads": len(finals),
        "succeeded": succeeded,
        "failed": failed,
        "interrupted_before_update": interrupted,
        "missing_final_state": missing,
        "refused_with_reason": len(refused),
        "unanswered": unanswered,
        "wrong_or_missing": failed - interrupted + missing + max(0, unanswered),
        "minutes": round(elapsed / 60, 1),
        "rss_start_mb": round(lives[0]["start_mb"], 1),
        "rss_end_mb": round(lives[-1]["end_mb"], 1),
        "rss_by_process_mb": [[round(life["start_mb"], 1), round(life["end_mb"], 1)] for life in lives],
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=2))
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deploys", type=int, default=200)
    parser.add_argument("--interval", type=float, default=2.8, help="seconds between deploy commands")
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = await soak(args.deploys, args.interval, args.services)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
