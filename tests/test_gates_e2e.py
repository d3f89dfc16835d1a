"""Blue/green and canary deploys gated from Slack, end to end against the sandbox world.

Service `shop` in cluster `bg` deploys with an ECS strategy (here one ECS minute lasts 0.2 s);
a PAUSE hook after test traffic becomes a reply with Continue and Roll back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from bot.aws.watcher import PollTiming
from bot.domain.catalog import Catalog, parse_catalog
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.confirm import APPROVE_ACTION
from bot.slack.gates import CONTINUE_ACTION, ROLLBACK_ACTION
from tests.conftest import FAST, IMAGE, ROLLOUT_SECONDS, TASK_SECONDS, TICK, running
from tests.slackview import ephemeral_to, final_parent, parents, service, thread_text

MINUTE = 0.2
ADMIN, SRE, DEV = "U0ADMIN", "U0SRE1", "U0DEV"
PAUSED = "Paused at"


@pytest.fixture
def world(shared_world: SandboxWorld, monkeypatch: pytest.MonkeyPatch) -> SandboxWorld:
    """The session's world with ECS minutes 0.2 s long (hooks, bake and canary steps)."""
    shared_world.reset_to_example(ROLLOUT_SECONDS, TICK, task_seconds=TASK_SECONDS, minute_seconds=MINUTE)
    for name, value in shared_world.env().items():
        monkeypatch.setenv(name, value)
    return shared_world


def pause_after_test_traffic(minutes: int = 600, action: str = "ROLLBACK") -> dict[str, Any]:
    return {
        "targetType": "PAUSE",
        "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
        "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": action},
    }


def seed(
    world: SandboxWorld,
    name: str = "shop",
    strategy: str = "BLUE_GREEN",
    *,
    hooks: Iterable[dict[str, Any]] = (),
    **config: Any,
) -> None:
    deployment = {"strategy": strategy, "bakeTimeInMinutes": 1, "lifecycleHooks": list(hooks), **config}
    world.seed_service("bg", name, name, f"{IMAGE}:v1", deployment_configuration=deployment)


def shop_catalog(approval: str = "", service: str = "shop") -> Catalog:
    rules = f"        approval: {approval}\n        allowed_users: [{ADMIN}]\n" if approval else ""
    return parse_catalog(
        f"""
region: us-east-1
apps:
  shop:
    container: web
    image: {IMAGE}
    environments:
      production:
        cluster: bg
        service: {service}
        channel: C0PROD
        timeout: 60
{rules}""",
        "shop.yml",
    )


async def pause_reply(fake: FakeSlack, parent: Message) -> Message:
    return await wait_for(
        lambda: next((m for m in fake.thread("C0PROD", parent.ts) if PAUSED in m.flat), None),
        timeout=30,
        what="the pause's reply",
    )


async def reply_saying(fake: FakeSlack, reply: Message, words: str) -> Message:
    return await wait_for(
        lambda: (m := fake.message(reply.channel, reply.ts)) and words in m.flat and m,
        timeout=30,
        what=f"the pause's reply saying {words!r}",
    )


def buttons(message: Message) -> list[str]:
    return [
        e.get("action_id", "") for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]
    ]


async def paused_deploy(fake: FakeSlack, user: str = DEV) -> tuple[Message, Message]:
    fake.slash_command("/deploy", "shop production v2", user=user, channel="C0PROD")
    parent = await wait_for(lambda: next(iter(parents(fake, "C0PROD")), None), timeout=20, what="thread")
    return parent, await pause_reply(fake, parent)


def calls(world: SandboxWorld, name: str) -> int:
    return world.calls()[f"ecs:{name}"]


def revision(world: SandboxWorld) -> str:
    return str(service(world, "bg", "shop")["taskDefinition"]).rsplit("/", 1)[-1]


async def test_a_pause_waits_for_an_approver_not_the_requester_and_continue_ships(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, hooks=[pause_after_test_traffic()])
    fake.set_usergroup("S0SRE", [SRE])
    catalog = shop_catalog("{required: 1, groups: [S0SRE], for: [deploy]}")
    async with running(fake, catalog, tmp_path / "t.db") as tugboat:
        fake.slash_command("/deploy", "shop production v2", user=ADMIN, channel="C0PROD")
        card = await wait_for(
            lambda: next((m for m in parents(fake, "C0PROD") if "Approval needed" in m.text), None),
            what="the approval card",
        )
        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        parent = await wait_for(
            lambda: next((m for m in parents(fake, "C0PROD") if "Approval needed" not in m.text), None),
            what="the deploy's thread",
        )
        reply = await pause_reply(fake, parent)
        assert "`POST_TEST_TRAFFIC_SHIFT`: test traffic is on the new revision" in reply.flat
        assert "production 0%" in reply.flat and "test 100%" in reply.flat
        assert "then ECS rolls back by itself" in reply.flat
        assert buttons(reply) == [CONTINUE_ACTION, ROLLBACK_ACTION]
        paused = await wait_for(
            lambda: (
                (m := fake.message("C0PROD", parent.ts))
                and "paused at POST_TEST_TRAFFIC_SHIFT" in m.flat
                and m
            ),
            what="the parent showing the pause",
        )
        assert ":double_vertical_bar: paused at POST_TEST_TRAFFIC_SHIFT · expires" in paused.flat

        fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user=ADMIN)
        await ephemeral_to(fake, ADMIN, containing="answered by another approver")
        assert calls(world, "ContinueServiceDeployment") == 0

        fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user=SRE)
        final = await final_parent(fake, "C0PROD", index=-1, timeout=40)
        answered = await reply_saying(fake, reply, f"<@{SRE}> pressed `Continue`")
        replies = await thread_text(fake, parent, must_contain="SUCCESSFUL")
        audit = await tugboat.store.audit_entries()  # type: ignore[attr-defined]
        entries = [e for e in reversed(audit) if e["what"].startswith("pause")]

    assert "*Succeeded*" in final.flat
    assert revision(world) == "shop:2"
    assert calls(world, "ContinueServiceDeployment") == 1 and calls(world, "UpdateService") == 1
    assert buttons(answered) == []
    assert "production 100%" in replies  # blue/green moves it all at once
    assert "The pause at `POST_TEST_TRAFFIC_SHIFT` ended: continued." in replies
    assert [(e["who"], e["outcome"][:9]) for e in entries] == [(ADMIN, "refused: "), (SRE, "POST_TEST")]


async def test_roll_back_at_the_pause_ends_failed_with_the_old_revision_serving(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, hooks=[pause_after_test_traffic()])
    async with running(fake, shop_catalog(), tmp_path / "t.db"):
        parent, reply = await paused_deploy(fake)
        fake.click("C0PROD", reply.ts, ROLLBACK_ACTION, user=DEV)
        final = await final_parent(fake, "C0PROD", timeout=40)
        replies = await thread_text(fake, parent, must_contain="Service is back on revision 1")
        answered = await reply_saying(fake, reply, "pressed `Roll back`")

    assert "*Failed*" in final.flat
    assert "ECS is rolling back to revision 1" in replies
    assert revision(world) == "shop:1"
    assert calls(world, "UpdateService") == 1, "ECS went back by itself: no second update"
    assert calls(world, "ContinueServiceDeployment") == 1
    assert buttons(answered) == []


async def test_a_pause_that_times_out_says_so_and_a_late_press_changes_nothing(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, hooks=[pause_after_test_traffic(minutes=15)])  # 3 s
    async with running(fake, shop_catalog(), tmp_path / "t.db"):
        parent, reply = await paused_deploy(fake)
        # Slack is slow to show edits: the reply keeps its buttons past the hook's timeout.
        fake.fail_every_nth_call(1, methods=["chat.update"], until=time.monotonic() + 8)
        await wait_for(lambda: hook_status(world) == "TIMED_OUT", timeout=20, what="the hook timed out")
        fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user=DEV)
        said = await ephemeral_to(fake, DEV, containing="no longer waiting")
        final = await final_parent(fake, "C0PROD", timeout=40)
        ended = await wait_for(
            lambda: (m := fake.message("C0PROD", reply.ts)) and not buttons(m) and m,
            timeout=30,
            what="the pause's reply without buttons",
        )
        replies = await thread_text(fake, parent, must_contain="ended: timed out: ECS rolled back")

    assert "hook TIMED_OUT" in said
    assert "*Failed*" in final.flat and revision(world) == "shop:1"
    assert "timed out" in ended.flat.replace("_", " ").lower()  # the timeout's edit, or the late press's
    assert "Service is back on revision 1" in replies
    assert calls(world, "ContinueServiceDeployment") == 0


def hook_status(world: SandboxWorld) -> str | None:
    ecs = world.internal_client("ecs")
    listed = ecs.list_service_deployments(cluster="bg", service="shop")["serviceDeployments"]
    if not listed:
        return None
    arns = [listed[0]["serviceDeploymentArn"]]
    [deployment] = ecs.describe_service_deployments(serviceDeploymentArns=arns)["serviceDeployments"]
    hooks = deployment.get("lifecycleHookDetails") or []
    return str(hooks[-1]["status"]) if hooks else None


async def test_canary_and_linear_show_their_traffic_moving(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, "shop", "CANARY", canaryConfiguration={"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5})
    seed(world, "cart", "LINEAR", linearConfiguration={"stepPercent": 25.0, "stepBakeTimeInMinutes": 5})
    async with running(fake, shop_catalog(), tmp_path / "shop.db"):
        canary = await final_parent_of(fake, "shop production v2")
        canary_thread = await thread_text(fake, canary, must_contain="SUCCESSFUL")
    fake.reset()
    async with running(fake, shop_catalog(service="cart"), tmp_path / "cart.db"):
        linear = await final_parent_of(fake, "shop production v2")
        linear_thread = await thread_text(fake, linear, must_contain="SUCCESSFUL")

    assert "*Succeeded*" in canary.flat and "*Succeeded*" in linear.flat
    assert order(canary_thread, "production 10%", "production 100%")
    assert order(linear_thread, "production 25%", "production 50%", "production 75%", "production 100%")
    assert "`BAKE_TIME`: baking" in canary_thread


async def final_parent_of(fake: FakeSlack, command: str) -> Message:
    fake.slash_command("/deploy", command, user=DEV, channel="C0PROD")
    return await final_parent(fake, "C0PROD", timeout=40)


def order(text: str, *parts: str) -> bool:
    places = [text.find(part) for part in parts]
    return all(p >= 0 for p in places) and places == sorted(places)


async def test_a_double_press_makes_one_continue(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, hooks=[pause_after_test_traffic()])
    async with running(fake, shop_catalog(), tmp_path / "t.db"):
        _, reply = await paused_deploy(fake)
        fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user=DEV)
        fake.click("C0PROD", reply.ts, CONTINUE_ACTION, user=ADMIN)
        final = await final_parent(fake, "C0PROD", timeout=40)
        said = await wait_for(
            lambda: next((m.flat for m in fake.ephemerals() if "nothing changed" in m.flat), None),
            what="the second press told it changed nothing",
        )

    assert "*Succeeded*" in final.flat and revision(world) == "shop:2"
    assert calls(world, "ContinueServiceDeployment") == 1
    assert "already answered" in said or "no longer waiting" in said


async def test_rollback_during_a_pause_is_ecs_s_own_and_status_shows_the_pause(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, hooks=[pause_after_test_traffic()])
    async with running(fake, shop_catalog(), tmp_path / "t.db"):
        parent, reply = await paused_deploy(fake)
        fake.slash_command("/ecs-status", "shop production", user=DEV, channel="C0DEV")
        card = await wait_for(
            lambda: next((m for m in fake.channel_messages("C0DEV") if "Blue/green:" in m.flat), None),
            what="a status card with the blue/green deployment",
        )
        fake.slash_command("/rollback", "shop production", user=DEV, channel="C0PROD")
        said = await ephemeral_to(fake, DEV, containing="ECS is rolling shop production back")
        final = await final_parent(fake, "C0PROD", index=0, timeout=40)
        ended = await reply_saying(fake, reply, "/rollback shop production`: ECS rolls back")

    assert "`POST_TEST_TRAFFIC_SHIFT`" in card.flat and ":double_vertical_bar: paused" in card.flat
    assert "Its thread follows it" in said
    assert "*Failed*" in final.flat and final.ts == parent.ts
    assert revision(world) == "shop:1"
    assert calls(world, "UpdateService") == 1 and calls(world, "ContinueServiceDeployment") == 1
    assert buttons(ended) == []


async def test_with_ecs_events_the_pause_and_the_rollback_are_seen_at_once(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    """Polling alone would look every 8 s; ECS Hook State Change and deployment events wake the
    watch, so the pause's reply and the end come within seconds all the same."""
    seed(world, hooks=[pause_after_test_traffic()])
    queue = world.enable_events()
    slow = dataclasses.replace(FAST, poll=PollTiming.brisk(8.0), events_wait_s=1)
    async with running(fake, shop_catalog(), tmp_path / "t.db", tuning=slow, tugboat_events_queue=queue):
        fake.slash_command("/deploy", "shop production v2", user=DEV, channel="C0PROD")
        parent = await wait_for(lambda: next(iter(parents(fake, "C0PROD")), None), timeout=20, what="thread")
        reply = await wait_for(
            lambda: next((m for m in fake.thread("C0PROD", parent.ts) if PAUSED in m.flat), None),
            timeout=6,
            what="the pause's reply, woken by the hook's event",
        )
        fake.click("C0PROD", reply.ts, ROLLBACK_ACTION, user=DEV)
        final = await final_parent(fake, "C0PROD", timeout=7)

    assert "*Failed*" in final.flat and revision(world) == "shop:1"
    assert calls(world, "ContinueServiceDeployment") == 1


async def test_rollback_while_baking_stops_the_deployment_with_ecs_s_rollback(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    seed(world, bakeTimeInMinutes=100)  # 20 s of bake time: the old revision stays ready
    async with running(fake, shop_catalog(), tmp_path / "t.db"):
        fake.slash_command("/deploy", "shop production v2", user=DEV, channel="C0PROD")
        parent = await wait_for(lambda: next(iter(parents(fake, "C0PROD")), None), timeout=20, what="thread")
        await thread_text(fake, parent, must_contain="`BAKE_TIME`", timeout=20)
        fake.slash_command("/rollback", "shop production", user=DEV, channel="C0PROD")
        await ephemeral_to(fake, DEV, containing="ECS is rolling shop production back")
        final = await final_parent(fake, "C0PROD", index=0, timeout=40)

    assert "*Failed*" in final.flat and revision(world) == "shop:1"
    assert calls(world, "StopServiceDeployment") == 1 and calls(world, "UpdateService") == 1
    assert calls(world, "ContinueServiceDeployment") == 0


async def test_a_release_with_a_canary_and_a_failing_worker_goes_back_as_a_whole(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    """The worker fails while the canary waits at its pause: ECS takes the canary back itself
    (StopServiceDeployment ROLLBACK), the worker goes back too, and the release fails."""
    seed(
        world,
        "shop",
        "CANARY",
        hooks=[pause_after_test_traffic()],
        canaryConfiguration={"canaryPercent": 10.0},
    )
    web = world.default_containers(
        f"{IMAGE}:v1", log_group="/ecs/shop", stream_prefix="shop", environment="x"
    )
    worker = {**web[0], "name": "worker", "command": ["bin/worker"], "portMappings": []}
    world.seed_service("bg", "shop-worker", "shop-worker", f"{IMAGE}:v1", desired=1, containers=[worker])
    world.mark_unstartable("v2", container="worker")
    catalog = parse_catalog(
        f"""
region: us-east-1
apps:
  shop:
    containers: [web]
    image: {IMAGE}
    environments:
      production:
        cluster: bg
        channel: C0PROD
        timeout: 60
        rollback_on_failure: true
        services:
          - name: shop
          - name: shop-worker
            containers: [worker]
""",
        "release.yml",
    )
    async with running(fake, catalog, tmp_path / "t.db"):
        fake.slash_command("/deploy", "shop production v2", user=DEV, channel="C0PROD")
        final = await final_parent(fake, "C0PROD", timeout=60)
        replies = await thread_text(fake, final, must_contain="*shop*: Service is back on revision 1")

    assert "*Failed*" in final.flat and "shop-worker:" in final.flat
    assert revision(world) == "shop:1"
    assert str(service(world, "bg", "shop-worker")["taskDefinition"]).endswith("shop-worker:1")
    assert calls(world, "StopServiceDeployment") == 1, "the canary went back ECS's way"
    assert "*shop-worker*: Service is back on revision 1" in replies
