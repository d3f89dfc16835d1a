"""Scale and restart end to end: on-call's remedies, from a command and from the status card."""

from __future__ import annotations

from pathlib import Path

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.status_cards import COUNT_INPUT, RESTART_ACTION, SCALE_ACTION
from tests.conftest import example_catalog, one_service_catalog, running
from tests.slackview import answer_to, final_parent, parent_where, parents, service, thread_text

DEV = "U0DEV"
STRANGER = "U0OTHER"


async def test_scale_reaches_the_count_and_says_so(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/ecs-scale", "api staging 3", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat and "Scale api staging: to 3" in parent.flat
    described = service(world, "staging", "api")
    assert (described["desiredCount"], described["runningCount"]) == (3, 3)
    replies = await thread_text(fake, parent, must_contain="api runs 3/3 tasks")
    assert "Desired count of `api`: 2 → 3." in replies


async def test_a_count_over_max_tasks_is_refused_and_changes_nothing(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = one_service_catalog(
        ("        channel: C0STAGING\n", "        channel: C0STAGING\n        max_tasks: 4\n")
    )
    async with running(fake, catalog, tmp_path / "t.db"):
        text = await answer_to(fake, "/ecs-scale", "api staging 5", containing="more than", user=DEV)
    assert "expected a number from 0 to 4 (`max_tasks` of api staging)" in text
    assert "Usage: `/ecs-scale APP ENV COUNT [SERVICE]`" in text
    assert world.calls()["ecs:UpdateService"] == 0 and parents(fake, "C0STAGING") == []


async def test_scale_of_a_release_names_its_service(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        text = await answer_to(fake, "/ecs-scale", "api staging 2", containing="several services", user=DEV)
        assert "(`api`, `api-worker`)" in text and "`/ecs-scale api staging 2 api-worker`" in text
        assert world.calls()["ecs:UpdateService"] == 0

        fake.slash_command("/ecs-scale", "api staging 2 api-worker", user=DEV)
        parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat and "Scale api staging: api-worker to 2" in parent.flat
    assert service(world, "staging", "api-worker")["runningCount"] == 2
    assert service(world, "staging", "api")["desiredCount"] == 2, "the other service is left alone"


async def test_restart_is_a_new_deployment_of_the_same_revision(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    before = service(world, "staging", "api")
    fake.slash_command("/ecs-restart", "api staging", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    after = service(world, "staging", "api")
    assert "*Succeeded*" in parent.flat and "Restart api staging: api" in parent.flat
    assert after["taskDefinition"] == before["taskDefinition"]
    assert after["deployments"][0]["id"] != before["deployments"][0]["id"]
    assert after["runningCount"] == 2 and len(after["deployments"]) == 1
    replies = await thread_text(fake, parent, must_contain="Restarted on revision 1")
    assert "New deployment of revision 1" in replies


async def test_restart_of_a_release_restarts_every_service_as_one(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    worker_before = service(world, "staging", "api-worker")["deployments"][0]["id"]
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        fake.slash_command("/ecs-restart", "api staging", user=DEV)
        parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat and "Restart api staging: api, api-worker" in parent.flat
    assert service(world, "staging", "api-worker")["deployments"][0]["id"] != worker_before
    assert service(world, "staging", "api-worker")["taskDefinition"].endswith("api-worker-staging:1")
    replies = await thread_text(fake, parent, must_contain="Restarted:")
    assert "*api-worker*: New deployment of revision 1" in replies


async def test_a_lock_does_not_stop_remedies_but_a_running_deploy_does(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    await answer_to(fake, "/tugboat", "lock api staging investigating", containing="Locked", user=DEV)
    fake.slash_command("/ecs-restart", "api staging", user=DEV)
    restarted = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in restarted.flat and "Restart api staging" in restarted.flat
    fake.slash_command("/ecs-scale", "api staging 1", user=DEV)
    scaled = await final_parent(fake, "C0STAGING", 2)
    assert "*Succeeded*" in scaled.flat and "Scale api staging: to 1" in scaled.flat
    await answer_to(fake, "/tugboat", "unlock api staging", containing="Unlocked", user=DEV)

    world.simulator.rollout_seconds = 30
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    deploy = await parent_where(
        fake, "C0STAGING", lambda m: "Deploy api staging" in m.flat, what="the deploy"
    )
    await thread_text(fake, deploy, must_contain="Service updated to revision 2", timeout=20)
    updates = world.calls()["ecs:UpdateService"]
    for command, words in (("/ecs-scale", "api staging 3"), ("/ecs-restart", "api staging")):
        text = await answer_to(fake, command, words, containing="is busy", user=DEV)
        assert "a deploy of `v2`" in text
    assert world.calls()["ecs:UpdateService"] == updates


async def test_status_card_buttons_restart_and_scale_for_people_who_may_act(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = one_service_catalog(
        (
            "        channel: C0STAGING\n",
            "        channel: C0STAGING\n        allowed_users: [U0DEV]\n        read_users: [U0OTHER]\n",
        )
    )
    async with running(fake, catalog, tmp_path / "t.db"):
        fake.slash_command("/ecs-status", "api staging", user=DEV, channel="C0DEV")
        card = await wait_for(lambda: next(iter(parents(fake, "C0DEV")), None), what="status card")
        assert "Restart" in card.flat and "Scale" in card.flat

        fake.click("C0DEV", card.ts, SCALE_ACTION, user=DEV)
        modal = await wait_for(lambda: next(iter(fake.views(DEV)), None), what="the scale modal")
        assert "How many tasks should *api staging* run?" in modal.flat
        envelope = fake.submit_view(
            modal.id, {COUNT_INPUT: {COUNT_INPUT: {"type": "plain_text_input", "value": "99"}}}
        )
        ack = await wait_for(lambda: fake.ack_for(envelope), what="the modal's answer")
        assert ack.payload is not None and "more than api staging allows" in str(ack.payload["errors"])
        assert world.calls()["ecs:UpdateService"] == 0

        fake.submit_view(modal.id, {COUNT_INPUT: {COUNT_INPUT: {"type": "plain_text_input", "value": "3"}}})
        scaled = await final_parent(fake, "C0STAGING")
        assert "*Succeeded*" in scaled.flat and "Scale api staging: to 3" in scaled.flat
        assert service(world, "staging", "api")["runningCount"] == 3

        fake.click("C0DEV", card.ts, RESTART_ACTION, user=DEV)
        restarted = await final_parent(fake, "C0STAGING", 1)
        assert "*Succeeded*" in restarted.flat and "Restart api staging" in restarted.flat

        fake.slash_command("/ecs-status", "api staging", user=STRANGER, channel="C0DEV")
        theirs = await wait_for(lambda: parents(fake, "C0DEV")[1:2] or None, what="a reader's card")
        assert "Refresh" in theirs[0].flat and "Restart" not in theirs[0].flat
        fake.click("C0DEV", card.ts, RESTART_ACTION, user=STRANGER)
        await wait_for(lambda: fake.ephemerals(user=STRANGER) or None, what="the refusal")
        assert len(parents(fake, "C0STAGING")) == 2, "a press by someone who may not act changes nothing"
