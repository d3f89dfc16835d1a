"""What Tugboat knows about AWS, as values: service references, snapshots, errors.

Pure data and parsing, no calls: every layer imports these, and only `bot.aws` talks to AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "RequestTimeout",
    }
)
READ_ONLY_TASK_DEF_KEYS = (
    "taskDefinitionArn",
    "revision",
    "status",
    "compatibilities",
    "requiresAttributes",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
)


class AwsError(Exception):
    """An AWS call failed for good; the message carries the operation and AWS's words."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        self.operation = operation
        self.code = code
        self.aws_message = message
        super().__init__(f"{operation} failed: {code}: {message}")

    @property
    def throttled(self) -> bool:
        return self.code in RETRYABLE


class ServiceNotFound(AwsError):
    """The catalog names a service ECS does not have (or that is no longer ACTIVE)."""

    @classmethod
    def of(cls, ref: ServiceRef) -> ServiceNotFound:
        return cls(
            "DescribeServices",
            "ServiceNotFoundException",
            f"service {ref.service} is not active in cluster {ref.cluster} ({ref.region})",
        )


@dataclass(frozen=True)
class ServiceRef:
    """Where one ECS service lives: everything needed to call AWS about it."""

    region: str
    cluster: str
    service: str
    role_arn: str | None = None

    @property
    def key(self) -> str:
        return f"{self.region}/{self.cluster}/{self.service}"


@dataclass(frozen=True)
class Deployment:
    id: str
    status: str
    task_definition: str
    desired: int
    running: int
    pending: int
    failed_tasks: int
    rollout_state: str | None
    rollout_reason: str | None


@dataclass(frozen=True)
class ServiceEvent:
    id: str
    at: datetime | None
    message: str


@dataclass(frozen=True)
class ServiceSnapshot:
    """One describe_services answer for one service, typed."""

    ref: ServiceRef
    status: str
    task_definition: str
    desired: int
    running: int
    pending: int
    deployments: tuple[Deployment, ...]
    events: tuple[ServiceEvent, ...]
    raw: dict[str, Any]

    @property
    def primary(self) -> Deployment | None:
        return next((d for d in self.deployments if d.status == "PRIMARY"), None)

    def deployment(self, deployment_id: str) -> Deployment | None:
        return next((d for d in self.deployments if d.id == deployment_id), None)

    @classmethod
    def parse(cls, ref: ServiceRef, raw: dict[str, Any]) -> ServiceSnapshot:
        deployments = tuple(
            Deployment(
                id=str(d.get("id", "")),
                status=str(d.get("status", "")),
                task_definition=str(d.get("taskDefinition", "")),
                desired=int(d.get("desiredCount", 0)),
                running=int(d.get("runningCount", 0)),
                pending=int(d.get("pendingCount", 0)),
                failed_tasks=int(d.get("failedTasks", 0)),
                rollout_state=d.get("rolloutState"),
                rollout_reason=d.get("rolloutStateReason"),
            )
            for d in raw.get("deployments", [])
        )
        events = tuple(
            ServiceEvent(str(e.get("id", "")), e.get("createdAt"), str(e.get("message", "")))
            for e in raw.get("events", [])
        )
        return cls(
            ref=ref,
            status=str(raw.get("status", "")),
            task_definition=str(raw.get("taskDefinition", "")),
            desired=int(raw.get("desiredCount", 0)),
            running=int(raw.get("runningCount", 0)),
            pending=int(raw.get("pendingCount", 0)),
            deployments=deployments,
            events=events,
            raw=raw,
        )


def revision_of(task_definition_arn: str) -> int:
    """The revision number at the end of a task definition ARN (`…/family:42` → 42)."""
    try:
        return int(task_definition_arn.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 0


def family_of(task_definition_arn: str) -> str:
    return task_definition_arn.rsplit("/", 1)[-1].rsplit(":", 1)[0]


def registrable(task_definition: dict[str, Any]) -> dict[str, Any]:
    """A described task definition minus the read-only keys, ready to register again."""
    return {k: v for k, v in task_definition.items() if k not in READ_ONLY_TASK_DEF_KEYS}


@dataclass(frozen=True)
class AwsLogs:
    """Where a container's awslogs driver writes: streams are `<prefix>/<container>/<task-id>`."""

    group: str
    region: str
    prefix: str | None


def awslogs_of(container: dict[str, Any], default_region: str) -> AwsLogs | None:
    """The container definition's awslogs settings; None for any other log driver."""
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or "awslogs-group" not in options:
        return None
    prefix = options.get("awslogs-stream-prefix")
    return AwsLogs(
        str(options["awslogs-group"]),
        str(options.get("awslogs-region", default_region)),
        str(prefix) if prefix else None,
    )
