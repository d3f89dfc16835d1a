"""The narrow ports the actions in `commands/` use: ECS, the shared watcher, recorded state.

Actions see only these protocols, so they can be read, tested and reused without the
runtime that implements them (`bot.aws`, `bot.state`).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from bot.domain.aws import ServiceRef, ServiceSnapshot
from bot.domain.records import Lock, OperationRecord


class Ecs(Protocol):
    """The ECS, ECR and CloudWatch Logs calls an action may make."""

    async def describe_services(
        self, refs: list[ServiceRef], *, retry: bool = True
    ) -> dict[str, ServiceSnapshot]: ...

    async def describe_service(self, ref: ServiceRef) -> ServiceSnapshot: ...

    async def update_service(self, ref: ServiceRef, task_definition: str) -> ServiceSnapshot: ...

    async def describe_task_definition(self, ref: ServiceRef, arn: str) -> dict[str, Any]: ...

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


class Subscription(Protocol):
    """One waiter's view of a watched service."""

    async def next(self, timeout: float) -> ServiceSnapshot | None: ...

    def expect_end_in(self, seconds: float) -> None: ...


class Watcher(Protocol):
    """The one shared poller: batched describes for every operation in flight."""

    def watch(
        self, ref: ServiceRef, *, known: ServiceSnapshot | None = None
    ) -> AbstractAsyncContextManager[Subscription]: ...

    async def describe(self, ref: ServiceRef, timeout: float = 60.0) -> ServiceSnapshot: ...


class Records(Protocol):
    """What status and rollback read of the recorded state: locks and history."""

    async def get_lock(self, app: str, env: str) -> Lock | None: ...

    async def history(self, app: str, env: str, limit: int = 10) -> list[OperationRecord]: ...
