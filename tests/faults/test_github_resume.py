"""A deploy that outlives its process still ends its GitHub deployment, and makes only one.

The bot runs as a real child process against the fake GitHub (which checks the token), is
killed mid-rollout and started again: the resumed deploy finds its deployment, from its record
or, when the record never learnt the id, from GitHub itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.fake_github import MIDDLE, FakeGitHub
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.state import SqliteStore
from tests.conftest import one_service_text
from tests.faults.process import BotProcess, launch
from tests.slackview import final_parent, parents, thread_text, thread_under_way


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as served:
        yield served


async def forget_the_deployment(state: Path) -> None:
    """The running deploy's record as a store write that lagged would leave it: no deployment id."""
    store = SqliteStore(state)
    await store.open()
    try:
        (record,) = await store.unfinished()
        assert isinstance(record.extra.pop("github_deployment"), int)
        await store.save(record)
    finally:
        await store.close()


@pytest.mark.parametrize("record_knows_it", [True, False], ids=["from the record", "from GitHub"])
async def test_a_deploy_resumed_after_kill_9_ends_its_one_github_deployment_in_success(
    world: SandboxWorld,
    fake: FakeSlack,
    github: FakeGitHub,
    tmp_path: Path,
    processes: list[BotProcess],
    record_knows_it: bool,
) -> None:
    catalog, state = tmp_path / "tugboat.yml", tmp_path / "state.db"
    catalog.write_text(one_service_text())

    async def start_bot() -> BotProcess:
        bot = launch(processes, world, fake, tmp_path, f"sqlite:///{state}", catalog)
        bot.env.update(GITHUB_TOKEN=FakeGitHub.token, GITHUB_API_URL=github.api_url)
        return await bot.up(fake)

    world.simulator.rollout_seconds = 5
    first = await start_bot()
    parent = await thread_under_way(
        fake, "/deploy", f"api staging {MIDDLE}", reached="Service updated to revision 2"
    )
    await wait_for(
        lambda: [s["state"] for d in github.deployments_of() for s in d.statuses] == ["in_progress"],
        what="the deployment in progress",
    )
    first.kill()
    if not record_knows_it:
        await forget_the_deployment(state)

    await start_bot()
    final = await final_parent(fake, "C0STAGING", timeout=60)
    await wait_for(
        lambda: github.deployments_of()[0].state == "success", timeout=10, what="the deployment's success"
    )

    assert final.ts == parent.ts and len(parents(fake, "C0STAGING")) == 1 and "*Succeeded*" in final.flat
    assert "Tugboat restarted and picked this up again" in await thread_text(fake, parent)
    (deployment,) = github.deployments_of()
    assert (deployment.sha, deployment.environment) == (MIDDLE, "staging")
    assert [s["state"] for s in deployment.statuses] == ["in_progress", "success"]
    assert deployment.statuses[-1]["log_url"] == deployment.payload["thread"]
