"""Reading ECS's events (the documented EventBridge envelopes, as they reach the SQS queue), the
stack's rule, and the rule that decides whether a watch trusts events or polls."""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from prometheus_client import REGISTRY

from bot.aws.ecs import EcsGateway
from bot.aws.ecs_events import DETAIL_TYPES, FeedHealth, parse_event, queue_region
from bot.aws.watcher import PollTiming, RolloutWatcher
from bot.domain.aws import ServiceRef
from bot.sandbox.world import SandboxWorld
from tests.conftest import IMAGE, seed_fleet
from tests.test_cloudformation import TEMPLATE, resolve

SERVICE = "arn:aws:ecs:us-west-2:111122223333:service/production/api"
TASK = "arn:aws:ecs:us-west-2:111122223333:task/production/0123456789abcdef0123456789abcdef"


def body(kind: str, resources: list[str], detail: dict[str, Any], **envelope: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "ddca6449-b258-46c0-8653-e0e3a6EXAMPLE",
            "detail-type": kind,
            "source": "aws.ecs",
            "account": "111122223333",
            "time": "2020-05-23T12:31:14Z",
            "region": "us-west-2",
            "resources": resources,
            "detail": detail,
            **envelope,
        }
    )


@pytest.mark.parametrize(
    ("name", "decisive"),
    [
        ("SERVICE_DEPLOYMENT_IN_PROGRESS", False),
        ("SERVICE_DEPLOYMENT_COMPLETED", True),
        ("SERVICE_DEPLOYMENT_FAILED", True),
    ],
)
def test_a_deployment_event_names_its_service_and_whether_it_may_end_a_rollout(
    name: str, decisive: bool
) -> None:
    detail = {
        "eventType": "INFO",
        "eventName": name,
        "deploymentId": "ecs-svc/123",
        "updatedAt": "2020-05-23T11:11:11Z",
        "reason": "ECS deployment ecs-svc/123 completed.",
    }
    event = parse_event(body("ECS Deployment State Change", [SERVICE], detail))
    assert event is not None
    assert (event.region, event.cluster, event.service, event.task_id) == (
        "us-west-2",
        "production",
        "api",
        None,
    )
    assert event.name == name and event.decisive is decisive
    assert event.time is not None and event.time.year == 2020


def test_a_steady_state_wakes_and_an_impaired_service_is_only_news() -> None:
    cluster = {"clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/production"}
    steady = parse_event(
        body("ECS Service Action", [SERVICE], {"eventName": "SERVICE_STEADY_STATE", **cluster})
    )
    impaired = parse_event(
        body("ECS Service Action", [SERVICE], {"eventName": "SERVICE_TASK_START_IMPAIRED", **cluster})
    )
    assert steady is not None and steady.decisive and steady.service == "api"
    assert impaired is not None and not impaired.decisive


def test_a_paused_hook_wakes_its_service() -> None:
    event = parse_event(body("ECS Hook State Change", [SERVICE], {"eventName": "HOOK_AWAITING_ACTION"}))
    assert event is not None and event.decisive and event.service == "api"


def test_the_old_service_arn_format_takes_its_cluster_from_the_detail() -> None:
    old = "arn:aws:ecs:us-west-2:111122223333:service/api"
    detail = {"eventName": "SERVICE_STEADY_STATE", "clusterArn": "arn:aws:ecs:us-west-2:1:cluster/staging"}
    event = parse_event(body("ECS Service Action", [old], detail))
    assert event is not None and (event.cluster, event.service) == ("staging", "api")
    without = parse_event(body("ECS Deployment State Change", [old], {"eventName": "X"}))
    assert without is not None and (without.cluster, without.service) == (None, "api")


def test_a_task_event_names_the_task_and_its_service() -> None:
    detail = {
        "clusterArn": "arn:aws:ecs:us-west-2:111122223333:cluster/production",
        "taskArn": TASK,
        "group": "service:api",
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stopCode": "EssentialContainerExited",
        "containers": [{"name": "web", "exitCode": 1, "lastStatus": "STOPPED"}],
    }
    event = parse_event(body("ECS Task State Change", [TASK], detail))
    assert event is not None
    assert event.task_id == "0123456789abcdef0123456789abcdef"
    assert (event.cluster, event.service, event.name, event.decisive) == (
        "production",
        "api",
        "STOPPED",
        True,
    )
    one_off = parse_event(
        body("ECS Task State Change", [TASK], {**detail, "group": "family:api", "lastStatus": "RUNNING"})
    )
    assert one_off is not None and one_off.service is None and not one_off.decisive


def test_moto_delivers_without_the_account_field() -> None:
    envelope = json.loads(body("ECS Service Action", [SERVICE], {"eventName": "SERVICE_STEADY_STATE"}))
    del envelope["account"]
    event = parse_event(json.dumps(envelope))
    assert event is not None and event.service == "api"


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        body("ECS Service Action", [SERVICE], {"eventName": "X"}, source="aws.ec2"),
        body("ECS Container Instance State Change", [SERVICE], {"eventName": "X"}),
        body("ECS Service Action", ["arn:aws:sqs:us-west-2:1:queue"], {"eventName": "X"}),
        body("ECS Service Action", [SERVICE], "a string, not a detail"),  # type: ignore[arg-type]
        body("ECS Task State Change", [], {"lastStatus": "STOPPED"}),
    ],
)
def test_anything_else_is_ignored(raw: str) -> None:
    assert parse_event(raw) is None


def test_the_queue_region_comes_from_its_url() -> None:
    assert queue_region("https://sqs.eu-west-1.amazonaws.com/123456789012/tugboat-events", "x") == "eu-west-1"
    assert queue_region("https://sqs-fips.us-gov-west-1.amazonaws.com/1/q", "x") == "us-gov-west-1"
    assert queue_region("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "x") == "cn-north-1"
    assert queue_region("https://ap-south-1.queue.amazonaws.com/1/q", "x") == "ap-south-1"
    assert queue_region("http://127.0.0.1:5000/123456789012/tugboat-events", "us-east-1") == "us-east-1"


def test_the_feed_flows_only_while_receives_succeed_recently_and_are_not_behind() -> None:
    feed = FeedHealth(stale_after_s=15.0, lag_limit_s=30.0)
    assert not feed.flowing(100.0), "nothing received yet"
    feed.received(100.0, None)
    assert feed.flowing(110.0)
    assert not feed.flowing(116.0), "no answer for longer than two long polls"
    feed.received(120.0, 45.0)
    assert not feed.flowing(120.0), "messages 45 s old: the feed lags"
    feed.received(121.0, None)
    assert feed.flowing(121.0), "an empty answer: caught up"
    feed.failed()
    assert not feed.flowing(121.5)
    feed.received(122.0, 1.0)
    assert feed.flowing(122.0)


def test_the_stacks_rule_takes_the_four_event_types_of_the_managed_clusters_only() -> None:
    """deploy/cloudformation.yml's rule, resolved for two managed clusters, as EventBridge reads it."""
    template = cfn_yaml.load(str(TEMPLATE))
    rule = template["Resources"]["EcsEventsRule"]["Properties"]
    pattern = json.loads(resolve(rule["EventPattern"], {"ManagedClusterNames": ["staging", "production"]}))
    assert pattern["source"] == ["aws.ecs"]
    assert set(pattern["detail-type"]) == set(DETAIL_TYPES)
    wildcards = [re.escape(r["wildcard"]).replace(r"\*", ".*") for r in pattern["resources"]]

    def matched(resource: str) -> bool:
        return any(re.fullmatch(w, resource) for w in wildcards)

    assert matched("arn:aws:ecs:us-east-1:123456789012:service/staging/api")
    assert matched("arn:aws:ecs:eu-west-1:123456789012:task/production/0123abcd")
    assert not matched("arn:aws:ecs:us-east-1:123456789012:service/sandbox/api")
    assert not matched("arn:aws:ecs:us-east-1:123456789012:task/stagingx/0123abcd")
    target = rule["Targets"][0]
    assert target["Arn"] == {"Fn::GetAtt": ["EcsEventsQueue", "Arn"]}
    assert "DeadLetterConfig" in target


# -- the mode rule, on the real watcher against the simulated ECS ----------------------------


async def _watch_a_rollout(world: SandboxWorld, *, news: bool) -> tuple[bool, float | None]:
    """Watch svc0 roll out with a flowing feed and a 1 s safety net; after the second look (which
    shows the rollout moving), is there a third within 0.6 s? And the `polling` gauge then.

    `news`: an event about the service (one of its tasks) arrives between the first two looks.
    """
    seed_fleet(world, 1)
    world.simulator.rollout_seconds = 3
    ref = ServiceRef("us-east-1", "fleet", "svc0", None)
    feed = FeedHealth(stale_after_s=3600.0)
    feed.received(time.monotonic(), None)
    ecs = EcsGateway()
    watcher = RolloutWatcher(ecs, dataclasses.replace(PollTiming.brisk(0.2), safety_net_s=1.0), feed=feed)
    watcher.start()
    admin = world.client("ecs")
    try:
        definition = admin.describe_task_definition(taskDefinition="svc0:1")["taskDefinition"]
        containers = [{**c, "image": f"{IMAGE}:v2"} for c in definition["containerDefinitions"]]
        arn = admin.register_task_definition(family="svc0", containerDefinitions=containers)
        admin.update_service(
            cluster="fleet", service="svc0", taskDefinition=arn["taskDefinition"]["taskDefinitionArn"]
        )
        async with watcher.watch(ref) as subscription:
            assert await subscription.next(5) is not None
            if news:
                task = f"arn:aws:ecs:us-east-1:123456789012:task/fleet/{uuid.uuid4().hex}"
                detail = {"taskArn": task, "group": "service:svc0", "lastStatus": "RUNNING"}
                event = parse_event(body("ECS Task State Change", [task], detail, region="us-east-1"))
                assert event is not None
                watcher.on_events([event])
            assert await subscription.next(5) is not None
            third = await subscription.next(0.6)
            polling = REGISTRY.get_sample_value("tugboat_watches", {"mode": "polling"})
    finally:
        await watcher.stop()
        ecs.close()
    return third is not None, polling


async def test_a_change_no_event_announced_puts_the_watch_back_on_phase_polling(world: SandboxWorld) -> None:
    looked_again, polling = await _watch_a_rollout(world, news=False)
    assert looked_again, "a silent watch waited for the 1 s safety net instead of polling by phase"
    assert polling == 1


async def test_a_change_its_events_announced_leaves_the_watch_on_events(world: SandboxWorld) -> None:
    looked_again, polling = await _watch_a_rollout(world, news=True)
    assert not looked_again, "events flowed, yet the watch polled by phase"
    assert polling == 0
