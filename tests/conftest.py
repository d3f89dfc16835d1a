"""The test world: moto over HTTP with the rollout simulator, the fake Slack, and the real bot.

Nothing of ours is mocked: the bot talks to Slack through slack_sdk's Socket Mode client and
to AWS through boto3, exactly as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.aws.watcher import PollTiming
from bot.domain.catalog import Catalog, load_catalog, parse_catalog
from bot.runtime import Tugboat, Tuning
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings

EXAMPLE = Path(__file__).parent.parent / "bot" / "sandbox" / "example.yml"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"
FAST = Tuning(
    poll=PollTiming.brisk(0.3),
    thread_interval_s=0.3,
    http_host="127.0.0.1",
    ecs_calls_per_s=0.0,
)


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


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxWorld]:
    world = SandboxWorld(rollout_seconds=1.5, tick=0.05, task_seconds=0.5)
    world.start()
    try:
        world.seed_example()
        for name, value in world.env().items():
            monkeypatch.setenv(name, value)
        world.reset_calls()
        yield world
    finally:
        world.stop()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)


def example_catalog(*replacements: tuple[str, str]) -> Catalog:
    """The sandbox's example catalog with some lines changed (a variant for one test)."""
    text = EXAMPLE.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return parse_catalog(text, "variant.yml")


def settings_for(fake: FakeSlack, state: Path) -> Settings:
    return Settings(
        slack_bot_token=fake.bot_token,
        slack_app_token=fake.app_token,
        slack_api_url=fake.api_url,
        tugboat_state=f"sqlite:///{state}",
        port=0,
    )


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

    `settings_overrides` replace fields of `settings_for(fake, state_path)`.
    """
    settings = settings_for(fake, state_path)
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
