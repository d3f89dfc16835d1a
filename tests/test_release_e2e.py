"""Releases end to end: several services (and containers) deployed as one, all or nothing.

The example app is a release: `api` and `api-worker` in each environment (seeded by
`SandboxWorld.seed_example`), the worker replacing only its `worker` container.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.domain.aws import ServiceRef, ServiceSnapshot
from bot.domain.catalog import Catalog, parse_catalog
from bot.domain.records import Target
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.blocks import CANCEL_ACTION
from commands.status import MemberStatus, ServiceStatus
from tests.conftest import IMAGE, example_catalog, one_service_catalog, running
from tests.slackview import answer_to, deployed, final_parent, parents, service, thread_text, thread_under_way

DEV = "U0DEV"


def images(world: SandboxWorld, cluster: str, name: str) -> dict[str, str]:
    """Each container's image in the task definition the service runs now."""
    arn = service(world, cluster, name)["taskDefinition"]
    described = world.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return {c["name"]: c["image"].rsplit(":", 1)[-1] for c in described["containerDefinitions"]}


def revision(world: SandboxWorld, cluster: str, name: str) -> str:
    return str(service(world, cluster, name)["taskDefinition"]).rsplit("/", 1)[-1]


def shop(world: SandboxWorld) -> Catalog:
    """An app whose task definition runs its image twice (`web` and `cron`) beside a sidecar,
    released with a worker: `containers: [web, cron]` and `services: [shop, shop-worker]`."""
    sidecar = world.default_containers(
        f"{IMAGE}:v1", log_group="/ecs/shop", stream_prefix="shop", environment="x"
    )
    web = sidecar[0]
    cron = {**web, "name": "cron", "command": ["bin/cron"], "portMappings": []}
    worker = {**web, "name": "worker", "command": ["bin/worker"], "portMappings": []}
    world.seed_service("staging", "shop", "shop-staging", f"{IMAGE}:v1", containers=[web, cron, sidecar[1]])
    world.seed_service(
        "staging", "shop-worker", "shop-worker-staging", f"{IMAGE}:v1", desired=1, containers=[worker]
    )
    return parse_catalog(
        f"""
apps:
  shop:
    containers: [web, cron]
    image: {IMAGE}
    environments:
      staging:
        cluster: staging
        channel: C0STAGING
        timeout: 60
        services:
          - name: shop
          - name: shop-worker
            containers: [worker]
""",
        "shop.yml",
    )


def deployment_counts(world: SandboxWorld, cluster: str, name: str) -> list[tuple[str, Any, Any]]:
    described = service(world, cluster, name)
    return [(d["status"], d["runningCount"], d["desiredCount"]) for d in described["deployments"]]


async def test_a_release_succeeds_only_after_every_service_with_only_its_containers_changed(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = shop(world)
    async with running(fake, catalog, tmp_path / "t.db"):
        parent = await deployed(fake, "shop staging v2")

    assert "*Succeeded*" in parent.flat
    assert images(world, "staging", "shop") == {"web": "v2", "cron": "v2", "log-router": "2.32.0"}
    assert images(world, "staging", "shop-worker") == {"worker": "v2"}
    # Succeeded only once both had settled: one deployment each, every task on it running.
    assert deployment_counts(world, "staging", "shop") == [("PRIMARY", 2, 2)]
    assert deployment_counts(world, "staging", "shop-worker") == [("PRIMARY", 1, 1)]
    assert "shop :white_check_mark: 2/2 · shop-worker :white_check_mark: 1/1" in parent.flat
    replies = await thread_text(fake, parent, must_contain="Release is live")
    assert "*shop-worker*: Service updated to revision 2" in replies
    assert "*shop*: Service updated to revision 2" in replies
    assert "shop rev 2 (2/2 tasks running) · shop-worker rev 2 (1/1 tasks running)" in replies


async def test_a_failing_worker_takes_the_whole_release_back(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    world.mark_unstartable("v2", container="worker")
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        parent = await deployed(fake, "api staging v2")
        replies = await thread_text(fake, parent, must_contain="*api*: Service is back on revision 1")

    assert "*Failed*" in parent.flat and "api-worker:" in parent.flat
    assert revision(world, "staging", "api") == "api-staging:1"
    assert revision(world, "staging", "api-worker") == "api-worker-staging:1"
    assert "*api-worker*: Service is back on revision 1" in replies
    assert (
        "api :leftwards_arrow_with_hook: rev 1 · api-worker :leftwards_arrow_with_hook: rev 1" in parent.flat
    )
    assert "*api-worker*: " in replies and "Stopped tasks" in replies


async def test_rollback_after_two_releases_restores_every_service(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        await deployed(fake, "api staging v2", index=0)
        await deployed(fake, "api staging v3", index=1)
        assert revision(world, "staging", "api-worker") == "api-worker-staging:3"

        fake.slash_command("/rollback", "api staging", user=DEV)
        parent = await final_parent(fake, "C0STAGING", 2)
        assert "*Succeeded*" in parent.flat
        assert "Rollback api staging: api rev 2, api-worker rev 2" in parent.flat
        assert revision(world, "staging", "api") == "api-staging:2"
        assert revision(world, "staging", "api-worker") == "api-worker-staging:2"
        replies = await thread_text(fake, parent, must_contain="Release is back")
        assert "the last good release (`v2`)" in replies

        text = await answer_to(fake, "/rollback", "api staging 1", containing="Not rolling back", user=DEV)
        assert "2 services as one release (api, api-worker)" in text
        assert "`/rollback api staging` puts every service back" in text
        assert len(parents(fake, "C0STAGING")) == 3


async def test_a_release_posts_at_most_half_again_the_messages_of_one_service(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    """The Slack budget stays flat: a thread's replies are batched, whatever the service count."""
    world.seed_service("staging", "api-admin", "api-admin-staging", f"{IMAGE}:v1", desired=2)

    def thread_calls(since: int) -> int:
        return sum(c.method in ("chat.postMessage", "chat.update") for c in fake.calls[since:])

    async with running(fake, one_service_catalog(), tmp_path / "one.db"):
        before = len(fake.calls)
        one = await deployed(fake, "api staging v2", index=0)
        single = thread_calls(before)
    worker = "            containers: [worker]   # the same image, in the worker's own container\n"
    three_services = example_catalog((worker, worker + "          - name: api-admin\n"))
    async with running(fake, three_services, tmp_path / "three.db"):
        before = len(fake.calls)
        release = await deployed(fake, "api staging v3", index=1)
        released = thread_calls(before)

    assert "*Succeeded*" in one.flat and "*Succeeded*" in release.flat
    assert revision(world, "staging", "api-admin") == "api-admin-staging:2"
    print(f"Slack messages: one service {single}, a release of three {released}")
    assert released <= 1.5 * single, (single, released)


async def test_status_shows_every_service_and_the_overview_rolls_them_up(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        fake.slash_command("/ecs-status", "api staging", user=DEV, channel="C0DEV")
        card = await wait_for(lambda: next(iter(parents(fake, "C0DEV")), None), what="status card")
        assert "*api* :large_green_circle: 2/2 running" in card.flat
        assert "*api-worker* :large_green_circle: 1/1 running · 0 pending · rev 1" in card.flat

        fake.slash_command("/ecs-status", "api", user=DEV, channel="C0DEV")
        overview = await wait_for(lambda: parents(fake, "C0DEV")[1:2] or None, what="the overview")
    assert ":large_green_circle: *api staging* · 3/3 · 2 services" in overview[0].flat


def test_a_release_is_as_well_as_its_worst_service() -> None:
    ref = ServiceRef("us-east-1", "staging", "api")
    steady = ServiceSnapshot.parse(
        ref, {"desiredCount": 2, "runningCount": 2, "deployments": [{"status": "PRIMARY"}]}
    )
    short = ServiceSnapshot.parse(
        ref, {"desiredCount": 3, "runningCount": 1, "deployments": [{"status": "PRIMARY"}]}
    )
    members = (MemberStatus("api", steady), MemberStatus("api-worker", short))
    status = ServiceStatus(Target("api", "staging"), steady, members=members)
    assert status.state == "degraded"
    assert (
        ServiceStatus(Target("api", "staging"), steady, members=(*members, MemberStatus("x", None))).state
        == "missing"
    )


async def test_cancel_stops_the_whole_release_and_takes_it_back(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    world.simulator.rollout_seconds = 20
    async with running(fake, example_catalog(), tmp_path / "t.db"):
        parent = await thread_under_way(
            fake, "/deploy", "api staging v2", reached="*api-worker*: Service updated to revision 2"
        )
        fake.click("C0STAGING", parent.ts, CANCEL_ACTION, user=DEV)
        world.simulator.rollout_seconds = 0.75
        final = await final_parent(fake, "C0STAGING", timeout=60)
        replies = await thread_text(fake, parent, must_contain="*api-worker*: Service is back on revision 1")
    assert "*Failed*" in final.flat and "Cancelled" in final.flat
    assert "*api*: Service is back on revision 1" in replies
    assert revision(world, "staging", "api") == "api-staging:1"
    assert revision(world, "staging", "api-worker") == "api-worker-staging:1"
