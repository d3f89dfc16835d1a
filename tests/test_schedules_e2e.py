"""Scheduled tasks follow the deploy: Scheduler schedules and rule targets, end to end.

The example's production lists three schedules (see bot/sandbox/schedules.py): nightly-report
and hourly-cleanup/cleanup run the service's family; reports/weekly-digest runs another family
with a mailer sidecar. Everything is checked in moto: what a schedule runs, and that nothing
else of it changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.domain.catalog import Catalog
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.schedules import DIGEST_FAMILY, MAILER_IMAGE
from bot.sandbox.world import SandboxWorld
from tests.conftest import example_catalog, one_service_catalog, running
from tests.slackview import deployed, final_parent, parents, service, thread_text

ADMIN = "U0ADMIN"
UNCONFIRMED = ("        confirm: true\n", "")
NO_MIGRATION = ("        before_deploy: [migrate]\n", "")
VOLATILE = ("LastModificationDate", "ResponseMetadata")


def production(*more: tuple[str, str]) -> Catalog:
    """The example deploying `api` alone, with production deploying without a confirmation card."""
    return one_service_catalog(UNCONFIRMED, *more)


def schedule(world: SandboxWorld, name: str, group: str = "default") -> dict[str, Any]:
    answer = world.client("scheduler").get_schedule(Name=name, GroupName=group)
    return {k: v for k, v in answer.items() if k not in VOLATILE}


def rule_target(world: SandboxWorld) -> dict[str, Any]:
    targets = world.client("events").list_targets_by_rule(Rule="hourly-cleanup")["Targets"]
    return dict(next(t for t in targets if t["Id"] == "cleanup"))


def runs(found: dict[str, Any]) -> str:
    """`api-production:2`: the task definition a schedule (or a rule target) starts."""
    params = found.get("Target", found)["EcsParameters"]
    return str(params["TaskDefinitionArn"]).rsplit("/", 1)[-1]


def without_task_definition(found: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = {**found}
    holder = copied["Target"] = {**copied["Target"]} if "Target" in copied else None
    params = (holder if holder is not None else copied)["EcsParameters"] = {
        **(holder if holder is not None else copied)["EcsParameters"]
    }
    params.pop("TaskDefinitionArn")
    return copied


def images(world: SandboxWorld, task_definition: str) -> dict[str, str]:
    described = world.client("ecs").describe_task_definition(taskDefinition=task_definition)
    return {c["name"]: c["image"] for c in described["taskDefinition"]["containerDefinitions"]}


def everything(world: SandboxWorld) -> dict[str, dict[str, Any]]:
    return {
        "nightly-report": schedule(world, "nightly-report"),
        "hourly-cleanup": rule_target(world),
        "weekly-digest": schedule(world, "weekly-digest", "reports"),
    }


async def test_a_deploy_moves_every_schedule_and_changes_nothing_else(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    before = everything(world)
    async with running(fake, production(), tmp_path / "t.db"):
        parent = await deployed(fake, "api production v2", user=ADMIN, channel="C0PROD")
        assert "*Succeeded*" in parent.flat and "with warnings" not in parent.flat
        replies = await thread_text(fake, parent, must_contain="is live")

    assert "Schedule `nightly-report`: `api-production:1` → `:2`" in replies
    assert "Schedule `hourly-cleanup`: `api-production:1` → `:2`" in replies
    assert f"Schedule `weekly-digest`: `{DIGEST_FAMILY}:1` → `:2`" in replies
    after = everything(world)
    assert runs(after["nightly-report"]) == "api-production:2"
    assert runs(after["hourly-cleanup"]) == "api-production:2"
    assert runs(after["weekly-digest"]) == f"{DIGEST_FAMILY}:2"
    for name in before:  # expression, state, role, overrides, network, retry policy: byte for byte
        assert without_task_definition(after[name]) == without_task_definition(before[name]), name
    digest = images(world, f"{DIGEST_FAMILY}:2")
    assert digest["web"].endswith("acme/api:v2") and digest["mailer"] == MAILER_IMAGE
    old = world.client("ecs").describe_task_definition(taskDefinition=f"{DIGEST_FAMILY}:1")["taskDefinition"]
    new = world.client("ecs").describe_task_definition(taskDefinition=f"{DIGEST_FAMILY}:2")["taskDefinition"]
    assert [c for c in new["containerDefinitions"] if c["name"] == "mailer"] == [
        c for c in old["containerDefinitions"] if c["name"] == "mailer"
    ]


async def test_a_failed_deploy_leaves_the_schedules_and_a_rollback_moves_them_back(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, production(NO_MIGRATION), tmp_path / "t.db"):
        await deployed(fake, "api production v2", user=ADMIN, channel="C0PROD")
        moved = everything(world)
        assert runs(moved["nightly-report"]) == "api-production:2"

        failed = await deployed(
            fake, "api production broken", user=ADMIN, channel="C0PROD", index=1, timeout=60
        )
        assert "*Failed*" in failed.flat
        assert "Schedule `" not in await thread_text(fake, failed, must_contain="Failed")
        assert everything(world) == moved  # ECS's circuit breaker went back; the schedules never moved
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")

        fake.slash_command("/rollback", "api production", user=ADMIN, channel="C0PROD")
        rollback = await final_parent(fake, "C0PROD", index=2, timeout=60)
        assert "Rollback api production" in rollback.flat and "*Succeeded*" in rollback.flat
        replies = await thread_text(fake, rollback, must_contain="Back on revision 1")

    assert "Schedule `nightly-report`: `api-production:2` → `:1`" in replies
    back = everything(world)
    assert runs(back["nightly-report"]) == runs(back["hourly-cleanup"]) == "api-production:1"
    assert images(world, runs(back["weekly-digest"]))["web"].endswith("acme/api:v1")


async def test_a_schedule_deleted_meanwhile_ends_the_deploy_succeeded_with_warnings(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    world.client("scheduler").delete_schedule(Name="nightly-report")
    async with running(fake, production(NO_MIGRATION), tmp_path / "t.db"):
        parent = await deployed(fake, "api production v2", user=ADMIN, channel="C0PROD")
        assert "*Succeeded with warnings*" in parent.flat
        replies = await thread_text(fake, parent, must_contain="Succeeded with warnings")

    assert "Schedule `nightly-report` was not moved: schedule nightly-report does not exist" in replies
    assert "Schedule `hourly-cleanup`: `api-production:1` → `:2`" in replies
    assert runs(rule_target(world)) == "api-production:2"
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")


async def test_status_lists_the_schedules_and_flags_one_changed_out_of_band(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    ecs, scheduler = world.client("ecs"), world.client("scheduler")
    digest = ecs.describe_task_definition(taskDefinition=f"{DIGEST_FAMILY}:1")["taskDefinition"]
    changed = [
        {**c, "image": c["image"].replace(":v1", ":v3")} if c["name"] == "web" else c
        for c in digest["containerDefinitions"]
    ]
    keep = ("family", "requiresCompatibilities", "networkMode", "cpu", "memory", "executionRoleArn")
    registered = ecs.register_task_definition(containerDefinitions=changed, **{k: digest[k] for k in keep})[
        "taskDefinition"
    ]["taskDefinitionArn"]
    found = scheduler.get_schedule(Name="weekly-digest", GroupName="reports")
    found["Target"]["EcsParameters"]["TaskDefinitionArn"] = registered
    scheduler.update_schedule(
        Name="weekly-digest",
        GroupName="reports",
        ScheduleExpression=found["ScheduleExpression"],
        FlexibleTimeWindow=found["FlexibleTimeWindow"],
        State=found["State"],
        Target=found["Target"],
    )

    async with running(fake, production(), tmp_path / "t.db"):
        fake.slash_command("/ecs-status", "api production", user=ADMIN, channel="C0PROD")
        card = await wait_for(lambda: next(iter(parents(fake, "C0PROD")), None), what="status card")

    lines = card.flat.splitlines()
    nightly = next(line for line in lines if "`nightly-report`" in line)
    assert "`cron(0 3 * * ? *)` Europe/Berlin" in nightly and "next " in nightly
    assert "api-production:1" in nightly and ":warning:" not in nightly
    hourly = next(line for line in lines if "`hourly-cleanup`" in line)
    assert "`rate(1 hour)`" in hourly and "api-production:1" in hourly
    weekly = next(line for line in lines if "`weekly-digest`" in line)
    assert "disabled" in weekly and f"{DIGEST_FAMILY}:2" in weekly
    assert ":warning:" in weekly and "runs `v3`, not the service's `v1`" in weekly


async def test_run_task_runs_a_schedule_as_the_schedule_would(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    world.simulator.script_task("reports:nightly", 0, ["report: 42 orders", "report: mailed"], 0.3)
    async with running(fake, production(), tmp_path / "t.db"):
        fake.slash_command("/run-task", "api production nightly-report", user=ADMIN, channel="C0PROD")
        parent = await final_parent(fake, "C0PROD")
        assert "*Succeeded*" in parent.flat and "nightly-report" in parent.flat
        replies = await thread_text(fake, parent, must_contain="exit code web=0")
        assert "report: mailed" in replies

    ecs = world.client("ecs")
    stopped = ecs.list_tasks(cluster="production", desiredStatus="STOPPED", startedBy="tugboat")["taskArns"]
    task = ecs.describe_tasks(cluster="production", tasks=stopped, include=["TAGS"])["tasks"][0]
    assert task["taskDefinitionArn"].endswith("api-production:1")
    assert task["overrides"]["containerOverrides"] == [
        {"name": "web", "command": ["bin/rails", "reports:nightly"]}
    ]
    assert task["launchType"] == "FARGATE"
    nightly = schedule(world, "nightly-report")
    subnets = nightly["Target"]["EcsParameters"]["NetworkConfiguration"]["awsvpcConfiguration"]["Subnets"]
    attached = {d["value"] for a in task["attachments"] for d in a["details"] if d["name"] == "subnetId"}
    assert attached <= set(subnets) and attached


async def test_a_schedule_name_that_is_also_a_task_is_a_catalog_error() -> None:
    import pytest

    from bot.domain.catalog import CatalogError

    with pytest.raises(CatalogError, match="'migrate' is both a task and a schedule"):
        example_catalog(("          - scheduler: nightly-report\n", "          - scheduler: migrate\n"))
