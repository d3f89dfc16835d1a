"""Watching by ECS's own events, end to end: the simulator publishes ECS's event shapes to the
world's EventBridge, a rule feeds an SQS queue, and the real bot reads it (TUGBOAT_EVENTS_QUEUE).

The bot here polls every 8 s (`EVENTS`): a rollout takes 0.75 s, so only the events can bring
its end to Slack within a second. Every other test in the suite runs without events (polling).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.aws.watcher import PollTiming
from bot.domain.catalog import Catalog
from bot.runtime import Tuning
from bot.sandbox.fake_slack import Change, FakeSlack, Message, wait_for
from bot.sandbox.simulator import PublishedEvent
from bot.sandbox.world import SandboxWorld
from tests import slackview as view
from tests.conftest import FAST, running

DEV = "U0DEV"
DEPLOYMENT = "ECS Deployment State Change"
TASK = "ECS Task State Change"
EVENTS = dataclasses.replace(FAST, poll=PollTiming.brisk(8.0), events_wait_s=1)
"""Polling alone would report each end about 7 s late; events must do it within a second."""


@pytest.fixture
def queue(world: SandboxWorld) -> str:
    return world.enable_events()


@contextlib.contextmanager
def final_states(fake: FakeSlack) -> Iterator[dict[str, float]]:
    """channel -> `time.monotonic()` when a thread's parent there first showed a final state."""
    seen: dict[str, float] = {}

    def on_change(change: Change) -> None:
        message = change.message
        if isinstance(message, Message) and message.thread_ts is None and view.is_final(message):
            seen.setdefault(message.channel, time.monotonic())

    unsubscribe = fake.subscribe(on_change)
    try:
        yield seen
    finally:
        unsubscribe()


def deployment_events(world: SandboxWorld, name: str, cluster: str = "staging") -> list[PublishedEvent]:
    return [
        e
        for e in world.simulator.published(DEPLOYMENT)
        if e.detail["eventName"] == name and e.resources[0].endswith(f":service/{cluster}/api")
    ]


async def test_a_deploy_is_reported_within_a_second_of_ecs_completing_it(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path, queue: str
) -> None:
    with final_states(fake) as finals:
        async with running(fake, catalog, tmp_path / "t.db", tuning=EVENTS, tugboat_events_queue=queue):
            fake.slash_command("/deploy", "api staging v2", user=DEV)
            parent = await view.final_parent(fake, "C0STAGING")
            await wait_for(lambda: "C0STAGING" in finals, what="the final edit, seen by the subscriber")

    assert "*Succeeded*" in parent.flat and "rev 1 → 2" in parent.flat
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    (completed,) = deployment_events(world, "SERVICE_DEPLOYMENT_COMPLETED")
    delay = finals["C0STAGING"] - completed.at
    assert 0 <= delay < 1.0, f"reported {delay:.2f} s after ECS's SERVICE_DEPLOYMENT_COMPLETED"


async def test_a_circuit_breaker_failure_is_reported_within_a_second_of_its_events(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path, queue: str
) -> None:
    with final_states(fake) as finals:
        async with running(fake, catalog, tmp_path / "t.db", tuning=EVENTS, tugboat_events_queue=queue):
            fake.slash_command("/deploy", "api staging broken", user=DEV)
            parent = await view.final_parent(fake, "C0STAGING", timeout=40)
            await wait_for(lambda: "C0STAGING" in finals, what="the final edit, seen by the subscriber")
            replies = await view.thread_text(fake, parent, must_contain="*Failed:*")

    assert "*Failed*" in parent.flat and "circuit breaker" in parent.flat
    assert "Service is back on revision 1" in replies
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")
    (failed,) = deployment_events(world, "SERVICE_DEPLOYMENT_FAILED")
    rollback_done = deployment_events(world, "SERVICE_DEPLOYMENT_COMPLETED")[-1]
    assert rollback_done.at > failed.at
    # The failure was seen at once: the rollback was followed from its start, not 8 s later,
    # and its end reached Slack within a second.
    delay = finals["C0STAGING"] - rollback_done.at
    assert 0 <= delay < 1.0, f"reported {delay:.2f} s after the rollback's SERVICE_DEPLOYMENT_COMPLETED"


async def test_a_one_off_task_is_reported_within_a_second_of_stopping(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path, queue: str
) -> None:
    with final_states(fake) as finals:
        async with running(fake, catalog, tmp_path / "t.db", tuning=EVENTS, tugboat_events_queue=queue):
            fake.slash_command("/run-task", "api staging migrate", user=DEV)
            parent = await view.final_parent(fake, "C0STAGING")
            await wait_for(lambda: "C0STAGING" in finals, what="the final edit, seen by the subscriber")
            replies = await view.thread_text(fake, parent, must_contain="stopped: exit code")

    assert "*Succeeded*" in parent.flat and "exit code web=0" in replies
    stops = [
        e
        for e in world.simulator.published(TASK)
        if e.detail["lastStatus"] == "STOPPED" and str(e.detail.get("group", "")).startswith("family:")
    ]
    assert len(stops) == 1
    delay = finals["C0STAGING"] - stops[0].at
    assert 0 <= delay < 1.0, f"reported {delay:.2f} s after the task's STOPPED event"


def envelope(kind: str, resource: str, detail: dict[str, Any], source: str = "aws.ecs") -> str:
    """An EventBridge envelope as the rule delivers it to SQS (moto's shape: no `account`)."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": kind,
            "source": source,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": "us-east-1",
            "resources": [resource],
            "detail": detail,
        }
    )


async def test_stale_duplicated_and_foreign_events_change_nothing(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path, queue: str
) -> None:
    """Early and stale end events, duplicates and other services' events reach the bot mid-rollout:
    it still reports the deploy when ECS really completes it, and nothing else."""
    world.simulator.rollout_seconds = 3
    arn = view.service(world, "staging", "api")["serviceArn"]
    seeded = view.service(world, "staging", "api")["deployments"][0]["id"]
    sqs = world.client("sqs")
    with final_states(fake) as finals:
        async with running(fake, catalog, tmp_path / "t.db", tuning=EVENTS, tugboat_events_queue=queue):
            fake.slash_command("/deploy", "api staging v2", user=DEV)
            started = await wait_for(
                lambda: deployment_events(world, "SERVICE_DEPLOYMENT_IN_PROGRESS"), what="the deploy's start"
            )
            ours = started[0].detail["deploymentId"]
            bodies = [
                # the rollout "completed" before it has, and an old deployment's end, late
                envelope(
                    DEPLOYMENT, arn, {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "deploymentId": ours}
                ),
                envelope(DEPLOYMENT, arn, {"eventName": "SERVICE_DEPLOYMENT_FAILED", "deploymentId": seeded}),
                envelope(
                    DEPLOYMENT, arn, {"eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS", "deploymentId": ours}
                ),
                envelope(
                    DEPLOYMENT, arn, {"eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS", "deploymentId": ours}
                ),
                # another cluster's service, another service, another AWS source, and noise
                envelope(DEPLOYMENT, arn.replace("/staging/", "/production/"), {"eventName": "X"}),
                envelope("ECS Service Action", arn + "-other", {"eventName": "SERVICE_STEADY_STATE"}),
                envelope("EC2 Instance State-change Notification", arn, {"state": "running"}, "aws.ec2"),
                "not json at all",
            ]
            for body in bodies:
                sqs.send_message(QueueUrl=queue, MessageBody=body)
            parent = await view.final_parent(fake, "C0STAGING", timeout=30)
            await wait_for(lambda: "C0STAGING" in finals, what="the final edit, seen by the subscriber")
            await wait_for(lambda: not _waiting(sqs, queue), timeout=10, what="the queue drained")

    assert "*Succeeded*" in parent.flat and "rev 1 → 2" in parent.flat
    (completed,) = deployment_events(world, "SERVICE_DEPLOYMENT_COMPLETED")
    assert finals["C0STAGING"] >= completed.at, "reported before ECS completed the rollout"
    assert finals["C0STAGING"] - completed.at < 1.0
    assert len(view.parents(fake, "C0STAGING")) == 1
    assert view.parents(fake, "C0PROD") == []
    assert view.service(world, "production", "api")["taskDefinition"].endswith("api-production:1")


def _waiting(sqs: Any, queue: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


async def test_a_deploy_whose_events_queue_disappears_ends_by_polling(
    world: SandboxWorld, fake: FakeSlack, catalog: Catalog, tmp_path: Path, queue: str
) -> None:
    """The queue is deleted mid-rollout: phase polling (1 s here) takes over from events, whose
    safety net alone (30 s here) would be far too late."""
    world.simulator.rollout_seconds = 3
    poll = dataclasses.replace(PollTiming.brisk(1.0), safety_net_s=30.0)
    tuning: Tuning = dataclasses.replace(EVENTS, poll=poll)
    with final_states(fake) as finals:
        async with running(fake, catalog, tmp_path / "t.db", tuning=tuning, tugboat_events_queue=queue):
            fake.slash_command("/deploy", "api staging v2", user=DEV)
            await wait_for(
                lambda: deployment_events(world, "SERVICE_DEPLOYMENT_IN_PROGRESS"), what="the deploy's start"
            )
            world.delete_events_queue(queue)
            parent = await view.final_parent(fake, "C0STAGING", timeout=30)
            await wait_for(lambda: "C0STAGING" in finals, what="the final edit, seen by the subscriber")

    assert "*Succeeded*" in parent.flat and "rev 1 → 2" in parent.flat
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    (completed,) = deployment_events(world, "SERVICE_DEPLOYMENT_COMPLETED")
    assert finals["C0STAGING"] - completed.at < 3.0, "the safety net, not phase polling, found the end"
