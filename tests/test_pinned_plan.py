"""A confirmation card pins what ships: the tag, its digest and the revision it replaces.

Hardening, item 1: a press used to plan again, so a card showing `v1 → v2` shipped whatever
staging ran by then. Now the press runs the plan shown, or refuses and says what changed.
A release's card (the example's) pins every service: a change to any of them refuses the press.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.confirm import APPROVE_ACTION, CONFIRM_ACTION
from tests.conftest import example_catalog, one_service_catalog, running
from tests.slackview import ephemeral_to, final_parent, parents, revisions, service

ADMIN, DEV, SRE = "U0ADMIN", "U0DEV", "U0SRE1"


@pytest.fixture
async def bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    async with running(fake, one_service_catalog(), tmp_path / "pin.db") as tugboat:
        yield tugboat


async def card(fake: FakeSlack, channel: str, index: int = -1) -> Message:
    def found() -> Message | None:
        cards = [m for m in parents(fake, channel) if "Confirm or cancel" in m.text]
        return cards[index] if cards else None

    return await wait_for(found, what=f"a confirmation card in {channel}")


async def approval_card(fake: FakeSlack, index: int = 0) -> Message:
    def found() -> Message | None:
        cards = [m for m in parents(fake, "C0PROD") if "Approval needed" in m.text]
        return cards[index] if len(cards) > index else None

    return await wait_for(found, what=f"approval card {index} in C0PROD")


def run_elsewhere(world: SandboxWorld, cluster: str, name: str, task_definition: str) -> str:
    """Someone changes a service behind Tugboat's back: a new revision of `task_definition`, run."""
    ecs = world.client("ecs")
    current = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    read_only = ("taskDefinitionArn", "revision", "status", "compatibilities", "requiresAttributes")
    spec = {k: v for k, v in current.items() if k not in read_only and not k.startswith("registered")}
    elsewhere = str(ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"])
    ecs.update_service(cluster=cluster, service=name, taskDefinition=elsewhere)
    return elsewhere


def image_of(world: SandboxWorld, env: str) -> str:
    arn = service(world, env, "api")["taskDefinition"]
    definition = world.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return next(c["image"] for c in definition["containerDefinitions"] if c["name"] == "web")


async def test_a_press_ships_the_promoted_tag_the_card_showed_not_what_staging_runs_now(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    await final_parent(fake, "C0STAGING")
    fake.slash_command("/deploy", "api production", user=ADMIN, channel="C0DEPLOY")
    shown = await card(fake, "C0DEPLOY")
    assert "`api:v1` → `api:v2`" in shown.flat
    assert "Task definition: rev 1 → new revision, only `web` changes" in shown.flat
    assert "release" not in shown.flat, "one service: the card is as it always was"

    fake.slash_command("/deploy", "api staging v3", user=DEV)
    await final_parent(fake, "C0STAGING", index=1)
    fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)

    deployed = await final_parent(fake, "C0PROD")
    assert "*Succeeded*" in deployed.flat
    assert image_of(world, "production").endswith("acme/api:v2")
    assert image_of(world, "staging").endswith("acme/api:v3")
    assert "Exactly this image: `sha256:" in shown.flat


async def test_a_press_after_the_tag_moved_to_another_digest_is_refused(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    shown = await card(fake, "C0DEPLOY")
    world.push_image(SandboxWorld.EXAMPLE_REPOSITORY, "v2", built_from="v2-rebuilt")

    fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)

    refusal = await ephemeral_to(fake, ADMIN, containing="changed since the card was posted")
    assert "tag `v2` now points at image sha256:" in refusal and "Nothing ran" in refusal
    settled = await wait_for(
        lambda: (m := fake.message("C0DEPLOY", shown.ts)) and "not run" in m.flat and m, what="card settled"
    )
    assert "not run" in settled.flat
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 1
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")


async def test_a_press_after_the_service_changed_under_the_card_is_refused(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    shown = await card(fake, "C0DEPLOY")
    elsewhere = run_elsewhere(world, "production", "api", "api-production:1")

    fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)

    refusal = await ephemeral_to(fake, ADMIN, containing="changed since the card was posted")
    assert "api production now runs revision 2, not revision 1 as the card showed" in refusal
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 2
    assert service(world, "production", "api")["taskDefinition"] == elsewhere


async def test_a_release_card_shows_every_service_and_the_press_ships_them_all(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, example_catalog(), tmp_path / "release.db"):
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        shown = await card(fake, "C0DEPLOY")
        fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)
        deployed = await final_parent(fake, "C0PROD", timeout=40)

    assert "`api:v1` → `api:v2`" in shown.flat
    assert "One release of 2 services, all or nothing:" in shown.flat
    assert "• `api`: rev 1 → new revision, only `web` changes" in shown.flat
    assert "• `api-worker`: rev 1 → new revision, only `worker` changes" in shown.flat
    assert "*Succeeded*" in deployed.flat
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")
    assert service(world, "production", "api-worker")["taskDefinition"].endswith("api-worker-production:2")


async def test_a_press_after_the_second_service_changed_under_the_card_is_refused(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, example_catalog(), tmp_path / "release.db"):
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        shown = await card(fake, "C0DEPLOY")
        elsewhere = run_elsewhere(world, "production", "api-worker", "api-worker-production:1")

        fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)
        refusal = await ephemeral_to(fake, ADMIN, containing="changed since the card was posted")

    assert "service api-worker now runs revision 2, not revision 1 as the card showed" in refusal
    assert "Nothing ran" in refusal and "service api " not in refusal
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 1
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")
    assert service(world, "production", "api-worker")["taskDefinition"] == elsewhere


async def test_a_release_rollback_card_pins_every_service(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    """An approved rollback of a release runs the card's revisions, or nothing when any moved."""
    fake.set_usergroup("S0SRE", [SRE])
    rules = "        allowed_users: [U0ADMIN]\n"
    approval = f"{rules}        approval: {{required: 1, groups: [S0SRE], for: [rollback]}}\n"
    async with running(fake, example_catalog((rules, approval)), tmp_path / "rollback.db"):
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        fake.click("C0DEPLOY", (await card(fake, "C0DEPLOY")).ts, CONFIRM_ACTION, user=ADMIN)
        await final_parent(fake, "C0PROD", timeout=40)

        fake.slash_command("/rollback", "api production", user=ADMIN, channel="C0DEPLOY")
        first = await approval_card(fake)
        assert "• `api`: rev 2 → rev 1 (`api-production:1`)" in first.flat
        assert "• `api-worker`: rev 2 → rev 1 (`api-worker-production:1`)" in first.flat
        elsewhere = run_elsewhere(world, "production", "api-worker", "api-worker-production:2")
        fake.click("C0PROD", first.ts, APPROVE_ACTION, user=SRE)
        refusal = await ephemeral_to(fake, SRE, containing="changed since the card was posted")
        assert "service api-worker now runs revision 3, not revision 2 as the card showed" in refusal
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")
        assert service(world, "production", "api-worker")["taskDefinition"] == elsewhere

        fake.slash_command("/rollback", "api production", user=ADMIN, channel="C0DEPLOY")
        second = await approval_card(fake, index=1)
        fake.click("C0PROD", second.ts, APPROVE_ACTION, user=SRE)
        rolled = await final_parent(fake, "C0PROD", timeout=40)

    # Asked again, the last good release is the v2 one: only the worker (moved by hand) goes back.
    assert "• `api-worker`: rev 3 → rev 2 (`api-worker-production:2`)" in second.flat
    assert "`api`:" not in second.flat
    assert "*Succeeded*" in rolled.flat and "Rollback api production" in rolled.flat
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")
    assert service(world, "production", "api-worker")["taskDefinition"].endswith("api-worker-production:2")
