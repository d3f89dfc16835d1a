"""Scheduled tasks as values: an EventBridge Scheduler schedule or a rule's ECS target.

A deploy moves them with the service (SPEC part two, "Scheduled tasks follow the deploy").
Values and parsing only; `bot.aws.schedules` reads and writes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from bot.domain.aws import family_of, revision_of

ScheduleKind = Literal["scheduler", "rule"]

_CRON = re.compile(r"^cron\((.+)\)$")
_AT = re.compile(r"^at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)$")
_RATE = re.compile(r"^rate\((\d+) (minutes?|hours?|days?)\)$")


class ScheduleMissing(Exception):
    """The catalog names a schedule (or a rule target) that EventBridge does not have."""


@dataclass(frozen=True)
class ScheduleRef:
    """Where one catalog schedule lives: everything needed to call AWS about it."""

    kind: ScheduleKind
    name: str
    region: str
    group: str = "default"
    target_id: str | None = None
    """Rules only: the one target to move (None: every ECS target of the rule)."""
    role_arn: str | None = None
    """The role Tugboat assumes for this environment, not the schedule's own role."""


@dataclass(frozen=True)
class ScheduledTask:
    """One ECS target of a schedule, as EventBridge holds it."""

    ref: ScheduleRef
    expression: str
    timezone: str | None
    enabled: bool
    cluster_arn: str
    ecs_parameters: dict[str, Any]
    input: str | None
    target_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    """What AWS answered (`get_schedule`, or the rule's target): written back whole."""

    @property
    def label(self) -> str:
        """`nightly-report`, or `hourly-cleanup/cleanup` for one of a rule's targets."""
        if self.ref.kind == "rule" and self.target_id and self.ref.target_id is None:
            return f"{self.ref.name}/{self.target_id}"
        return self.ref.name

    @property
    def task_definition(self) -> str:
        return str(self.ecs_parameters.get("TaskDefinitionArn", ""))

    @property
    def family(self) -> str:
        return family_of(self.task_definition)

    @property
    def revision(self) -> int:
        return revision_of(self.task_definition)

    @property
    def cluster(self) -> str:
        return self.cluster_arn.rsplit("/", 1)[-1]

    def overrides(self) -> dict[str, Any]:
        """The task overrides the schedule passes to RunTask (its `Input`), or none."""
        if not self.input:
            return {}
        try:
            value = json.loads(self.input)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def placement(self) -> dict[str, Any]:
        """RunTask's launch arguments as the schedule gives them (EventBridge spells them PascalCase)."""
        params = self.ecs_parameters
        placement: dict[str, Any] = {}
        if params.get("CapacityProviderStrategy"):
            placement["capacityProviderStrategy"] = [
                {_camel(k): v for k, v in item.items()} for item in params["CapacityProviderStrategy"]
            ]
        elif params.get("LaunchType"):
            placement["launchType"] = params["LaunchType"]
        if params.get("PlatformVersion"):
            placement["platformVersion"] = params["PlatformVersion"]
        network = params.get("NetworkConfiguration", {}).get("awsvpcConfiguration")
        if network:
            placement["networkConfiguration"] = {
                "awsvpcConfiguration": {_camel(k): v for k, v in network.items()}
            }
        for key in ("PlacementConstraints", "PlacementStrategy"):
            if params.get(key):
                placement[_camel(key)] = [{_camel(k): v for k, v in item.items()} for item in params[key]]
        for key in ("Group", "PropagateTags", "ReferenceId", "EnableECSManagedTags", "EnableExecuteCommand"):
            if params.get(key) is not None:
                placement[_camel(key)] = params[key]
        return placement

    def tags(self) -> tuple[dict[str, str], ...]:
        """The schedule's own task tags, in RunTask's spelling."""
        found = self.ecs_parameters.get("Tags") or []
        pairs: list[dict[str, str]] = []
        for tag in found:
            if "Key" in tag:
                pairs.append({"key": str(tag["Key"]), "value": str(tag.get("Value", ""))})
            else:  # Scheduler's shape: one map per tag
                pairs.extend({"key": str(k), "value": str(v)} for k, v in tag.items())
        return tuple(pairs)


def _camel(key: str) -> str:
    return key[:1].lower() + key[1:]


def next_run(expression: str, timezone: str | None, now: datetime) -> datetime | None:
    """When a `cron(...)` or `at(...)` schedule runs next; None when it cannot be told.

    A `rate(...)` counts from when it was created, which AWS does not say, so it has no
    next run here. `now` must be timezone-aware.
    """
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return None
    local_now = now.astimezone(zone)
    at = _AT.match(expression)
    if at:
        when = datetime.fromisoformat(at.group(1)).replace(tzinfo=zone)
        return when if when > local_now else None
    cron = _CRON.match(expression)
    if not cron:
        return None
    fields = cron.group(1).split()
    if len(fields) != 6:
        return None
    minute, hour, day, month, weekday, year = fields
    try:
        runs = CronSim(
            " ".join((minute, hour, _any(day), month, _weekday(_any(weekday)))),
            local_now.replace(second=0, microsecond=0),
        )
        for _ in range(400):
            when = next(runs)
            if _year_matches(year, when.year):
                return when
            if when - local_now > timedelta(days=366 * 5):
                return None
    except (CronSimError, StopIteration, ValueError):
        return None
    return None


def describe_rate(expression: str) -> str | None:
    """`every 1 hour` for `rate(1 hour)`."""
    match = _RATE.match(expression)
    return f"every {match.group(1)} {match.group(2)}" if match else None


def _any(field: str) -> str:
    return "*" if field == "?" else field


def _weekday(field: str) -> str:
    """AWS numbers weekdays 1-7 from Sunday; classic cron 0-6. Names stay as they are."""
    return re.sub(r"(?<![#\d])([1-7])", lambda m: str(int(m.group(1)) - 1), field)


def _year_matches(field: str, year: int) -> bool:
    if field in ("*", "?"):
        return True
    for part in field.split(","):
        if "-" in part:
            low, _, high = part.partition("-")
            if low.isdigit() and high.isdigit() and int(low) <= year <= int(high):
                return True
        elif part.isdigit() and int(part) == year:
            return True
    return False
