"""The example's scheduled tasks: what `example.yml` lists under production's `schedules:`.

Three kinds a real estate has: a Scheduler schedule and a rule target that run the service's
own family, and a Scheduler schedule (in its own group) that runs another family built from
the same image plus a sidecar. Each carries the settings a move must keep byte for byte.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.sandbox.world import SandboxWorld, SeededService

SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/tugboat-example-scheduler"
EVENTS_ROLE = "arn:aws:iam::123456789012:role/tugboat-example-events"
DIGEST_FAMILY = "api-digest-production"
MAILER_IMAGE = "public.ecr.aws/example/mailer:1.4"


def ecs_network(world: SandboxWorld) -> dict[str, Any]:
    """The services' network, in EventBridge's spelling (PascalCase)."""
    vpc = world.network()["awsvpcConfiguration"]
    return {
        "awsvpcConfiguration": {
            "Subnets": vpc["subnets"],
            "SecurityGroups": vpc["securityGroups"],
            "AssignPublicIp": vpc["assignPublicIp"],
        }
    }


def overrides(container: str, *command: str) -> str:
    return json.dumps({"containerOverrides": [{"name": container, "command": list(command)}]})


def seed_example_schedules(world: SandboxWorld, staging: SeededService, production: SeededService) -> None:
    """As example.yml names them: staging/nightly-report, and in production nightly-report,
    hourly-cleanup/cleanup and reports/weekly-digest."""
    scheduler = world.internal_client("scheduler")
    scheduler.create_schedule_group(Name="staging")
    _nightly(world, staging, "staging")
    _nightly(world, production, "default")
    _production_extras(world, production)


def _cluster_arn(world: SandboxWorld, seeded: SeededService) -> str:
    return f"arn:aws:ecs:{world.region}:{world.account_id}:cluster/{seeded.cluster}"


def _nightly(world: SandboxWorld, seeded: SeededService, group: str) -> None:
    """A Scheduler schedule in the service's own family: a deploy points it at the new revision."""
    world.internal_client("scheduler").create_schedule(
        Name="nightly-report",
        GroupName=group,
        ScheduleExpression="cron(0 3 * * ? *)",
        ScheduleExpressionTimezone="Europe/Berlin",
        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        State="ENABLED",
        Description="The nightly sales report",
        Target={
            "Arn": _cluster_arn(world, seeded),
            "RoleArn": SCHEDULER_ROLE,
            "Input": overrides("web", "bin/rails", "reports:nightly"),
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "EcsParameters": {
                "TaskDefinitionArn": seeded.task_definition_arn,
                "TaskCount": 1,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": ecs_network(world),
            },
        },
    )


def _production_extras(world: SandboxWorld, production: SeededService) -> None:
    """A rule target in the service's family, and a schedule of another family in its own group."""
    scheduler = world.internal_client("scheduler")
    events = world.internal_client("events")
    cluster_arn = _cluster_arn(world, production)
    network = ecs_network(world)
    events.put_rule(Name="hourly-cleanup", ScheduleExpression="rate(1 hour)", State="ENABLED")
    events.put_targets(
        Rule="hourly-cleanup",
        Targets=[
            {
                "Id": "cleanup",
                "Arn": cluster_arn,
                "RoleArn": EVENTS_ROLE,
                "Input": overrides("web", "bin/rails", "tmp:cleanup"),
                "EcsParameters": {
                    "TaskDefinitionArn": production.task_definition_arn,
                    "TaskCount": 1,
                    "LaunchType": "FARGATE",
                    "NetworkConfiguration": network,
                },
            }
        ],
    )
    digest = _digest_definition(world, production)
    scheduler.create_schedule_group(Name="reports")
    scheduler.create_schedule(
        Name="weekly-digest",
        GroupName="reports",
        ScheduleExpression="cron(0 8 ? * MON *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        State="DISABLED",
        Target={
            "Arn": cluster_arn,
            "RoleArn": SCHEDULER_ROLE,
            "Input": overrides("web", "bin/rails", "digest:weekly"),
            "EcsParameters": {
                "TaskDefinitionArn": digest,
                "TaskCount": 1,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": network,
            },
        },
    )


def _digest_definition(world: SandboxWorld, production: SeededService) -> str:
    """Another family from the app's image, with a mailer sidecar the deploy must not touch."""
    ecs = world.internal_client("ecs")
    service_definition = ecs.describe_task_definition(taskDefinition=production.task_definition_arn)
    web = next(c for c in service_definition["taskDefinition"]["containerDefinitions"] if c["name"] == "web")
    mailer = {"name": "mailer", "image": MAILER_IMAGE, "essential": False, "memory": 128, "cpu": 0}
    registered = ecs.register_task_definition(
        family=DIGEST_FAMILY,
        containerDefinitions=[web, mailer],
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="512",
        memory="1024",
        executionRoleArn=f"arn:aws:iam::{world.account_id}:role/ecsTaskExecutionRole",
    )
    return str(registered["taskDefinition"]["taskDefinitionArn"])
