"""The narrow ports the actions in `commands/` use: ECS, the shared watcher, recorded state.

Actions see only these protocols, so they can be read, tested and reused without the
runtime that implements them (`bot.aws`, `bot.state`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, runtime_checkable

from bot.domain.aws import ServiceRef, ServiceSnapshot
from bot.domain.gates import ServiceDeploymentState
from bot.domain.records import Lock, OperationRecord
from bot.domain.schedules import ScheduledTask, ScheduleRef


class Ecs(Protocol):
    """The ECS, ECR and CloudWatch Logs calls an action may make."""

    async def describe_services(
        self, refs: list[ServiceRef], *, retry: bool = True, fresh_within_s: float = 0.0
    ) -> dict[str, ServiceSnapshot]: ...

    async def describe_service(self, ref: ServiceRef) -> ServiceSnapshot: ...

    async def update_service(self, ref: ServiceRef, task_definition: str) -> ServiceSnapshot: ...

    async def scale_service(self, ref: ServiceRef, desired: int) -> ServiceSnapshot:
        """Set the service's desired count; nothing else changes."""
        ...

    async def force_new_deployment(self, ref: ServiceRef) -> ServiceSnapshot:
        """A new deployment of the revision the service runs (fresh tasks, same definition)."""
        ...

    async def describe_task_definition(self, ref: ServiceRef, arn: str) -> dict[str, Any]: ...

    async def service_deployments(self, ref: ServiceRef, *, in_progress: bool) -> list[str]:
        """The service's deployment ARNs, newest first (only unfinished ones with `in_progress`)."""
        ...

    async def describe_service_deployment(self, ref: ServiceRef, arn: str) -> ServiceDeploymentState | None:
        """One blue/green, linear or canary deployment as ECS sees it now; None when unknown."""
        ...

    async def continue_service_deployment(self, ref: ServiceRef, arn: str, hook_id: str, action: str) -> None:
        """Answer a PAUSE hook: CONTINUE or ROLLBACK. Never retried: one answer, one call."""
        ...

    async def stop_service_deployment(self, ref: ServiceRef, arn: str, stop_type: str) -> None:
        """Stop a service deployment: ROLLBACK (ECS's own way back) or ABORT."""
        ...

    async def register_task_definition(self, ref: ServiceRef, spec: dict[str, Any]) -> dict[str, Any]: ...

    async def list_revisions(self, ref: ServiceRef, family: str, limit: int = 10) -> list[str]: ...

    async def image_digest(self, region: str, repository: str, tag: str, role: str | None) -> str | None: ...

    async def image_tags(self, region: str, repository: str, role: str | None) -> list[str]: ...

    async def run_task(self, ref: ServiceRef, **kwargs: Any) -> dict[str, Any]: ...

    async def describe_tasks(self, ref: ServiceRef, arns: list[str]) -> list[dict[str, Any]]: ...

    async def stop_task(self, ref: ServiceRef, arn: str, reason: str) -> None: ...

    async def stopped_tasks(self, ref: ServiceRef) -> list[dict[str, Any]]: ...

    async def log_tail(
        self, region: str, group: str, stream: str, role: str | None, lines: int = 20
    ) -> list[str]: ...


class Schedules(Protocol):
    """EventBridge Scheduler schedules and rule targets that run ECS tasks."""

    async def read(self, ref: ScheduleRef) -> list[ScheduledTask]:
        """The schedule's ECS targets; ScheduleMissing when it (or the named target) is gone."""
        ...

    async def point(self, task: ScheduledTask, task_definition: str) -> None:
        """Run `task_definition` from now on; everything else stays exactly as it was."""
        ...


class Subscription(Protocol):
    """One waiter's view of a watched service."""

    async def next(self, timeout: float) -> ServiceSnapshot | None: ...

    def expect_end_in(self, seconds: float) -> None: ...


class DeploymentSubscription(Protocol):
    """One waiter's view of a followed service deployment."""

    async def next(self, timeout: float) -> ServiceDeploymentState | None:
        """The deployment as newly described, or None after `timeout`."""
        ...

    def look_now(self) -> None:
        """Describe it in the next batch (someone just answered a pause)."""
        ...


class Watcher(Protocol):
    """The one shared poller: batched describes for every operation in flight."""

    def watch(
        self, ref: ServiceRef, *, known: ServiceSnapshot | None = None
    ) -> AbstractAsyncContextManager[Subscription]: ...

    async def describe(self, ref: ServiceRef, timeout: float = 60.0) -> ServiceSnapshot: ...

    def follow_deployment(
        self, ref: ServiceRef, arn: str
    ) -> AbstractAsyncContextManager[DeploymentSubscription]:
        """Follow a blue/green, linear or canary deployment in the same batches (20 ARNs a call)."""
        ...


class TaskSubscription(Protocol):
    """One waiter's view of a followed one-off task."""

    async def next(self, timeout: float) -> dict[str, Any] | None:
        """The task as newly described ({} when ECS no longer knows it), or None after `timeout`."""
        ...


@runtime_checkable
class TaskWatcher(Protocol):
    """Follows one-off tasks in the shared watcher's batches, woken by ECS task events.

    The runtime offers it on the Ecs port it gives the actions, so `wait_one_off` uses it when
    it is there and polls describe_tasks itself when it is not.
    """

    def follow_task(self, ref: ServiceRef, arn: str) -> AbstractAsyncContextManager[TaskSubscription]: ...


class Records(Protocol):
    """What status and rollback read of the recorded state: locks and history."""

    async def get_lock(self, app: str, env: str) -> Lock | None: ...

    async def history(self, app: str, env: str, limit: int = 10) -> list[OperationRecord]: ...
