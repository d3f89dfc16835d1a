"""Throttling, AWS refusals, Slack 429s and dropped sockets: every thread still ends truthfully."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from bot.domain.catalog import Catalog
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.conftest import FAST, fleet_catalog, running, seed_fleet
from tests.slackview import all_succeeded, final_parent, service

DEV = "U0DEV"


async def test_deploy_ends_correctly_with_30_percent_of_ecs_calls_throttled(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    # A 2.5 s rollout makes some 18 ECS calls: the chance that none is throttled (and the last
    # assertion fails for nothing) is 0.7**18, under 0.2 %; the default 0.75 s makes 9 (4 %).
    world.simulator.rollout_seconds = 2.5
    world.inject_error("ecs:*", "ThrottlingException", "Rate exceeded", probability=0.3)
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await final_parent(fake, "C0STAGING", timeout=60)
    world.clear_errors()
    assert "*Succeeded*" in parent.flat
    assert sum(world.injected().values()) > 0, "throttling was injected and retried"
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


async def test_access_denied_on_update_service_fails_at_once_with_the_aws_message(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/tugboat is not authorized to perform: ecs:UpdateService"
    )
    world.inject_error("ecs:UpdateService", "AccessDeniedException", message)
    began = time.monotonic()
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert time.monotonic() - began < 10
    assert "*Failed*" in parent.flat and "AccessDeniedException" in parent.flat
    assert "not authorized to perform: ecs:UpdateService" in parent.flat
    assert world.calls()["ecs:UpdateService"] == 1, "no retry of a non-retryable error"


@pytest.fixture
async def fleet(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> AsyncIterator[tuple[Tugboat, Catalog]]:
    seed_fleet(world, 3)
    catalog = fleet_catalog(3)
    async with running(fake, catalog, tmp_path / "t.db") as tugboat:
        yield tugboat, catalog


async def test_slack_answering_429_to_every_second_call_loses_nothing_and_doubles_nothing(
    fleet: tuple[Tugboat, Catalog], fake: FakeSlack
) -> None:
    fake.fail_every_nth_call(2, status=429, retry_after=1, until=time.monotonic() + 60)
    for i in range(3):
        fake.slash_command("/deploy", f"svc{i} prod v2", user=DEV)
    threads = await all_succeeded(fake, "C0FLEET", 3)
    fake.clear_faults()
    assert any(call.status == 429 for call in fake.calls)
    for parent in threads:
        replies = [m.flat for m in fake.thread("C0FLEET", parent.ts)]
        assert len(replies) == len(set(replies)), "a reply was posted twice"
        assert sum("is live" in r for r in replies) == 1


async def test_socket_dropped_reconnects_and_health_follows(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, catalog: Catalog
) -> None:
    tuning = replace(FAST, ping_interval_s=1.0)
    async with running(fake, catalog, tmp_path / "t.db", tuning=tuning) as tugboat:
        url = f"http://127.0.0.1:{tugboat.port}/healthz"

        async def health() -> int:
            async with aiohttp.ClientSession() as http, http.get(url) as answer:
                return answer.status

        assert await health() == 200
        opened = fake.connections_opened
        fake.drop_connections()
        await wait_for(lambda: _is(health, 503), timeout=10, what="healthz 503 while disconnected")
        await wait_for(lambda: fake.connections_opened > opened and fake.connection_count == 1, timeout=20)
        await wait_for(lambda: _is(health, 200), timeout=10, what="healthz 200 again")
        envelope = fake.slash_command("/tugboat", "help", user=DEV)
        ack = await wait_for(lambda: fake.ack_for(envelope), timeout=5, what="ack after reconnect")
        assert ack.latency_s < 1


async def _is(probe: object, status: int) -> bool:
    return bool(await probe() == status)  # type: ignore[operator]
