"""The state store's interface: records, target claims, locks, deliveries and audit.

One interface, two backends (SQLite for one replica, DynamoDB for several).
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.domain.records import Lock, OperationRecord


class StateStore(Protocol):
    """The state every replica shares. All methods are safe to call concurrently."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def claim_target(self, record: OperationRecord, lease_s: float) -> OperationRecord | None:
        """Save `record` and make it the one operation on its target; else return the holder."""
        ...

    async def renew_claim(self, record: OperationRecord, lease_s: float) -> bool: ...

    async def release_target(self, record: OperationRecord) -> None: ...

    async def active_on(self, app: str, env: str) -> OperationRecord | None: ...

    async def save(self, record: OperationRecord) -> None: ...

    async def get(self, op_id: str) -> OperationRecord | None: ...

    async def unfinished(self) -> list[OperationRecord]: ...

    async def adopt(self, record: OperationRecord, owner: str, lease_s: float) -> bool:
        """Take over an unfinished operation whose owner's lease ran out."""
        ...

    async def history(self, app: str, env: str, limit: int = 10) -> list[OperationRecord]: ...

    async def lock(self, lock: Lock) -> Lock | None:
        """Take the lock; return the existing active one instead if there is one."""
        ...

    async def unlock(self, app: str, env: str) -> Lock | None: ...

    async def get_lock(self, app: str, env: str) -> Lock | None: ...

    async def first_delivery(self, delivery_id: str, ttl_s: float = 7 * 86_400) -> bool:
        """True the first time a webhook delivery (or Slack event) id is seen."""
        ...

    async def audit(self, entry: dict[str, Any]) -> None: ...
