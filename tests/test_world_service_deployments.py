"""The sandbox world's blue/green, linear and canary deployments, as ECS's API shows them.

moto has no service deployments: the world serves DescribeServiceDeployments,
ListServiceDeployments, ContinueServiceDeployment and StopServiceDeployment itself, and its
simulator walks them through ECS's lifecycle stages. Here one ECS minute lasts 0.2 s.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from bot.domain.aws import registrable
from bot.sandbox.fake_slack import wait_for_sync
from bot.sandbox.world import SandboxWorld, SeededService
from tests.conftest import IMAGE, ROLLOUT_SECONDS, TASK_SECONDS, TICK

MINUTE = 0.2
"""Seconds per ECS minute in these tests."""
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
ONGOING = {"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
BREAKER = "ECS deployment circuit breaker: tasks failed to start."


@pytest.fixture
def world(shared_world: SandboxWorld) -> SandboxWorld:
    """The session's world as conftest's `world` leaves it (other modules in this process count
    on the example being there), with ECS minutes 0.2 s long."""
    shared_world.reset_to_example(ROLLOUT_SECONDS, TICK, task_seconds=TASK_SECONDS, minute_seconds=MINUTE)
    return shared_world


@pytest.fixture
def ecs(world: SandboxWorld) -> Any:
    return world.client("ecs", config=NO_RETRIES)


def pause(*stages: str, minutes: int = 60, action: str = "ROLLBACK") -> dict[str, Any]:
    return {
        "targetType": "PAUSE",
        "lifecycleStages": list(stages),
        "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": action},
    }


def seed(
    world: SandboxWorld,
    strategy: str = "BLUE_GREEN",
    *,
    hooks: Iterable[dict[str, Any]] = (),
    service: str = "api",
    **configuration: Any,
) -> SeededService:
    """A steady two-task service in cluster `bg` that deploys with `strategy`."""
    config = {"strategy": strategy, "bakeTimeInMinutes": 1, "lifecycleHooks": list(hooks), **configuration}
    return world.seed_service("bg", service, service, f"{IMAGE}:v1", deployment_configuration=config)


def deploy(ecs: Any, tag: str = "v2", service: str = "api") -> dict[str, Any]:
    """Register the family again with the image at `tag` and update the service to it."""
    definition = registrable(ecs.describe_task_definition(taskDefinition=service)["taskDefinition"])
    definition["containerDefinitions"][0]["image"] = f"{IMAGE}:{tag}"
    arn = ecs.register_task_definition(**definition)["taskDefinition"]["taskDefinitionArn"]
    return dict(ecs.update_service(cluster="bg", service=service, taskDefinition=arn)["service"])


def described(ecs: Any, arn: str) -> dict[str, Any]:
    [deployment] = ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    return dict(deployment)


def until(ecs: Any, arn: str, check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        deployment = described(ecs, arn)
        return deployment if check(deployment) else None

    return wait_for_sync(look, timeout=15, what=what)


def ended(ecs: Any, arn: str) -> dict[str, Any]:
    return until(ecs, arn, lambda d: d["status"] not in ONGOING, "the service deployment to end")


def paused(ecs: Any, arn: str, stage: str, seen: Iterable[str] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """The deployment once a pause (other than those `seen`) awaits action at `stage`, and it."""
    known = set(seen)

    def waiting(deployment: dict[str, Any]) -> dict[str, Any] | None:
        hooks = deployment["lifecycleHookDetails"]
        return next((h for h in hooks if h["status"] == "AWAITING_ACTION" and h["hookId"] not in known), None)

    deployment = until(
        ecs, arn, lambda d: d.get("lifecycleStage") == stage and waiting(d) is not None, f"a pause at {stage}"
    )
    hook = waiting(deployment)
    assert hook is not None
    return deployment, hook


def answer(ecs: Any, arn: str, hook: dict[str, Any], action: str = "CONTINUE") -> None:
    response = ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook["hookId"], action=action)
    assert response["serviceDeploymentArn"] == arn


def service(ecs: Any, name: str = "api") -> dict[str, Any]:
    return dict(ecs.describe_services(cluster="bg", services=[name])["services"][0])


def running_revisions(ecs: Any, name: str = "api") -> collections.Counter[str]:
    """Task definitions of the service's RUNNING tasks, counted."""
    arns = ecs.list_tasks(cluster="bg", desiredStatus="RUNNING")["taskArns"]
    tasks = ecs.describe_tasks(cluster="bg", tasks=arns)["tasks"] if arns else []
    return collections.Counter(
        t["taskDefinitionArn"]
        for t in tasks
        if t["group"] == f"service:{name}" and t["lastStatus"] == "RUNNING"
    )


def hook_events(world: SandboxWorld) -> list[str]:
    return [e.detail["eventName"] for e in world.simulator.published("ECS Hook State Change")]


def weights(revision: dict[str, Any]) -> tuple[float, float]:
    """(test, production) traffic asked of a revision."""
    return revision["requestedTestTrafficWeight"], revision["requestedProductionTrafficWeight"]


# -- through the stages ----------------------------------------------------------------------


def test_blue_green_goes_through_every_stage_and_the_new_revision_serves(
    world: SandboxWorld, ecs: Any
) -> None:
    seeded = seed(world, bakeTimeInMinutes=5)
    updated = deploy(ecs)
    arn, new = updated["currentServiceDeployment"], updated["taskDefinition"]
    assert arn.startswith("arn:aws:ecs:us-east-1:123456789012:service-deployment/bg/api/")
    assert updated["deployments"][0]["taskDefinition"] == new

    baking = until(ecs, arn, lambda d: d.get("lifecycleStage") == "BAKE_TIME", "BAKE_TIME")
    assert weights(baking["targetServiceRevision"]) == (100.0, 100.0)
    old = baking["sourceServiceRevisions"][0]
    assert old["runningTaskCount"] == 2, "the old revision stays up while the new one bakes"

    done = ended(ecs, arn)
    assert done["status"] == "SUCCESSFUL"
    assert done["createdAt"] <= done["startedAt"] <= done["finishedAt"]
    assert world.simulator.lifecycle_stages(arn) == [
        "PRE_SCALE_UP",
        "SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRE_PRODUCTION_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
        "BAKE_TIME",
        "CLEAN_UP",
    ]
    target, [source] = done["targetServiceRevision"], done["sourceServiceRevisions"]
    assert target["requestedTaskCount"] == target["runningTaskCount"] == 2
    assert weights(target) == (100.0, 100.0)
    assert source["runningTaskCount"] == 0 and weights(source) == (0.0, 0.0)
    assert done["deploymentConfiguration"]["strategy"] == "BLUE_GREEN"
    assert done["deploymentCircuitBreaker"] == {
        "status": "MONITORING_COMPLETE",
        "failureCount": 0,
        "threshold": 3,
    }

    svc = service(ecs)
    [primary] = svc["deployments"]
    assert (
        primary["rolloutState"] == "COMPLETED" and svc["taskDefinition"] == primary["taskDefinition"] == new
    )
    assert target["arn"].endswith(f"/bg/api/{primary['id'].removeprefix('ecs-svc/')}")
    assert svc["currentServiceDeployment"] == arn
    assert [r["arn"] for r in svc["currentServiceRevisions"]] == [target["arn"]]
    assert running_revisions(ecs) == {new: 2}
    revisions = ecs.describe_service_revisions(serviceRevisionArns=[target["arn"], source["arn"]])
    definitions = {r["serviceRevisionArn"]: r["taskDefinition"] for r in revisions["serviceRevisions"]}
    assert definitions == {target["arn"]: new, source["arn"]: seeded.task_definition_arn}


def test_canary_moves_its_share_first_and_the_rest_after_baking(world: SandboxWorld, ecs: Any) -> None:
    canary = {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 2}
    seed(world, "CANARY", canaryConfiguration=canary, hooks=[pause("PRE_PRODUCTION_TRAFFIC_SHIFT")])
    arn = deploy(ecs)["currentServiceDeployment"]

    before, first = paused(ecs, arn, "PRE_PRODUCTION_TRAFFIC_SHIFT")
    assert weights(before["targetServiceRevision"]) == (100.0, 0.0)
    answer(ecs, arn, first)
    continued = time.monotonic()

    between, second = paused(ecs, arn, "PRE_PRODUCTION_TRAFFIC_SHIFT", seen=[first["hookId"]])
    assert time.monotonic() - continued >= 2 * MINUTE, "the canary bakes before the rest moves"
    assert weights(between["targetServiceRevision"])[1] == 10.0
    assert weights(between["sourceServiceRevisions"][0])[1] == 90.0
    answer(ecs, arn, second)

    done = ended(ecs, arn)
    assert done["status"] == "SUCCESSFUL"
    assert weights(done["targetServiceRevision"])[1] == 100.0


def test_linear_moves_production_traffic_in_equal_steps(world: SandboxWorld, ecs: Any) -> None:
    linear = {"stepPercent": 25.0, "stepBakeTimeInMinutes": 0}
    seed(world, "LINEAR", linearConfiguration=linear, hooks=[pause("PRE_PRODUCTION_TRAFFIC_SHIFT")])
    arn = deploy(ecs)["currentServiceDeployment"]

    seen: list[str] = []
    shares = []
    for _ in range(4):
        deployment, hook = paused(ecs, arn, "PRE_PRODUCTION_TRAFFIC_SHIFT", seen)
        shares.append(weights(deployment["targetServiceRevision"])[1])
        seen.append(hook["hookId"])
        answer(ecs, arn, hook)
    assert shares == [0.0, 25.0, 50.0, 75.0]
    done = ended(ecs, arn)
    assert done["status"] == "SUCCESSFUL" and weights(done["targetServiceRevision"])[1] == 100.0
    assert len(done["lifecycleHookDetails"]) == 4, "each step paused on a hook of its own"


# -- pauses -------------------------------------------------------------------------------


def test_a_pause_waits_announced_until_continue(world: SandboxWorld, ecs: Any) -> None:
    queue = world.enable_events()
    seeded = seed(world, hooks=[pause("POST_TEST_TRAFFIC_SHIFT", minutes=60, action="ROLLBACK")])
    asked = time.time()
    arn = deploy(ecs)["currentServiceDeployment"]

    deployment, hook = paused(ecs, arn, "POST_TEST_TRAFFIC_SHIFT")
    assert deployment["status"] == "IN_PROGRESS"
    assert hook["targetType"] == "PAUSE" and hook["timeoutAction"] == "ROLLBACK"
    assert hook["hookId"].startswith("ecs-pause-")
    assert asked + 60 * MINUTE - 1 < hook["expiresAt"].timestamp() < time.time() + 60 * MINUTE
    target = deployment["targetServiceRevision"]
    assert target["runningTaskCount"] == 2 and weights(target) == (100.0, 0.0)
    assert weights(deployment["sourceServiceRevisions"][0]) == (0.0, 100.0)

    event = wait_for_sync(lambda: hook_message(world, queue), what="the hook's event in the queue")
    assert event["resources"] == [seeded.service_arn]
    assert event["detail"]["eventName"] == "HOOK_AWAITING_ACTION"
    assert event["detail"]["hookId"] == hook["hookId"]
    assert event["detail"]["serviceDeploymentArn"] == arn
    assert event["detail"]["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"

    assert world.simulator.wait_idle(5), "a pause is nothing in progress"
    assert described(ecs, arn)["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION"
    answer(ecs, arn, hook)
    assert described(ecs, arn)["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"
    assert ended(ecs, arn)["status"] == "SUCCESSFUL"
    assert hook_events(world) == ["HOOK_AWAITING_ACTION", "HOOK_SUCCEEDED"]


def hook_message(world: SandboxWorld, queue: str) -> dict[str, Any] | None:
    """The first ``ECS Hook State Change`` in the events queue (others are dropped)."""
    sqs = world.internal_client("sqs")
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        event: dict[str, Any] = json.loads(message["Body"])
        if event["detail-type"] == "ECS Hook State Change":
            return event
    return None


def test_rolling_back_at_a_pause_puts_the_old_revision_back(world: SandboxWorld, ecs: Any) -> None:
    seeded = seed(world, hooks=[pause("POST_PRODUCTION_TRAFFIC_SHIFT")])
    arn = deploy(ecs)["currentServiceDeployment"]
    deployment, hook = paused(ecs, arn, "POST_PRODUCTION_TRAFFIC_SHIFT")
    assert weights(deployment["targetServiceRevision"]) == (100.0, 100.0)
    source = deployment["sourceServiceRevisions"][0]["arn"]

    answer(ecs, arn, hook, "ROLLBACK")
    asked = described(ecs, arn)
    assert asked["status"] == "ROLLBACK_REQUESTED"
    assert asked["lifecycleHookDetails"][0]["status"] == "FAILED"

    done = ended(ecs, arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL" and "finishedAt" in done
    assert hook["hookId"] in done["statusReason"]
    assert done["rollback"]["serviceRevisionArn"] == source
    assert done["rollback"]["reason"] == done["statusReason"]
    assert weights(done["sourceServiceRevisions"][0]) == (100.0, 100.0)
    assert weights(done["targetServiceRevision"]) == (0.0, 0.0)
    svc = service(ecs)
    [primary] = svc["deployments"]
    assert svc["taskDefinition"] == primary["taskDefinition"] == seeded.task_definition_arn
    assert primary["rolloutState"] == "COMPLETED"
    assert running_revisions(ecs) == {seeded.task_definition_arn: 2}


def test_a_second_answer_to_a_pause_is_refused_and_changes_nothing(world: SandboxWorld, ecs: Any) -> None:
    seed(world, hooks=[pause("POST_SCALE_UP")])
    arn = deploy(ecs)["currentServiceDeployment"]
    _, hook = paused(ecs, arn, "POST_SCALE_UP")
    answer(ecs, arn, hook)

    with pytest.raises(ClientError) as again:
        answer(ecs, arn, hook, "ROLLBACK")
    error = again.value.response["Error"]
    assert error["Code"] == "InvalidParameterException"
    assert hook["hookId"] in error["Message"] and "SUCCEEDED" in error["Message"]
    with pytest.raises(ClientError) as unknown_hook:
        answer(ecs, arn, {"hookId": "ecs-pause-nope"})
    assert unknown_hook.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as unknown:
        answer(ecs, arn.replace("/api/", "/other/"), hook)
    assert unknown.value.response["Error"]["Code"] == "ServiceDeploymentNotFoundException"

    done = ended(ecs, arn)
    assert done["status"] == "SUCCESSFUL" and "rollback" not in done


@pytest.mark.parametrize(
    ("action", "outcome"), [("ROLLBACK", "ROLLBACK_SUCCESSFUL"), ("CONTINUE", "SUCCESSFUL")]
)
def test_an_unanswered_pause_times_out_into_its_action(
    world: SandboxWorld, ecs: Any, action: str, outcome: str
) -> None:
    world.enable_events()
    seeded = seed(world, hooks=[pause("POST_SCALE_UP", minutes=1, action=action)])
    updated = deploy(ecs)
    done = ended(ecs, updated["currentServiceDeployment"])
    assert done["status"] == outcome
    [hook] = done["lifecycleHookDetails"]
    assert hook["status"] == "TIMED_OUT" and hook["timeoutAction"] == action
    assert hook_events(world) == ["HOOK_AWAITING_ACTION", "HOOK_TIMED_OUT"]
    serving = seeded.task_definition_arn if action == "ROLLBACK" else updated["taskDefinition"]
    assert service(ecs)["taskDefinition"] == serving
    if action == "ROLLBACK":
        assert "timed out" in done["rollback"]["reason"]


def test_pause_hooks_are_refused_where_ecs_allows_only_lambda(world: SandboxWorld, ecs: Any) -> None:
    seed(world)
    hooks = [pause("PRODUCTION_TRAFFIC_SHIFT")]
    with pytest.raises(ClientError) as refused:
        ecs.update_service(cluster="bg", service="api", deploymentConfiguration={"lifecycleHooks": hooks})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "PRODUCTION_TRAFFIC_SHIFT" in refused.value.response["Error"]["Message"]
    assert service(ecs)["deploymentConfiguration"]["lifecycleHooks"] == []


# -- stopping and failing ------------------------------------------------------------------


def test_stop_with_rollback_while_baking_and_not_once_ended(world: SandboxWorld, ecs: Any) -> None:
    seeded = seed(world, bakeTimeInMinutes=30)
    arn = deploy(ecs)["currentServiceDeployment"]
    until(ecs, arn, lambda d: d.get("lifecycleStage") == "BAKE_TIME", "BAKE_TIME")

    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert described(ecs, arn)["status"] == "ROLLBACK_REQUESTED"
    done = ended(ecs, arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert "StopServiceDeployment" in done["rollback"]["reason"]
    assert running_revisions(ecs) == {seeded.task_definition_arn: 2}

    with pytest.raises(ClientError) as conflict:
        ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ROLLBACK")
    assert conflict.value.response["Error"]["Code"] == "ConflictException"


def test_stop_with_abort_leaves_traffic_and_tasks_where_they_are(world: SandboxWorld, ecs: Any) -> None:
    seeded = seed(world, hooks=[pause("POST_TEST_TRAFFIC_SHIFT")])
    updated = deploy(ecs)
    arn = updated["currentServiceDeployment"]
    paused(ecs, arn, "POST_TEST_TRAFFIC_SHIFT")

    ecs.stop_service_deployment(serviceDeploymentArn=arn, stopType="ABORT")
    done = ended(ecs, arn)
    assert done["status"] == "STOPPED" and "stoppedAt" in done and "finishedAt" not in done
    assert done["lifecycleHookDetails"][0]["status"] == "FAILED"
    assert weights(done["targetServiceRevision"]) == (100.0, 0.0)
    svc = service(ecs)
    assert [d["rolloutState"] for d in svc["deployments"]] == ["FAILED", "COMPLETED"]
    assert running_revisions(ecs) == {seeded.task_definition_arn: 2, updated["taskDefinition"]: 2}


def test_a_broken_image_trips_the_circuit_breaker_and_rolls_back(world: SandboxWorld, ecs: Any) -> None:
    world.enable_events()
    seeded = seed(world)
    updated = deploy(ecs, "broken")
    arn, failing = updated["currentServiceDeployment"], updated["deployments"][0]["id"]

    done = ended(ecs, arn)
    assert done["status"] == "ROLLBACK_SUCCESSFUL"
    assert done["statusReason"] == done["rollback"]["reason"] == BREAKER
    assert done["deploymentCircuitBreaker"] == {"status": "TRIGGERED", "failureCount": 3, "threshold": 3}
    assert world.simulator.lifecycle_stages(arn) == ["PRE_SCALE_UP", "SCALE_UP"]
    assert running_revisions(ecs) == {seeded.task_definition_arn: 2}
    failed = [
        e.detail
        for e in world.simulator.published("ECS Deployment State Change")
        if e.detail["eventName"] == "SERVICE_DEPLOYMENT_FAILED"
    ]
    assert [e["deploymentId"] for e in failed] == [failing]


def test_a_new_deployment_replaces_one_still_going(world: SandboxWorld, ecs: Any) -> None:
    seeded = seed(world, hooks=[pause("POST_TEST_TRAFFIC_SHIFT")])
    first = deploy(ecs)["currentServiceDeployment"]
    before, _ = paused(ecs, first, "POST_TEST_TRAFFIC_SHIFT")
    old, abandoned = before["sourceServiceRevisions"][0]["arn"], before["targetServiceRevision"]["arn"]

    latest = deploy(ecs, "v3")
    second = latest["currentServiceDeployment"]
    replaced = described(ecs, first)
    assert replaced["status"] == "STOPPED" and second in replaced["statusReason"]
    assert replaced["lifecycleHookDetails"][0]["status"] == "FAILED"

    deployment, hook = paused(ecs, second, "POST_TEST_TRAFFIC_SHIFT")
    shares = {s["arn"]: weights(s)[1] for s in deployment["sourceServiceRevisions"]}
    assert shares == {abandoned: 0.0, old: 100.0}, "production stayed on the first revision"
    answer(ecs, second, hook)
    assert ended(ecs, second)["status"] == "SUCCESSFUL"
    assert world.simulator.lifecycle_stages(second)[0] == "RECONCILE_SERVICE"
    assert running_revisions(ecs) == {latest["taskDefinition"]: 2}
    assert seeded.task_definition_arn not in running_revisions(ecs)


# -- the calls themselves ------------------------------------------------------------------


def test_list_service_deployments_filters_newest_first(world: SandboxWorld, ecs: Any) -> None:
    seed(world, hooks=[pause("POST_SCALE_UP")])
    first = deploy(ecs)["currentServiceDeployment"]
    answer(ecs, first, paused(ecs, first, "POST_SCALE_UP")[1])
    done = ended(ecs, first)
    second = deploy(ecs, "v3")["currentServiceDeployment"]
    waiting, _ = paused(ecs, second, "POST_SCALE_UP")

    def listed(**filters: Any) -> list[str]:
        found = ecs.list_service_deployments(cluster="bg", service="api", **filters)["serviceDeployments"]
        return [d["serviceDeploymentArn"] for d in found]

    assert listed() == [second, first]
    assert listed(status=["IN_PROGRESS", "PENDING"]) == [second]
    assert listed(status=["SUCCESSFUL"]) == [first]
    assert listed(createdAt={"after": waiting["createdAt"]}) == [second]
    assert listed(createdAt={"before": done["createdAt"]}) == [first]
    page = ecs.list_service_deployments(cluster="bg", service="api", maxResults=1)
    assert [d["serviceDeploymentArn"] for d in page["serviceDeployments"]] == [second]
    assert listed(maxResults=1, nextToken=page["nextToken"]) == [first]
    [brief] = ecs.list_service_deployments(cluster="bg", service="api", status=["SUCCESSFUL"])[
        "serviceDeployments"
    ]
    assert brief["targetServiceRevisionArn"] == done["targetServiceRevision"]["arn"]
    assert brief["finishedAt"] == done["finishedAt"]

    world.seed_service("bg", "rolling", "rolling", f"{IMAGE}:v1")
    assert ecs.list_service_deployments(cluster="bg", service="rolling")["serviceDeployments"] == []
    for cluster, name, code in (
        ("bg", "nope", "ServiceNotFoundException"),
        ("nope", "api", "ClusterNotFoundException"),
    ):
        with pytest.raises(ClientError) as missing:
            ecs.list_service_deployments(cluster=cluster, service=name)
        assert missing.value.response["Error"]["Code"] == code
    unknown = second.replace("/api/", "/gone/")
    answer_ = ecs.describe_service_deployments(serviceDeploymentArns=[second, unknown])
    assert [d["serviceDeploymentArn"] for d in answer_["serviceDeployments"]] == [second]
    assert answer_["failures"] == [{"arn": unknown, "reason": "MISSING"}]


def test_the_calls_are_counted_and_can_fail_or_be_held(world: SandboxWorld, ecs: Any) -> None:
    seed(world, hooks=[pause("POST_SCALE_UP")])
    arn = deploy(ecs)["currentServiceDeployment"]
    _, hook = paused(ecs, arn, "POST_SCALE_UP")
    world.reset_calls()

    world.inject_error("ecs:ContinueServiceDeployment", "AccessDeniedException", times=1)
    with pytest.raises(ClientError) as denied:
        answer(ecs, arn, hook)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert described(ecs, arn)["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION"

    held = world.hold("ecs", "continue_service_deployment")
    caller = threading.Thread(target=answer, args=(ecs, arn, hook))
    caller.start()
    assert held.reached.wait(5)
    assert described(ecs, arn)["lifecycleHookDetails"][0]["status"] == "AWAITING_ACTION"
    held.release()
    caller.join(5)
    assert described(ecs, arn)["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"

    internal = world.internal_client("ecs").describe_service_deployments(serviceDeploymentArns=[arn])
    assert internal["serviceDeployments"][0]["serviceDeploymentArn"] == arn
    calls = world.calls()
    assert calls["ecs:ContinueServiceDeployment"] == 2
    assert calls["ecs:DescribeServiceDeployments"] == 3, "the internal client's call is not counted"
    assert world.injected() == {"ecs:ContinueServiceDeployment:AccessDeniedException": 1}
