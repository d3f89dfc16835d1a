"""A large estate (500 services in 5 clusters): the overview and the Home tab stay quick, cheap
on ECS and within Slack's limits, with every service in them."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.aws.ecs_limits import ECS_LIMITS
from bot.runtime import Tugboat
from bot.sandbox.blockkit import MAX_MESSAGE_BLOCKS, MAX_SECTION_TEXT, MAX_VIEW_BLOCKS
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from tests import slackview as view
from tests.conftest import FAST, running
from tests.estate import APPS, CLUSTERS, estate_catalog, seed_estate

SERVICES = APPS * CLUSTERS
MAX_ECS_CALLS = 60
ANSWER_S = 3.0
USER = "U0ONCALL"
# Production pacing: the describes take their turn in Tugboat's half of ECS's service-read bucket.
PACED = dataclasses.replace(FAST, ecs_limits=ECS_LIMITS)


@pytest.fixture
async def estate_bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    seed_estate(world)
    async with running(fake, estate_catalog(), tmp_path / "t.db", tuning=PACED) as tugboat:
        world.reset_calls()
        yield tugboat


def ecs_calls(world: SandboxWorld) -> int:
    return sum(n for op, n in world.calls().items() if op.startswith("ecs:"))


def listed(text: str) -> list[str]:
    """The services an overview names, as `app12 env3`."""
    return re.findall(r"\*(app\d+ env\d+)\*", text)


def sections(blocks: list[dict[str, object]]) -> list[str]:
    return [str(b["text"]["text"]) for b in blocks if b.get("type") == "section"]  # type: ignore[index]


async def test_the_overview_of_500_services_is_split_within_slacks_limits(
    estate_bot: Tugboat, world: SandboxWorld, fake: FakeSlack
) -> None:
    began = time.monotonic()
    fake.slash_command("/ecs-status", "", user=USER, channel="C0OPS")

    def complete() -> list[Message] | None:
        found = view.parents(fake, "C0OPS")
        return found if sum(len(listed(m.flat)) for m in found) >= SERVICES else None

    messages = await wait_for(complete, timeout=15, what="every service in the overview")
    answered = time.monotonic() - began

    names = [name for m in messages for name in listed(m.flat)]
    assert sorted(names) == sorted(f"app{a} env{c}" for a in range(APPS) for c in range(CLUSTERS))
    assert "500 services" in messages[0].flat and "500 steady" in messages[0].flat
    for message in messages:
        assert message.blocks is not None and len(message.blocks) <= MAX_MESSAGE_BLOCKS
        assert all(len(section) <= MAX_SECTION_TEXT for section in sections(message.blocks))
    assert fake.block_kit_violations == []
    assert ecs_calls(world) <= MAX_ECS_CALLS, world.calls()
    assert answered < ANSWER_S, f"the overview took {answered:.2f} s"


async def test_the_home_tab_of_500_services_fits_one_view(
    estate_bot: Tugboat, world: SandboxWorld, fake: FakeSlack
) -> None:
    began = time.monotonic()
    fake.app_home_opened(USER)
    home = await wait_for(lambda: fake.views(USER), timeout=15, what="the home view")
    answered = time.monotonic() - began

    current = home[-1]
    assert current.type == "home"
    assert len(current.blocks) <= MAX_VIEW_BLOCKS
    assert all(len(section) <= MAX_SECTION_TEXT for section in sections(current.blocks))
    assert len(set(listed(current.flat))) == SERVICES
    assert fake.block_kit_violations == []
    assert ecs_calls(world) <= MAX_ECS_CALLS, world.calls()
    assert answered < ANSWER_S, f"the Home tab took {answered:.2f} s"

    # Someone else opens it a moment later: what was just described is reused, ECS is not asked.
    world.reset_calls()
    fake.app_home_opened("U0SECOND")
    again = await wait_for(lambda: fake.views("U0SECOND"), timeout=15, what="the second home view")
    assert len(set(listed(again[-1].flat))) == SERVICES
    assert ecs_calls(world) == 0, world.calls()
