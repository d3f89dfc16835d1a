"""Hardening, items 2 and 3: a replica that lost its lease stops acting; a store error never
abandons a live rollout, and a restart asks ECS what really happened."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.world import SandboxWorld
from bot.state.dynamodb import DynamoStore
from tests.conftest import running
from tests.faults.process import BotProcess, dynamodb_state, launch, owner_of_the_deploy, two_replicas
from tests.slackview import final_parent, service, thread_text, thread_under_way

DEV = "U0DEV"
TABLE = "tugboat-fencing"
UPDATED = "Service updated to revision 2"


async def test_a_paused_replica_that_lost_its_lease_does_not_act_when_it_wakes(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = await dynamodb_state(TABLE)
    world.simulator.rollout_seconds = 14
    lease = 6.0
    a, b = await two_replicas(processes, world, fake, tmp_path, state, lease)
    parent = await thread_under_way(fake, "/deploy", "api staging v2", reached=UPDATED, user=DEV)
    owner = a if await owner_of_the_deploy(TABLE) == "replica-a" else b
    owner.pause()
    try:
        final = await final_parent(fake, "C0STAGING", timeout=lease + 30)
        assert final.ts == parent.ts and "*Succeeded*" in final.flat
        await thread_text(fake, parent, must_contain="picked this up again")
    finally:
        owner.resume()

    replies = await thread_text(fake, parent, must_contain="Handed over", timeout=lease + 10)
    assert replies.count("Handed over") == 1
    assert replies.count(":white_check_mark: Revision 2 is live") == 1
    assert "Rolling back" not in replies and "Failed" not in replies
    assert world.calls()["ecs:UpdateService"] == 1
    final_again = fake.message("C0STAGING", parent.ts)
    assert final_again is not None and "*Succeeded*" in final_again.flat
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


async def test_a_failed_state_write_just_after_update_service_does_not_abandon_the_rollout(
    world: SandboxWorld, fake: FakeSlack, catalog: object, tmp_path: Path
) -> None:
    state = await dynamodb_state(TABLE)
    world.reset_calls()
    # The first record write after the service update is refused (no retry can help).
    world.inject_error("dynamodb:UpdateItem", "AccessDeniedException", times=1, after="ecs:UpdateService")
    async with running(fake, catalog, tmp_path / "unused.db", tugboat_state=state):  # type: ignore[arg-type]
        fake.slash_command("/deploy", "api staging v2", user=DEV)
        final = await final_parent(fake, "C0STAGING", timeout=60)
        replies = await thread_text(fake, final, must_contain="is live")

    assert world.injected()["dynamodb:UpdateItem:AccessDeniedException"] == 1
    assert "*Succeeded*" in final.flat
    assert "internal error" not in replies and "Nothing" not in replies
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    store = DynamoStore(TABLE)
    try:
        (record,) = [r for r in await store.history("api", "staging", 5) if r.action == "deploy"]
    finally:
        await store.close()
    assert record.state == "succeeded"


async def test_after_a_store_outage_and_a_restart_the_thread_follows_what_ecs_runs(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = await dynamodb_state(TABLE)
    world.simulator.rollout_seconds = 8
    bot = await launch(processes, world, fake, tmp_path, state, replica="replica-a", lease_s=6.0).up(fake)
    world.reset_calls()
    world.inject_error("dynamodb:UpdateItem", "AccessDeniedException", after="ecs:UpdateService")

    parent = await thread_under_way(fake, "/deploy", "api staging v2", reached=UPDATED, user=DEV)
    bot.kill()  # the record still says "registered": its later writes never reached the store
    world.clear_errors()

    await launch(processes, world, fake, tmp_path, state, replica="replica-a", lease_s=6.0).up(fake)
    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Nothing was changed" not in replies
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
