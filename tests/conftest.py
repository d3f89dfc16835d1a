"""The test world: moto over HTTP with the rollout simulator, the fake Slack, and the real bot.

Nothing of ours is mocked: the bot talks to Slack through slack_sdk's Socket Mode client and
to AWS through boto3, exactly as in production.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.aws.watcher import PollTiming
from bot.domain.catalog import Catalog, parse_catalog
from bot.runtime import Tugboat, Tuning
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.terminal import one_service_example, sandbox_settings, seed_example_people
from bot.sandbox.world import SandboxWorld

EXAMPLE = Path(__file__).parent.parent / "bot" / "sandbox" / "example.yml"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"
# Rollouts in the test world take 0.75 s (ROLLOUT_SECONDS below): the bot looks every 0.15 s.
FAST = Tuning(
    poll=PollTiming.brisk(0.15),
    thread_interval_s=0.3,
    http_host="127.0.0.1",
    ecs_calls_per_s=0.0,
    ecs_limits=None,
)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one worker more than there are cores.

    Most of a test here is waiting, on simulated rollouts, Slack rate limits and bot processes
    starting, so a core is rarely busy for a whole test: the extra worker fills those gaps
    (on 2 cores, 3 workers take about two thirds of the time 2 do).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return cores + 1


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """slack-sdk reads HTTP(S)_PROXY but ignores NO_PROXY; everything here is on 127.0.0.1."""
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


# The world's knobs at the start of every test (a test may change them; the next reset restores).
ROLLOUT_SECONDS, TICK, TASK_SECONDS = 0.75, 0.05, 0.5


@pytest.fixture(scope="session")
def shared_world() -> Iterator[SandboxWorld]:
    """One moto server and rollout simulator per session (per xdist worker); `world` resets it."""
    with SandboxWorld(ROLLOUT_SECONDS, TICK, task_seconds=TASK_SECONDS) as world:
        yield world


def fresh_world(
    world: SandboxWorld,
    rollout_seconds: float = ROLLOUT_SECONDS,
    tick: float = TICK,
    *,
    task_seconds: float = TASK_SECONDS,
    seed: int | None = None,
) -> SandboxWorld:
    """`world` emptied (moto, simulator, faults, counters) and seeded as example.yml says."""
    if seed is None:
        world.reset_to_example(rollout_seconds, tick, task_seconds=task_seconds)
        return world
    world.reset(rollout_seconds, tick, task_seconds=task_seconds, seed=seed)
    world.seed_example()
    world.reset_calls()
    return world


@pytest.fixture
def world(shared_world: SandboxWorld, monkeypatch: pytest.MonkeyPatch) -> SandboxWorld:
    """The session's world, as fresh as a new one, with its AWS_* environment set for boto3."""
    fresh_world(shared_world)
    for name, value in shared_world.env().items():
        monkeypatch.setenv(name, value)
    return shared_world


@pytest.fixture(scope="session")
def shared_fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake(shared_fake: FakeSlack) -> FakeSlack:
    """The session's fake Slack, as fresh as a new one: no messages, faults, limits or counters."""
    shared_fake.reset()
    seed_example_people(shared_fake)
    return shared_fake


@pytest.fixture
def catalog() -> Catalog:
    """The example deploying `api` alone: most tests are about one service. Tests about releases,
    or about what a newcomer sees, use `example_catalog()` (`api` with `api-worker`)."""
    return one_service_catalog()


def _variant(text: str, replacements: tuple[tuple[str, str], ...]) -> str:
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


def example_catalog(*replacements: tuple[str, str]) -> Catalog:
    """The sandbox's example catalog with some lines changed (a variant for one test)."""
    return parse_catalog(_variant(EXAMPLE.read_text(), replacements), "variant.yml")


def one_service_text(*replacements: tuple[str, str]) -> str:
    """The example with each environment deploying `api` alone, some lines changed, as YAML."""
    return _variant(one_service_example(), replacements)


def one_service_catalog(*replacements: tuple[str, str]) -> Catalog:
    """The example with each environment deploying `api` alone (the world's `api-worker` idles)."""
    return parse_catalog(one_service_text(*replacements), "one-service.yml")


async def start(tugboat: Tugboat, fake: FakeSlack) -> Tugboat:
    """Start the bot and wait until the fake Slack sees its socket, as Slack would."""
    connected_before = fake.connections_opened
    await tugboat.start()
    await wait_for(lambda: fake.connections_opened > connected_before, timeout=10, what="socket")
    return tugboat


@asynccontextmanager
async def running(
    fake: FakeSlack,
    catalog: Catalog,
    state_path: Path,
    *,
    tuning: Tuning = FAST,
    **settings_overrides: Any,
) -> AsyncIterator[Tugboat]:
    """The bot on `catalog`, started (socket seen by the fake Slack) and stopped on exit.

    `settings_overrides` replace fields of `sandbox_settings(fake, state_path)`.
    """
    settings = sandbox_settings(fake, state_path)
    if settings_overrides:
        settings = settings.model_copy(update=settings_overrides)
    tugboat = Tugboat(settings, catalog, tuning=tuning)
    await start(tugboat, fake)
    try:
        yield tugboat
    finally:
        await tugboat.stop()


@pytest.fixture
async def bot(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path
) -> AsyncIterator[Tugboat]:
    async with running(fake, catalog, tmp_path / "tugboat.db") as tugboat:
        yield tugboat


def fleet_catalog(count: int, channel: str | None = "C0FLEET") -> Catalog:
    """`count` apps, svc0…, each on its own service in cluster `fleet`; one channel, or one each."""
    apps = "\n".join(
        f"""  svc{i}:
    container: web
    image: {IMAGE}
    environments:
      prod: {{cluster: fleet, service: svc{i}, channel: {channel or f"C0FLEET{i}"}, timeout: 99}}"""
        for i in range(count)
    )
    return parse_catalog(f"apps:\n{apps}\n", "fleet.yml")


def seed_fleet(world: SandboxWorld, count: int) -> None:
    for i in range(count):
        world.seed_service("fleet", f"svc{i}", f"svc{i}", f"{IMAGE}:v1")
    world.reset_calls()
