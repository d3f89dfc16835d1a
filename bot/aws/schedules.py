"""EventBridgeSchedules: read and move the schedules that run an app's tasks.

Both kinds are rewritten whole: `UpdateSchedule` replaces a schedule with what it is sent,
and `PutTargets` a target, so what AWS answered goes back with only the task definition
changed. Leaving a field out would silently reset it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
from collections.abc import Iterator

import botocore.session

from bot.aws.ecs import EcsGateway
from bot.domain.aws import AwsError
from bot.domain.schedules import ScheduledTask, ScheduleMissing, ScheduleRef

NOT_FOUND = ("ResourceNotFoundException",)


@functools.cache
def _update_schedule_fields() -> frozenset[str]:
    """What UpdateSchedule accepts, from botocore's model: a field AWS adds is kept, not reset."""
    model = botocore.session.get_session().get_service_model("scheduler")
    return frozenset(model.operation_model("UpdateSchedule").input_shape.members)


class EventBridgeSchedules:
    """The `Schedules` port over EventBridge Scheduler and EventBridge rules."""

    def __init__(self, gateway: EcsGateway) -> None:
        self._aws = gateway

    async def read(self, ref: ScheduleRef) -> list[ScheduledTask]:
        if ref.kind == "scheduler":
            return [await self._read_schedule(ref)]
        return await self._read_rule(ref)

    async def point(self, task: ScheduledTask, task_definition: str) -> None:
        ref = task.ref
        if ref.kind == "scheduler":
            fields = await asyncio.to_thread(_update_schedule_fields)  # reads a model file once
            sent = {k: copy.deepcopy(v) for k, v in task.raw.items() if k in fields and v is not None}
            sent["Target"]["EcsParameters"]["TaskDefinitionArn"] = task_definition
            with _missing(ref):
                await self._aws.call(
                    "scheduler", ref.region, "update_schedule", role_arn=ref.role_arn, **sent
                )
            return
        target = copy.deepcopy(task.raw)
        target["EcsParameters"]["TaskDefinitionArn"] = task_definition
        with _missing(ref):
            answer = await self._aws.call(
                "events", ref.region, "put_targets", role_arn=ref.role_arn, Rule=ref.name, Targets=[target]
            )
        if answer.get("FailedEntryCount"):
            failed = (answer.get("FailedEntries") or [{}])[0]
            raise AwsError(
                "PutTargets",
                str(failed.get("ErrorCode") or "FailedEntry"),
                str(failed.get("ErrorMessage") or f"target {task.target_id} was not updated"),
            )

    # -- reading -------------------------------------------------------------------------

    async def _read_schedule(self, ref: ScheduleRef) -> ScheduledTask:
        with _missing(ref):
            answer = await self._aws.call(
                "scheduler",
                ref.region,
                "get_schedule",
                role_arn=ref.role_arn,
                Name=ref.name,
                GroupName=ref.group,
            )
        answer.pop("ResponseMetadata", None)
        target = answer.get("Target") or {}
        if "EcsParameters" not in target:
            raise ScheduleMissing(f"schedule {ref.name} does not start an ECS task")
        return ScheduledTask(
            ref=ref,
            expression=str(answer.get("ScheduleExpression", "")),
            timezone=answer.get("ScheduleExpressionTimezone"),
            enabled=answer.get("State") in (None, "ENABLED"),  # moto leaves an unset state None
            cluster_arn=str(target.get("Arn", "")),
            ecs_parameters=target["EcsParameters"],
            input=target.get("Input"),
            raw=answer,
        )

    async def _read_rule(self, ref: ScheduleRef) -> list[ScheduledTask]:
        with _missing(ref):
            rule = await self._aws.call(
                "events", ref.region, "describe_rule", role_arn=ref.role_arn, Name=ref.name
            )
            answer = await self._aws.call(
                "events", ref.region, "list_targets_by_rule", role_arn=ref.role_arn, Rule=ref.name
            )
        targets = [t for t in answer.get("Targets", []) if "EcsParameters" in t]
        if ref.target_id is not None:
            targets = [t for t in targets if t.get("Id") == ref.target_id]
            if not targets:
                raise ScheduleMissing(f"rule {ref.name} has no ECS target `{ref.target_id}`")
        if not targets:
            raise ScheduleMissing(f"rule {ref.name} has no ECS target")
        return [
            ScheduledTask(
                ref=ref,
                expression=str(rule.get("ScheduleExpression") or rule.get("EventPattern") or ""),
                timezone=None,
                enabled=rule.get("State", "ENABLED") == "ENABLED",
                cluster_arn=str(t.get("Arn", "")),
                ecs_parameters=t["EcsParameters"],
                input=t.get("Input"),
                target_id=str(t.get("Id")),
                raw=t,
            )
            for t in targets
        ]


@contextlib.contextmanager
def _missing(ref: ScheduleRef) -> Iterator[None]:
    """AWS's not-found, said as the catalog entry that names something EventBridge lacks."""
    try:
        yield
    except AwsError as exc:
        if exc.code in NOT_FOUND:
            what = "schedule" if ref.kind == "scheduler" else "rule"
            raise ScheduleMissing(f"{what} {ref.name} does not exist: {exc.aws_message}") from None
        raise
