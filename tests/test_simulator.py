"""The sandbox world as a bot sees it: boto3 over HTTP against moto plus the simulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.domain.aws import registrable
from bot.sandbox.fake_slack import wait_for_sync
from bot.sandbox.world import SandboxWorld
from tests.conftest import IMAGE, fresh_world

REPO = Path(__file__).resolve().parent.parent
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(scope="module")
def world(shared_world: SandboxWorld) -> SandboxWorld:
    """The session's world, emptied once for this module, as SandboxWorld(seed=7) would start."""
    return fresh_world(shared_world, rollout_seconds=1.0, tick=0.05, task_seconds=0.5, seed=7)


@pytest.fixture(scope="module")
def ecs(world: SandboxWorld) -> Any:
    return world.client("ecs", config=NO_RETRIES)


def describe(ecs: Any, cluster: str, service: str) -> dict[str, Any]:
    return dict(ecs.describe_services(cluster=cluster, services=[service])["services"][0])


def new_revision(ecs: Any, family: str, tag: str) -> str:
    """Register family's latest revision again with the web image at ``tag``, as a deploy does."""
    td = registrable(ecs.describe_task_definition(taskDefinition=family)["taskDefinition"])
    for container in td["containerDefinitions"]:
        if container["name"] == "web":
            container["image"] = f"{IMAGE}:{tag}"
    return str(ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"])


def settled(ecs: Any, cluster: str, service: str) -> dict[str, Any] | None:
    """The service once it has one deployment that is no longer IN_PROGRESS."""
    svc = describe(ecs, cluster, service)
    deployments = svc["deployments"]
    if len(deployments) == 1 and deployments[0]["rolloutState"] != "IN_PROGRESS":
        return svc
    return None


def messages(svc: dict[str, Any]) -> list[str]:
    return [e["message"] for e in svc["events"]]


def run_one_off(world: SandboxWorld, ecs: Any, command: list[str]) -> dict[str, Any]:
    network = describe(ecs, "staging", "api")["networkConfiguration"]
    task = ecs.run_task(
        cluster="staging",
        taskDefinition="api-staging",
        launchType="FARGATE",
        networkConfiguration=network,
        startedBy="tugboat",
        overrides={"containerOverrides": [{"name": "web", "command": command}]},
    )["tasks"][0]
    return dict(task)


def describe_task(ecs: Any, cluster: str, arn: str) -> dict[str, Any]:
    return dict(ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0])


def stopped(ecs: Any, cluster: str, arn: str) -> dict[str, Any] | None:
    task = describe_task(ecs, cluster, arn)
    return task if task["lastStatus"] == "STOPPED" else None


def container(task: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(c for c in task["containers"] if c["name"] == name))


# -- the seeded world ------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["staging", "production"])
def test_seeded_services_start_steady(world: SandboxWorld, ecs: Any, env: str) -> None:
    svc = describe(ecs, env, "api")
    assert svc["desiredCount"] == svc["runningCount"] == 2
    assert svc["pendingCount"] == 0
    assert svc["launchType"] == "FARGATE"
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
    breaker = svc["deploymentConfiguration"]["deploymentCircuitBreaker"]
    assert breaker == {"enable": True, "rollback": True}
    [deployment] = svc["deployments"]
    assert deployment["status"] == "PRIMARY"
    assert deployment["rolloutState"] == "COMPLETED"
    assert deployment["runningCount"] == deployment["desiredCount"] == 2
    assert deployment["id"].startswith("ecs-svc/") and len(deployment["id"]) == 8 + 19
    assert svc["taskDefinition"].endswith(f":task-definition/api-{env}:1")
    assert messages(svc)[0] == "(service api) has reached a steady state."

    arns = ecs.list_tasks(cluster=env, desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster=env, tasks=arns)["tasks"]
    service_tasks = [t for t in tasks if t["group"] == "service:api"]
    assert len(service_tasks) == 2
    for task in service_tasks:
        assert task["lastStatus"] == "RUNNING"
        assert task["startedBy"] == deployment["id"]
        assert {c["name"] for c in task["containers"]} == {"web", "log-router"}

    td = ecs.describe_task_definition(taskDefinition=f"api-{env}")["taskDefinition"]
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["networkMode"] == "awsvpc"
    assert td["cpu"] and td["memory"] and td["executionRoleArn"] and td["taskRoleArn"]
    web = next(c for c in td["containerDefinitions"] if c["name"] == "web")
    assert web["image"] == f"{IMAGE}:v1"
    assert web["essential"] is True
    assert web["memory"] == 512
    assert web["portMappings"][0]["containerPort"] == 8080
    assert web["environment"]
    assert web["logConfiguration"]["options"]["awslogs-group"] == f"/ecs/api-{env}"
    assert web["logConfiguration"]["options"]["awslogs-stream-prefix"] == "api"
    sidecar = next(c for c in td["containerDefinitions"] if c["name"] == "log-router")
    assert sidecar["image"].startswith("public.ecr.aws/aws-observability/aws-for-fluent-bit:")
    assert sidecar["memory"] == 128


def test_seeded_images_and_log_groups(world: SandboxWorld) -> None:
    ecr = world.client("ecr")
    images = ecr.describe_images(repositoryName="acme/api")["imageDetails"]
    tags = {tag for image in images for tag in image.get("imageTags", [])}
    assert {"v1", "v2", "v3", "broken", *world.EXAMPLE_SHAS} <= tags
    assert all(len(sha) == 40 for sha in world.EXAMPLE_SHAS)
    digests = {image["imageDigest"] for image in images}
    assert len(digests) == len(images)

    world.push_image("acme/api", "v4")
    found = ecr.describe_images(repositoryName="acme/api", imageIds=[{"imageTag": "v4"}])
    assert found["imageDetails"][0]["imageDigest"].startswith("sha256:")

    logs = world.client("logs")
    groups = {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]}
    assert {"/ecs/api-staging", "/ecs/api-production"} <= groups


# -- rolling deployments ---------------------------------------------------------------------


def test_update_service_rolls_out_new_revision(world: SandboxWorld, ecs: Any) -> None:
    world.seed_service("sim", "rolling", "rolling", f"{IMAGE}:v1")
    before = describe(ecs, "sim", "rolling")
    old_id = before["deployments"][0]["id"]
    arn = new_revision(ecs, "rolling", "v2")

    response = ecs.update_service(cluster="sim", service="rolling", taskDefinition=arn)["service"]
    primary, old = response["deployments"]
    assert primary["status"] == "PRIMARY" and primary["taskDefinition"] == arn
    assert primary["id"] != old_id and len(primary["id"]) == 8 + 19
    assert primary["rolloutState"] == "IN_PROGRESS"
    assert primary["rolloutStateReason"] == f"ECS deployment {primary['id']} in progress."
    assert primary["runningCount"] == 0 and primary["desiredCount"] == 2
    assert old["status"] == "ACTIVE" and old["id"] == old_id and old["runningCount"] == 2
    assert response["taskDefinition"] == arn

    right_after = describe(ecs, "sim", "rolling")
    assert [d["id"] for d in right_after["deployments"]] == [primary["id"], old_id]

    seen_pending = wait_for_sync(
        lambda: describe(ecs, "sim", "rolling")["deployments"][0]["pendingCount"] > 0,
        what="new tasks pending",
    )
    assert seen_pending

    svc = wait_for_sync(lambda: settled(ecs, "sim", "rolling"), what="rollout to settle")
    [done] = svc["deployments"]
    assert done["id"] == primary["id"]
    assert done["rolloutState"] == "COMPLETED"
    assert done["runningCount"] == done["desiredCount"] == svc["runningCount"] == 2
    assert svc["taskDefinition"] == done["taskDefinition"] == arn

    events = messages(svc)
    assert events[0] == "(service rolling) has reached a steady state."
    assert events[1] == f"(service rolling) (deployment {primary['id']}) deployment completed."
    started = [m for m in events if m.startswith("(service rolling) has started 1 tasks: (task ")]
    stopped_ = [m for m in events if "has stopped 1 running tasks" in m]
    assert len(started) == 2 and len(stopped_) == 2
    ids = [e["id"] for e in svc["events"]]
    assert len(set(ids)) == len(ids)
    created = [e["createdAt"] for e in svc["events"]]
    assert created == sorted(created, reverse=True)

    deployment_id = primary["id"]
    assert world.simulator.completed_at("sim", "rolling", deployment_id) is not None
    running = ecs.list_tasks(cluster="sim", desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster="sim", tasks=running)["tasks"]
    mine = [t for t in tasks if t["group"] == "service:rolling"]
    assert len(mine) == 2
    assert all(t["startedBy"] == deployment_id and t["taskDefinitionArn"] == arn for t in mine)


def test_broken_image_trips_breaker_and_rolls_back(world: SandboxWorld, ecs: Any) -> None:
    world.seed_service("sim", "fragile", "fragile", f"{IMAGE}:v1")
    good = describe(ecs, "sim", "fragile")
    good_td = good["taskDefinition"]
    good_id = good["deployments"][0]["id"]
    broken_td = new_revision(ecs, "fragile", "broken")
    failing = ecs.update_service(cluster="sim", service="fragile", taskDefinition=broken_td)
    failing_id = failing["service"]["deployments"][0]["id"]

    def rolled_back() -> dict[str, Any] | None:
        svc = describe(ecs, "sim", "fragile")
        states = {d["id"]: d for d in svc["deployments"]}
        failed = states.get(failing_id)
        if (
            failed
            and failed["rolloutState"] == "FAILED"
            and svc["deployments"][0]["id"]
            not in (
                failing_id,
                good_id,
            )
        ):
            return svc
        return None

    svc = wait_for_sync(rolled_back, what="circuit breaker")
    rollback, failed = svc["deployments"][0], svc["deployments"][1]
    assert failed["id"] == failing_id and failed["status"] == "ACTIVE"
    assert failed["rolloutStateReason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["failedTasks"] >= 3
    assert rollback["status"] == "PRIMARY" and rollback["taskDefinition"] == good_td
    events = messages(svc)
    assert f"(service fragile) (deployment {failing_id}) deployment failed: tasks failed to start." in events
    assert f"(service fragile) rolling back to deployment {good_id}." in events

    svc = wait_for_sync(lambda: settled(ecs, "sim", "fragile"), what="rollback to complete")
    [done] = svc["deployments"]
    assert done["id"] == rollback["id"] and done["rolloutState"] == "COMPLETED"
    assert done["taskDefinition"] == svc["taskDefinition"] == good_td
    assert done["runningCount"] == 2

    arns = ecs.list_tasks(cluster="sim", desiredStatus="STOPPED")["taskArns"]
    tasks = [
        t
        for i in range(0, len(arns), 100)
        for t in ecs.describe_tasks(cluster="sim", tasks=arns[i : i + 100])["tasks"]
    ]
    crashed = [
        t for t in tasks if t["startedBy"] == failing_id and t.get("stopCode") != "ServiceSchedulerInitiated"
    ]
    assert len(crashed) == 3
    for task in crashed:
        assert task["lastStatus"] == "STOPPED"
        assert task["stopCode"] in ("TaskFailedToStart", "EssentialContainerExited")
        assert task["stoppedReason"] == "Essential container in task exited"
        web = container(task, "web")
        assert web["exitCode"] in (1, 139)
        assert web["reason"].startswith("CannotStartContainerError:")


def test_breaker_without_rollback_stays_failed(world: SandboxWorld, ecs: Any) -> None:
    world.seed_service("sim", "norollback", "norollback", f"{IMAGE}:v1")
    ecs.update_service(
        cluster="sim",
        service="norollback",
        deploymentConfiguration={"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
    )
    arn = new_revision(ecs, "norollback", "broken-again")
    ecs.update_service(cluster="sim", service="norollback", taskDefinition=arn)

    def failed() -> dict[str, Any] | None:
        svc = describe(ecs, "sim", "norollback")
        return svc if svc["deployments"][0]["rolloutState"] == "FAILED" else None

    svc = wait_for_sync(failed, what="FAILED deployment")
    assert svc["deployments"][0]["status"] == "PRIMARY"
    assert svc["deployments"][0]["taskDefinition"] == arn
    assert world.simulator.wait_idle(5)
    svc = describe(ecs, "sim", "norollback")
    assert svc["deployments"][0]["rolloutState"] == "FAILED"
    assert svc["deployments"][1]["runningCount"] == 2  # the old tasks keep serving


def test_pause_force_scale_and_replace(world: SandboxWorld, ecs: Any) -> None:
    world.seed_service("sim", "knobs", "knobs", f"{IMAGE}:v1")
    sim = world.simulator
    sim.pause()
    try:
        response = ecs.update_service(cluster="sim", service="knobs", forceNewDeployment=True)
        deployments = response["service"]["deployments"]
        new_id = deployments[0]["id"]
        assert len(deployments) == 2 and deployments[0]["taskDefinition"] == deployments[1]["taskDefinition"]
        assert not sim.wait_idle(0.3)  # paused: nothing moves
        assert describe(ecs, "sim", "knobs")["deployments"][0]["pendingCount"] == 0
    finally:
        sim.resume()
    svc = wait_for_sync(lambda: settled(ecs, "sim", "knobs"), what="forced deployment")
    assert svc["deployments"][0]["id"] == new_id

    ecs.update_service(cluster="sim", service="knobs", desiredCount=3)
    assert sim.wait_idle(10)
    svc = describe(ecs, "sim", "knobs")
    assert svc["runningCount"] == svc["deployments"][0]["runningCount"] == 3

    running = ecs.list_tasks(cluster="sim", startedBy=new_id, desiredStatus="RUNNING")["taskArns"]
    victim = running[0]
    ecs.stop_task(cluster="sim", task=victim, reason="chaos")
    done = wait_for_sync(lambda: stopped(ecs, "sim", victim), what="service task to stop")
    assert done["stopCode"] == "UserInitiated"
    assert sim.wait_idle(10)
    assert describe(ecs, "sim", "knobs")["runningCount"] == 3  # ECS replaced it


# -- one-off tasks ---------------------------------------------------------------------------


def test_migrate_task_exits_zero_and_logs(world: SandboxWorld, ecs: Any) -> None:
    task = run_one_off(world, ecs, ["bin/rails", "db:migrate"])
    assert task["lastStatus"] == "PROVISIONING"
    assert task["desiredStatus"] == "RUNNING"
    done = wait_for_sync(lambda: stopped(ecs, "staging", task["taskArn"]), what="migrate to stop")
    assert done["stopCode"] == "EssentialContainerExited"
    assert done["stoppedReason"] == "Essential container in task exited"
    assert done["stoppedAt"] >= done["startedAt"]
    web = container(done, "web")
    assert web["exitCode"] == 0 and web["lastStatus"] == "STOPPED"

    task_id = task["taskArn"].rsplit("/", 1)[-1]
    logs = world.client("logs")
    events = logs.get_log_events(
        logGroupName="/ecs/api-staging",
        logStreamName=f"api/web/{task_id}",
        startFromHead=True,
    )["events"]
    lines = [e["message"] for e in events]
    assert any("CreateWidgets: migrating" in line for line in lines)
    assert "-- create_table(:widgets)" in lines
    assert "CreateWidgets: migrated (0.0123s)" in lines[-1]


def test_failing_task_exits_one(world: SandboxWorld, ecs: Any) -> None:
    task = run_one_off(world, ecs, ["bin/rails", "db:migrate:fail"])
    done = wait_for_sync(lambda: stopped(ecs, "staging", task["taskArn"]), what="task to fail")
    assert container(done, "web")["exitCode"] == 1
    task_id = task["taskArn"].rsplit("/", 1)[-1]
    events = world.client("logs").get_log_events(
        logGroupName="/ecs/api-staging", logStreamName=f"api/web/{task_id}", startFromHead=True
    )["events"]
    assert events[-1]["message"].startswith("rails aborted!")


def test_scripted_task(world: SandboxWorld, ecs: Any) -> None:
    world.simulator.script_task("data:backfill", exit_code=3, log_lines=["one", "two"], seconds=0.2)
    task = run_one_off(world, ecs, ["bin/rails", "data:backfill"])
    done = wait_for_sync(lambda: stopped(ecs, "staging", task["taskArn"]), what="scripted task")
    assert container(done, "web")["exitCode"] == 3


def test_sleep_task_runs_until_stopped(world: SandboxWorld, ecs: Any) -> None:
    task = run_one_off(world, ecs, ["sleep", "3600"])
    arn = task["taskArn"]
    wait_for_sync(lambda: describe_task(ecs, "staging", arn)["lastStatus"] == "RUNNING", what="running")
    assert world.simulator.wait_idle(5)  # the simulator has nothing left to move on its own
    assert describe_task(ecs, "staging", arn)["lastStatus"] == "RUNNING"

    response = ecs.stop_task(cluster="staging", task=arn, reason="Stopped by tugboat")["task"]
    assert response["desiredStatus"] == "STOPPED"
    done = wait_for_sync(lambda: stopped(ecs, "staging", arn), what="stop to land")
    assert done["stopCode"] == "UserInitiated"
    assert done["stoppedReason"] == "Stopped by tugboat"
    assert container(done, "web")["exitCode"] == 137


# -- counting and faults ---------------------------------------------------------------------


def test_calls_are_counted_server_side(world: SandboxWorld) -> None:
    world.reset_calls()
    world.seed_service("sim", "counted", "counted", f"{IMAGE}:v1")
    assert world.calls() == {}  # the world's own seeding is not counted

    ecs = world.client("ecs")
    for _ in range(3):
        ecs.describe_services(cluster="staging", services=["api"])
    ecs.list_clusters()
    world.client("sts").get_caller_identity()
    world.client("logs").describe_log_groups()
    calls = world.calls()
    assert calls == {
        "ecs:DescribeServices": 3,
        "ecs:ListClusters": 1,
        "sts:GetCallerIdentity": 1,
        "logs:DescribeLogGroups": 1,
    }
    log = world.call_log()
    assert [op for _, op in log][:3] == ["ecs:DescribeServices"] * 3
    assert [t for t, _ in log] == sorted(t for t, _ in log)
    world.reset_calls()
    assert world.calls() == {} and world.call_log() == []


def test_injected_access_denied(world: SandboxWorld, ecs: Any) -> None:
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/tugboat is not authorized to perform: ecs:UpdateService"
    )
    world.inject_error("ecs:UpdateService", "AccessDeniedException", message, times=1)
    try:
        with pytest.raises(ClientError) as denied:
            ecs.update_service(cluster="staging", service="api", desiredCount=2)
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
        assert denied.value.response["Error"]["Message"] == message
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        ecs.update_service(cluster="staging", service="api", desiredCount=2)  # times=1 used up
        assert world.injected()["ecs:UpdateService:AccessDeniedException"] == 1

        world.inject_error("sts:GetCallerIdentity", "AccessDenied", "nope")
        with pytest.raises(ClientError) as sts_denied:
            world.client("sts").get_caller_identity()
        assert sts_denied.value.response["Error"]["Code"] == "AccessDenied"
    finally:
        world.clear_errors()


def test_injected_throttling(world: SandboxWorld) -> None:
    world.reset_calls()
    try:
        world.inject_error("ecs:DescribeServices", "ThrottlingException", "Rate exceeded", times=1)
        retries = Config(retries={"mode": "standard", "total_max_attempts": 2})
        response = world.client("ecs", config=retries).describe_services(cluster="staging", services=["api"])
        assert response["ResponseMetadata"]["RetryAttempts"] == 1  # botocore retried throttling
        world.clear_errors()

        world.inject_error("ecs:DescribeServices", "ThrottlingException", "Rate exceeded", probability=0.3)
        ecs = world.client("ecs", config=NO_RETRIES)
        throttled = 0
        for _ in range(40):
            try:
                ecs.describe_services(cluster="staging", services=["api"])
            except ClientError as error:
                assert error.response["Error"]["Code"] == "ThrottlingException"
                throttled += 1
        assert 0 < throttled < 40
        assert world.injected()["ecs:DescribeServices:ThrottlingException"] == throttled + 1
        assert world.calls()["ecs:DescribeServices"] == 42
    finally:
        world.clear_errors()


# -- a world in its own process --------------------------------------------------------------


def test_world_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.world", "--rollout-seconds", "0.5"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["endpoint_url"].startswith("http://127.0.0.1:")
        import boto3

        ecs = boto3.client(
            "ecs",
            endpoint_url=info["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        svc = describe(ecs, "production", "api")
        assert svc["deployments"][0]["rolloutState"] == "COMPLETED"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
