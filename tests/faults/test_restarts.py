"""Tugboat finishes what it started: across SIGKILL, SIGTERM and a dead replica."""

from __future__ import annotations

import json
from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.faults.process import BotProcess, launch
from tests.slackview import final_parent, parents, service, thread_text

DEV = "U0DEV"


async def test_kill_9_mid_rollout_then_restart_finishes_the_same_thread(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    world.simulator.rollout_seconds = 10
    first = launch(processes, world, fake, tmp_path, state)
    await first.up(fake, timeout=30)
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await wait_for(lambda: next(iter(parents(fake, "C0STAGING")), None), timeout=20, what="thread")
    await thread_text(fake, parent, must_contain="Service updated to revision 2", timeout=20)

    first.kill()
    second = launch(processes, world, fake, tmp_path, state)
    await second.up(fake, timeout=30)

    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and len(parents(fake, "C0STAGING")) == 1
    assert "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Tugboat restarted and picked this up again" in replies
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


async def test_kill_9_during_run_task_then_restart_reports_its_exit(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    world.simulator.script_task("db:migrate", 0, ["== migrating", "== migrated"], 8)
    first = launch(processes, world, fake, tmp_path, state)
    await first.up(fake, timeout=30)
    fake.slash_command("/run-task", "api staging migrate", user=DEV)
    parent = await wait_for(lambda: next(iter(parents(fake, "C0STAGING")), None), timeout=20, what="thread")
    await thread_text(fake, parent, must_contain="Started task `migrate`", timeout=20)

    first.kill()
    second = launch(processes, world, fake, tmp_path, state)
    await second.up(fake, timeout=30)

    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="exit code web=0")
    assert "== migrated" in replies


async def test_sigterm_exits_0_quickly_and_the_next_start_finishes(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    state = f"sqlite:///{tmp_path / 'state.db'}"
    world.simulator.rollout_seconds = 10
    first = launch(processes, world, fake, tmp_path, state)
    await first.up(fake, timeout=30)
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await wait_for(lambda: next(iter(parents(fake, "C0STAGING")), None), timeout=20, what="thread")
    await thread_text(fake, parent, must_contain="Service updated to revision 2", timeout=20)

    code, seconds = first.terminate()
    assert code == 0 and seconds < 10, (code, seconds)

    second = launch(processes, world, fake, tmp_path, state)
    await second.up(fake, timeout=30)
    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat

    second.terminate()
    lines = (tmp_path / "bot.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert any(e["message"] == "operation finished" and e["result"] == "succeeded" for e in entries)
    assert fake.bot_token not in "".join(lines) and fake.app_token not in "".join(lines)


async def test_two_replicas_on_dynamodb_one_dies_the_other_finishes(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    from bot.state.dynamodb import DynamoStore

    store = DynamoStore("tugboat-state")
    await store.create_table()
    await store.close()
    state = "dynamodb://tugboat-state"
    world.simulator.rollout_seconds = 12
    lease = 6.0
    holder = launch(processes, world, fake, tmp_path, state, replica="replica-a", lease_s=lease)
    await holder.up(fake, timeout=30)
    other = launch(processes, world, fake, tmp_path, state, replica="replica-b", lease_s=lease).start()
    await wait_for(lambda: other.healthy() and fake.connection_count >= 2, timeout=30, what="second replica")

    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await wait_for(lambda: next(iter(parents(fake, "C0STAGING")), None), timeout=20, what="thread")
    await thread_text(fake, parent, must_contain="Service updated to revision 2", timeout=20)

    for _ in range(2):  # Slack spreads envelopes over both sockets: one lands on each
        fake.slash_command("/deploy", "api staging v3", user="U0RIVAL")
    refusal = await wait_for(
        lambda: [m for m in fake.ephemerals(user="U0RIVAL") if "is busy" in m.flat][1:],
        timeout=20,
        what="refusals",
    )
    assert refusal

    store = DynamoStore("tugboat-state")
    try:
        (running,) = [r for r in await store.unfinished() if r.action == "deploy"]
    finally:
        await store.close()
    owner = holder if running.owner == "replica-a" else other
    owner.kill()
    final = await final_parent(fake, "C0STAGING", timeout=lease + 10)
    assert final.ts == parent.ts and "*Succeeded*" in final.flat
    replies = await thread_text(fake, parent, must_contain="is live")
    assert "Tugboat restarted and picked this up again" in replies
