"""On-call toolkit end to end: rollback, run-task, before_deploy, status, mentions, Home tab."""

from __future__ import annotations

from pathlib import Path

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.blocks import CANCEL_ACTION, ROLLBACK_ACTION
from bot.slack.status_cards import REFRESH_ACTION
from tests.conftest import one_service_catalog, running
from tests.slackview import (
    answer_to,
    deployed,
    ephemeral_to,
    final_parent,
    parents,
    revisions,
    service,
    thread_text,
)

ADMIN = "U0ADMIN"
DEV = "U0DEV"


async def test_rollback_after_two_deploys_returns_to_the_first_deploys_revision(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    await deployed(fake, index=0)
    await deployed(fake, "api staging v3", index=1)
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:3")

    fake.slash_command("/rollback", "api staging", user=DEV)
    parent = await final_parent(fake, "C0STAGING", 2)
    assert "*Succeeded*" in parent.flat and "Rollback api staging: rev 2" in parent.flat
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    assert len(revisions(world, "api-staging")) == 3, "a rollback registers nothing new"
    replies = await thread_text(fake, parent, must_contain="Back on revision 2")
    assert "the last good deploy (`v2`)" in replies


async def test_rollback_button_goes_back_to_the_revision_before_that_deploy(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    deploy = await deployed(fake, index=0)
    rollback = next(e for b in deploy.blocks or [] if b["type"] == "actions" for e in b["elements"])
    assert rollback["action_id"] == ROLLBACK_ACTION and rollback["confirm"]["confirm"]["text"] == "Roll back"

    fake.click("C0STAGING", deploy.ts, ROLLBACK_ACTION, user=DEV)
    parent = await final_parent(fake, "C0STAGING", 1)
    assert "*Succeeded*" in parent.flat
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")


async def test_rollback_with_nothing_to_go_back_to_is_refused(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    text = await answer_to(fake, "/rollback", "api staging", containing="Not rolling back", user=DEV)
    assert "Nothing to roll back to" in text
    assert parents(fake, "C0STAGING") == []
    assert world.calls()["ecs:UpdateService"] == 0


async def test_run_task_reports_exit_code_and_log_tail(bot: Tugboat, fake: FakeSlack) -> None:
    fake.slash_command("/run-task", "api staging migrate", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat and "Run task api staging: migrate" in parent.flat
    replies = await thread_text(fake, parent, must_contain="stopped: exit code")
    assert "exit code web=0" in replies
    assert "CreateWidgets: migrated" in replies


async def test_failing_task_is_a_failure_with_its_log_tail(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    world.simulator.script_task("db:migrate", 1, ["== Migrating", "rails aborted! PG::UndefinedTable"], 0.5)
    fake.slash_command("/run-task", "api staging migrate", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Failed*" in parent.flat and "web exited 1" in parent.flat
    replies = await thread_text(fake, parent, must_contain="rails aborted!")
    assert "exit code web=1" in replies


async def test_cancel_stops_a_running_task(bot: Tugboat, fake: FakeSlack, world: SandboxWorld) -> None:
    world.simulator.script_task("db:migrate", 0, ["sleeping"], 600)
    fake.slash_command("/run-task", "api staging migrate", user=DEV)
    parent = await wait_for(lambda: (parents(fake, "C0STAGING") or [None])[0], what="run-task thread")
    await thread_text(fake, parent, must_contain="Started task `migrate`")

    fake.click("C0STAGING", parent.ts, CANCEL_ACTION, user=DEV)
    final = await final_parent(fake, "C0STAGING")
    assert "*Failed*" in final.flat and "cancelled from Slack" in final.flat
    tasks = world.client("ecs").list_tasks(cluster="staging", desiredStatus="STOPPED")["taskArns"]
    described = world.client("ecs").describe_tasks(cluster="staging", tasks=tasks)["tasks"]
    assert any(t.get("stopCode") == "UserInitiated" for t in described)


async def test_production_deploy_whose_migration_fails_leaves_the_service_alone(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = one_service_catalog(("        confirm: true\n", ""))
    world.simulator.script_task("db:migrate", 3, ["rails aborted! ActiveRecord::StatementInvalid"], 0.5)
    async with running(fake, catalog, tmp_path / "t.db"):
        parent = await deployed(fake, "api production v2", user=ADMIN, channel="C0PROD")
        assert "*Failed*" in parent.flat and "Task `migrate` failed: web exited 3" in parent.flat
        replies = await thread_text(fake, parent, must_contain="StatementInvalid")
        assert "The service was not changed" in replies
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")
        assert world.calls()["ecs:UpdateService"] == 0


async def test_status_card_and_overview(bot: Tugboat, fake: FakeSlack) -> None:
    await deployed(fake)

    fake.slash_command("/ecs-status", "api staging", user=DEV, channel="C0DEV")
    card = await wait_for(lambda: next(iter(parents(fake, "C0DEV")), None), what="status card")
    assert "2/2 running" in card.flat and "rev 2 · `v2`" in card.flat
    assert "deploy `v2` by <@U0DEV>" in card.flat
    assert len(card.flat.splitlines()) <= 16

    fake.click("C0DEV", card.ts, REFRESH_ACTION, user=DEV)
    await wait_for(lambda: fake.message("C0DEV", card.ts).edits, what="refreshed card")  # type: ignore[union-attr]

    fake.slash_command("/ecs-status", "", user=DEV, channel="C0OPS")
    overview = await wait_for(lambda: next(iter(parents(fake, "C0OPS")), None), what="overview")
    assert "*api staging*" in overview.flat and "*api production*" in overview.flat


async def test_mention_in_a_thread_answers_in_that_thread(bot: Tugboat, fake: FakeSlack) -> None:
    parent = await deployed(fake)
    fake.mention("status api staging", user=DEV, channel="C0STAGING", thread_ts=parent.ts)
    text = await thread_text(fake, parent, must_contain="running · ")
    assert "*api staging* — steady" in text


async def test_duplicate_event_deliveries_act_once(bot: Tugboat, fake: FakeSlack) -> None:
    fake.mention("deploy api staging v2", user=DEV, channel="C0DEV", event_id="Ev0DUP")
    fake.mention("deploy api staging v2", user=DEV, channel="C0DEV", event_id="Ev0DUP")
    await final_parent(fake, "C0STAGING")
    assert len(parents(fake, "C0STAGING")) == 1
    assert not any("busy" in m.flat for m in fake.ephemerals(user=DEV))


async def test_home_tab_is_published(bot: Tugboat, fake: FakeSlack) -> None:
    fake.app_home_opened(DEV)
    views = await wait_for(lambda: fake.views(DEV), what="home view")
    assert views[-1].type == "home"
    assert "api staging" in views[-1].flat and "api production" in views[-1].flat


async def test_every_message_passes_block_kit_checks(bot: Tugboat, fake: FakeSlack) -> None:
    await deployed(fake, "api staging broken", timeout=40)
    fake.slash_command("/ecs-status", "api staging", user=DEV)
    await wait_for(lambda: parents(fake, "C0DEV"), what="status card")
    fake.slash_command("/tugboat", "help", user=DEV)
    await ephemeral_to(fake, DEV, containing="Tugboat")
    assert fake.block_kit_violations == []


async def test_a_double_clicked_rollback_button_rolls_back_once(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    deploy = await deployed(fake, index=0)
    fake.click("C0STAGING", deploy.ts, ROLLBACK_ACTION, user=DEV)
    fake.click("C0STAGING", deploy.ts, ROLLBACK_ACTION, user=DEV)
    await final_parent(fake, "C0STAGING", 1)
    await wait_for(lambda: fake.ephemerals(user=DEV)[2:], what="an answer to each click")
    assert len(parents(fake, "C0STAGING")) == 2, "one deploy thread and one rollback thread"
    assert world.calls()["ecs:UpdateService"] == 2
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")
