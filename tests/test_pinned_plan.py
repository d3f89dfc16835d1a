"""A confirmation card pins what ships: the tag, its digest and the revision it replaces.

Hardening, item 1: a press used to plan again, so a card showing `v1 → v2` shipped whatever
staging ran by then. Now the press runs the plan shown, or refuses and says what changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.confirm import CONFIRM_ACTION
from tests.conftest import example_catalog, running
from tests.slackview import ephemeral_to, final_parent, parents, revisions, service

ADMIN, DEV = "U0ADMIN", "U0DEV"


@pytest.fixture
async def bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    async with running(fake, example_catalog(), tmp_path / "pin.db") as tugboat:
        yield tugboat


async def card(fake: FakeSlack, channel: str, index: int = -1) -> Message:
    def found() -> Message | None:
        cards = [m for m in parents(fake, channel) if "Confirm or cancel" in m.text]
        return cards[index] if cards else None

    return await wait_for(found, what=f"a confirmation card in {channel}")


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
    ecs = world.client("ecs")
    current = ecs.describe_task_definition(taskDefinition="api-production:1")["taskDefinition"]
    read_only = ("taskDefinitionArn", "revision", "status", "compatibilities", "requiresAttributes")
    spec = {k: v for k, v in current.items() if k not in read_only and not k.startswith("registered")}
    elsewhere = ecs.register_task_definition(**spec)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster="production", service="api", taskDefinition=elsewhere)

    fake.click("C0DEPLOY", shown.ts, CONFIRM_ACTION, user=ADMIN)

    refusal = await ephemeral_to(fake, ADMIN, containing="changed since the card was posted")
    assert "api production now runs revision 2, not revision 1 as the card showed" in refusal
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 2
    assert service(world, "production", "api")["taskDefinition"] == elsewhere
