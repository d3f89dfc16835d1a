"""The state store's interface: records, target claims, locks, deliveries and audit.

One interface, two backends (SQLite for one replica, DynamoDB for several).
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.domain.approvals import Approval
from bot.domain.records import Lock, OperationRecord


class Fenced(Exception):
    """This replica no longer owns the operation: another owner or a newer lease generation holds it.

    Raised instead of writing, so a replica that lost its lease stops acting on the operation.
    `owner` and `generation` are what the store holds now, when it could tell.
    """

    def __init__(self, op_id: str, owner: str | None = None, generation: int | None = None) -> None:
        self.op_id = op_id
        self.owner = owner
        self.generation = generation
        held = "" if generation is None else f": held by {owner or 'no owner'} at generation {generation}"
        super().__init__(f"operation {op_id} is fenced{held}")


class StateStore(Protocol):
    """The state every replica shares. All methods are safe to call concurrently."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def claim_target(self, record: OperationRecord, lease_s: float) -> OperationRecord | None:
        """Save `record` and make it the one operation on its target; else return the holder.

        The record is written at its own generation, fenced like `save` (raises `Fenced`).
        """
        ...

    async def renew_claim(self, record: OperationRecord, lease_s: float) -> bool:
        """Extend the operation's lease (and its claim, where it holds one); False when lost.

        Lost: the stored owner or generation is not the record's; nothing is extended then.
        A claim can only pass to another operation after this lease lapsed, which the
        lifecycle already treats as lost, so an unclaimed operation (a run-task, an
        auto-deploy waiting for its turn) keeps its lease.
        """
        ...

    async def release_target(self, record: OperationRecord) -> None:
        """Drop the target's claim if this operation holds it at this or an older generation."""
        ...

    async def active_on(self, app: str, env: str) -> OperationRecord | None: ...

    async def save(self, record: OperationRecord) -> None:
        """Write the record; raise `Fenced` when the stored one is someone else's now.

        A new record is always written. An existing one only while its stored generation is
        the record's and, unless `record.owner` is None, its stored owner is the record's.
        """
        ...

    async def get(self, op_id: str) -> OperationRecord | None: ...

    async def unfinished(self) -> list[OperationRecord]: ...

    async def adopt(self, record: OperationRecord, owner: str, lease_s: float) -> bool:
        """Take over an unfinished operation whose owner's lease ran out (or is `owner`).

        Only from the generation the caller read: on success the stored generation is one
        more, and `record.owner` and `record.generation` say so; any older copy is fenced.
        """
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

    async def create_approval(self, approval: Approval) -> None:
        """Store a new approval request (at its version, 0)."""
        ...

    async def get_approval(self, approval_id: str) -> Approval | None: ...

    async def open_approvals(self) -> list[Approval]:
        """Every request still open, oldest first: a starting replica arms their expiry again."""
        ...

    async def update_approval(self, approval: Approval) -> bool:
        """Write `approval` if the stored one is still at `approval.version`, bumping it; False
        when another press (another replica) wrote first: read again and judge again."""
        ...
