"""A release survives its bot: kill -9 mid-release, and the next process ends the same thread."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.world import SandboxWorld
from tests.conftest import EXAMPLE
from tests.faults.process import BotProcess, launch
from tests.slackview import final_parent, parents, service, thread_text, thread_under_way


async def test_kill_9_mid_release_then_restart_finishes_the_same_thread(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    world.simulator.rollout_seconds = 8
    state, catalog = f"sqlite:///{tmp_path / 'state.db'}", EXAMPLE
    first = await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    parent = await thread_under_way(
        fake, "/deploy", "api staging v2", reached="*api-worker*: Service updated to revision 2"
    )
    first.kill()
    await launch(processes, world, fake, tmp_path, state, catalog).up(fake)

    final = await final_parent(fake, "C0STAGING", timeout=60)
    assert final.ts == parent.ts and len(parents(fake, "C0STAGING")) == 1
    assert "*Succeeded*" in final.flat
    assert "api :white_check_mark: 2/2 · api-worker :white_check_mark: 1/1" in final.flat
    replies = await thread_text(fake, parent, must_contain="Release is live")
    assert "Tugboat restarted and picked this up again" in replies
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    assert service(world, "staging", "api-worker")["taskDefinition"].endswith("api-worker-staging:2")


async def test_kill_9_mid_failing_release_then_restart_takes_it_all_back(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    world.simulator.rollout_seconds = 8
    world.mark_unstartable("v2", container="worker")
    state, catalog = f"sqlite:///{tmp_path / 'state.db'}", EXAMPLE
    first = await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    parent = await thread_under_way(
        fake, "/deploy", "api staging v2", reached="*api-worker*: Service updated to revision 2"
    )
    first.kill()
    await launch(processes, world, fake, tmp_path, state, catalog).up(fake)

    final = await final_parent(fake, "C0STAGING", timeout=90)
    assert final.ts == parent.ts and "*Failed*" in final.flat
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")
    assert service(world, "staging", "api-worker")["taskDefinition"].endswith("api-worker-staging:1")
    replies = await thread_text(fake, parent, must_contain="*api*: Service is back on revision 1")
    assert "Tugboat restarted and picked this up again" in replies
