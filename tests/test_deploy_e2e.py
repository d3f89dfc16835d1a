"""`/deploy` end to end: real Socket Mode client, fake Slack, moto with the rollout simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests import slackview as view
from tests.conftest import example_catalog, fleet_catalog, running, seed_fleet

DEV = "U0DEV"


async def test_happy_deploy_changes_only_the_web_image(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging v2", user=DEV, channel="C0DEV")

    parent = await view.final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat and "<@U0DEV>" in parent.flat
    assert "rev 1 → 2" in parent.flat
    replies = await view.thread_text(fake, parent, must_contain="is live")
    assert "`api-staging:2` (from `api-staging:1`)" in replies

    ecs = world.client("ecs")
    current = view.service(world, "staging", "api")
    assert current["taskDefinition"].endswith("api-staging:2")
    assert [d["status"] for d in current["deployments"]] == ["PRIMARY"]
    old = ecs.describe_task_definition(taskDefinition="api-staging:1")["taskDefinition"]
    new = ecs.describe_task_definition(taskDefinition="api-staging:2")["taskDefinition"]
    images = {c["name"]: c["image"] for c in new["containerDefinitions"]}
    assert images["web"].endswith("acme/api:v2")
    old_sidecar = next(c for c in old["containerDefinitions"] if c["name"] == "log-router")
    new_sidecar = next(c for c in new["containerDefinitions"] if c["name"] == "log-router")
    assert new_sidecar == old_sidecar
    for key in ("cpu", "memory", "networkMode", "executionRoleArn", "taskRoleArn"):
        assert new.get(key) == old.get(key)

    link = await view.ephemeral_to(fake, DEV, containing="Deploying api staging")
    assert "archives/C0STAGING/p" in link


async def test_missing_tag_is_named_and_nothing_changes(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    text = await view.answer_to(fake, "/deploy", "api staging v9", containing="v9", user=DEV)
    assert "does not exist in ECR repository `acme/api`" in text
    assert len(view.revisions(world, "api-staging")) == 1
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")
    assert view.parents(fake, "C0STAGING") == []


async def test_image_that_cannot_start_fails_and_ends_on_the_old_revision(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging broken", user=DEV)

    parent = await view.final_parent(fake, "C0STAGING", timeout=40)
    assert "*Failed*" in parent.flat and "Succeeded" not in parent.flat
    assert "circuit breaker" in parent.flat
    replies = await view.thread_text(fake, parent, must_contain="*Failed:*")
    assert "CannotStartContainerError" in replies
    assert "Service is back on revision 1" in replies
    assert "is live" not in replies

    current = view.service(world, "staging", "api")
    assert current["taskDefinition"].endswith("api-staging:1")
    assert [d["status"] for d in current["deployments"]] == ["PRIMARY"]


async def test_timeout_rolls_back_to_the_previous_revision(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = example_catalog(("        timeout: 300", "        timeout: 2"))
    world.simulator.rollout_seconds = 30
    async with running(fake, catalog, tmp_path / "t.db"):
        parent = await view.deployed(fake, user=DEV)
        world.simulator.rollout_seconds = 1.0
        assert "*Failed*" in parent.flat and "timed out after 2 s" in parent.flat
        replies = await view.thread_text(fake, parent, must_contain="Rolling back to revision 1")
        assert "Rolling back to revision 1" in replies


async def test_two_deploys_at_once_exactly_one_proceeds(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging v2", user="U0ALICE")
    fake.slash_command("/deploy", "api staging v3", user="U0BOB")

    await view.final_parent(fake, "C0STAGING")
    threads = view.parents(fake, "C0STAGING")
    assert len(threads) == 1
    winner = "U0ALICE" if "v2" in threads[0].flat else "U0BOB"
    loser = "U0BOB" if winner == "U0ALICE" else "U0ALICE"
    refusal = await view.ephemeral_to(fake, loser, containing="busy")
    assert f"by <@{winner}> is in progress" in refusal
    assert len(view.revisions(world, "api-staging")) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("api", "Which environment of api?"),
        ("billing staging v2", "Unknown app `billing`"),
        ("api qa v2", "Unknown environment `qa` for api"),
        ("api staging v2 v3", "Too many words"),
    ],
)
async def test_bad_input_gets_usage_and_changes_nothing(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld, text: str, expected: str
) -> None:
    message = await view.answer_to(fake, "/deploy", text, containing=expected, user=DEV)
    assert 'Usage: `/deploy APP ENV [REF] [--force "REASON"]`' in message
    assert len(view.revisions(world, "api-staging")) == 1
    assert view.parents(fake, "C0STAGING") == []
    assert world.calls()["ecs:UpdateService"] == 0


async def test_ack_is_fast_while_ten_deploys_roll_out(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed_fleet(world, 10)
    world.simulator.rollout_seconds = 6
    async with running(fake, fleet_catalog(10, None), tmp_path / "t.db") as tugboat:
        for i in range(10):
            fake.slash_command("/deploy", f"svc{i} prod v2", user=DEV)
        await wait_for(lambda: tugboat.operations.in_flight() == 10, timeout=20, what="10 deploys in flight")
        latencies = []
        for _ in range(10):
            envelope = fake.slash_command("/tugboat", "help", user="U0OTHER")
            ack = await wait_for(lambda e=envelope: fake.ack_for(e), timeout=5, what="ack")
            latencies.append(ack.latency_s)
        assert tugboat.operations.in_flight() == 10
        assert max(latencies) < 1.0, latencies
        await wait_for(lambda: tugboat.operations.in_flight() == 0, timeout=60, what="all deploys done")
        finals = [view.parents(fake, f"C0FLEET{i}")[0].flat for i in range(10)]
        assert all("*Succeeded*" in text for text in finals)


async def test_five_deploys_in_one_channel_reach_final_state_under_rate_limits(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed_fleet(world, 5)
    fake.set_rate_limit("chat.postMessage", per_second=1.0, burst=1)
    fake.set_rate_limit("chat.update", per_second=1.0, burst=2)
    async with running(fake, fleet_catalog(5), tmp_path / "t.db"):
        for i in range(5):
            fake.slash_command("/deploy", f"svc{i} prod v2", user=DEV)
        threads = await view.all_succeeded(fake, "C0FLEET", 5)
        assert any(call.status == 429 for call in fake.calls)
        for parent in threads:
            replies = await view.thread_text(fake, parent, must_contain="is live")
            assert "Service updated to revision 2" in replies
        assert fake.block_kit_violations == []


async def test_healthz_follows_the_socket(bot: Tugboat) -> None:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.port}/healthz") as answer,
    ):
        assert answer.status == 200
    await asyncio.wait_for(bot.stop(), 10)
    assert await bot.healthy() is False


async def test_environment_with_role_arn_deploys_through_assumed_credentials(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    role = "        role_arn: arn:aws:iam::123456789012:role/tugboat-deployer\n"
    catalog = example_catalog(("        channel: C0STAGING\n", "        channel: C0STAGING\n" + role))
    async with running(fake, catalog, tmp_path / "t.db"):
        parent = await view.deployed(fake, user=DEV)
        assert "*Succeeded*" in parent.flat
        assert world.calls()["sts:AssumeRole"] >= 1
