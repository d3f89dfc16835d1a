"""The benchmark world: the real bot, in process, against moto + the rollout simulator and the fake Slack.

Every figure is read from the outside: AWS calls are counted by the world's server, acks
and Slack calls by the fake Slack. Nothing in the bot is instrumented for benchmarks.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from bot.domain.catalog import Catalog, parse_catalog
from bot.runtime import Tugboat, Tuning
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings
from tests.conftest import IMAGE

PRODUCTION_TUNING = Tuning(http_host="127.0.0.1")


def fleet_yaml(count: int, timeout: int = 900) -> str:
    """`count` apps, each on its own service in cluster `fleet`, each with its own channel."""
    apps = "\n".join(
        f"  svc{i}:\n    container: web\n    image: {IMAGE}\n    environments:\n"
        f"      prod: {{cluster: fleet, service: svc{i}, channel: {fleet_channel(i)}, timeout: {timeout}}}"
        for i in range(count)
    )
    return f"apps:\n{apps}\n"


def fleet_channel(index: int) -> str:
    return f"C0FLEET{index}"


def fleet_catalog(count: int) -> Catalog:
    return parse_catalog(fleet_yaml(count), "fleet.yml")


@contextlib.contextmanager
def world_and_slack(services: int, rollout_seconds: float) -> Iterator[tuple[SandboxWorld, FakeSlack]]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    world = SandboxWorld(rollout_seconds=rollout_seconds, tick=0.1)
    world.start()
    fake = FakeSlack()
    try:
        for i in range(services):
            world.seed_service("fleet", f"svc{i}", f"svc{i}", f"{IMAGE}:v1")
        world.push_image("acme/api", "v1")
        world.push_image("acme/api", "v2")
        os.environ.update(world.env())
        fake.rate_limits_enabled = False
        fake.start()
        world.reset_calls()
        yield world, fake
    finally:
        fake.stop()
        world.stop()


@contextlib.asynccontextmanager
async def running_bot(
    fake: FakeSlack, catalog: Catalog, tuning: Tuning = PRODUCTION_TUNING, *, events_queue: str | None = None
) -> AsyncIterator[Tugboat]:
    with tempfile.TemporaryDirectory() as state:
        settings = Settings(
            slack_bot_token=fake.bot_token,
            slack_app_token=fake.app_token,
            slack_api_url=fake.api_url,
            tugboat_state=f"sqlite:///{Path(state) / 'bench.db'}",
            tugboat_events_queue=events_queue,
            port=0,
        )
        bot = Tugboat(settings, catalog, tuning=tuning)
        opened = fake.connections_opened
        await bot.start()
        await wait_for(lambda: fake.connections_opened > opened, timeout=10, what="socket")
        try:
            yield bot
        finally:
            await bot.stop()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):.1f} ms · p99 {percentile(ms, 99):.1f} ms · max {max(ms):.1f} ms"
        f" · mean {statistics.fmean(ms):.1f} ms (n={len(ms)})"
    )
