"""Tugboat finishes what it started: across SIGKILL, SIGTERM and a dead replica."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from tests.conftest import EXAMPLE
from tests.faults.process import BotProcess, dynamodb_state, launch, owner_of_the_deploy, two_replicas
from tests.slackview import final_parent, parents, service, thread_text, thread_under_way

UPDATED = "Service updated to revision 2"
StartBot = Callable[[], Awaitable[BotProcess]]


@pytest.fixture
def start_bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]) -> StartBot:
    """Starts one more bot process on the test's SQLite state, and waits until it is up."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    return lambda: launch(processes, world, fake, tmp_path, state).up(fake)


async def mid_deploy(world: SandboxWorld, fake: FakeSlack, start_bot: StartBot) -> tuple[BotProcess, Message]:
    """A bot 10 s rollout into `/deploy api staging v2`: its thread says the service was updated."""
    world.simulator.rollout_seconds = 10
    bot = await start_bot()
    return bot, await thread_under_way(fake, "/deploy", "api staging v2", reached=UPDATED)


async def test_kill_9_mid_rollout_then_restart_finishes_the_same_thread(
    world: SandboxWorld, fake: FakeSlack, start_bot: StartBot
) -> None:
    first, parent = await mid_deploy(world, fake, start_bot)
    first.kill()
    await start_bot()

    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and len(parents(fake, "C0STAGING")) == 1
    assert "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Tugboat restarted and picked this up again" in replies
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


async def test_kill_9_during_run_task_then_restart_reports_its_exit(
    world: SandboxWorld, fake: FakeSlack, start_bot: StartBot
) -> None:
    world.simulator.script_task("db:migrate", 0, ["== migrating", "== migrated"], 8)
    first = await start_bot()
    parent = await thread_under_way(
        fake, "/run-task", "api staging migrate", reached="Started task `migrate`"
    )

    first.kill()
    await start_bot()

    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="exit code web=0")
    assert "== migrated" in replies


async def test_sigterm_exits_0_quickly_and_the_next_start_finishes(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, start_bot: StartBot
) -> None:
    first, parent = await mid_deploy(world, fake, start_bot)
    code, seconds = first.terminate()
    assert code == 0 and seconds < 10, (code, seconds)

    second = await start_bot()
    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat

    second.terminate()
    lines = (tmp_path / "bot.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert any(e["message"] == "operation finished" and e["result"] == "succeeded" for e in entries)
    bolt = [e["message"] for e in entries if e["logger"].startswith("slack_bolt") and e["level"] != "INFO"]
    assert not bolt, f"a first start says nothing the operator need not act on: {bolt}"
    assert fake.bot_token not in "".join(lines) and fake.app_token not in "".join(lines)


async def test_two_replicas_on_dynamodb_one_dies_the_other_finishes(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = await dynamodb_state("tugboat-state")
    world.simulator.rollout_seconds = 12
    lease = 6.0
    holder, other = await two_replicas(processes, world, fake, tmp_path, state, lease)
    parent = await thread_under_way(fake, "/deploy", "api staging v2", reached=UPDATED)

    for _ in range(2):  # Slack spreads envelopes over both sockets: one lands on each
        fake.slash_command("/deploy", "api staging v3", user="U0RIVAL")
    refusal = await wait_for(
        lambda: [m for m in fake.ephemerals(user="U0RIVAL") if "is busy" in m.flat][1:],
        timeout=20,
        what="refusals",
    )
    assert refusal

    owner = holder if await owner_of_the_deploy("tugboat-state") == "replica-a" else other
    owner.kill()
    final = await final_parent(fake, "C0STAGING", timeout=lease + 10)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Tugboat restarted and picked this up again" in replies


async def test_kill_9_between_the_rollout_and_the_schedules_then_restart_moves_them(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    """The rollout succeeded and the bot died reading the first schedule: the next one moves them."""
    catalog = tmp_path / "tugboat.yml"
    example = EXAMPLE.read_text()
    catalog.write_text(
        example.replace("        confirm: true\n", "").replace("        before_deploy: [migrate]\n", "")
    )
    state = f"sqlite:///{tmp_path / 'state.db'}"
    held = world.hold("scheduler", "get_schedule")
    first = await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    fake.slash_command("/deploy", "api production v2", user="U0ADMIN")
    await wait_for(held.reached.is_set, timeout=30, what="the bot reading its first schedule")
    parent = parents(fake, "C0PROD")[0]
    first.kill()
    held.release()
    assert scheduled(world, "nightly-report") == "api-production:1"

    await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    final = await final_parent(fake, "C0PROD", timeout=60)
    assert final.ts == parent.ts and len(parents(fake, "C0PROD")) == 1
    assert "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Tugboat restarted and picked this up again" in replies
    assert "Schedule `nightly-report`: `api-production:1` → `:2`" in replies
    assert scheduled(world, "nightly-report") == "api-production:2"
    assert scheduled(world, "weekly-digest", "reports") == "api-digest-production:2"


def scheduled(world: SandboxWorld, name: str, group: str = "default") -> str:
    found = world.client("scheduler").get_schedule(Name=name, GroupName=group)
    return str(found["Target"]["EcsParameters"]["TaskDefinitionArn"]).rsplit("/", 1)[-1]
