"""What the bot remembers: operation records, target claims, locks, deliveries and audit.

One interface, two backends (SQLite for one replica, DynamoDB for several). A record is
written before the first ECS write of its operation, with what is needed to resume it.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

ACTIVE_STATES = ("running",)
CLAIMING_ACTIONS = ("deploy", "rollback")
"""Actions that hold their target: one at a time per app and environment."""


def new_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class OperationRecord:
    """A deploy, rollback or run-task: who asked, what it changes, where it reports."""

    action: str
    app: str
    env: str
    actor: str
    subject: str
    id: str = field(default_factory=new_id)
    trigger: str = "slash command"
    state: str = "running"
    phase: str = "accepted"
    previous_task_definition: str | None = None
    task_definition: str | None = None
    deployment_id: str | None = None
    task_arn: str | None = None
    channel: str | None = None
    ts: str | None = None
    permalink: str | None = None
    reason: str | None = None
    owner: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_key(self) -> str:
        return f"{self.app}/{self.env}"

    @property
    def finished(self) -> bool:
        return self.state not in ACTIVE_STATES

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OperationRecord:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Lock:
    """A human hold on a target: deploys, rollbacks and auto-deploys wait for its release."""

    app: str
    env: str
    holder: str
    reason: str
    created_at: float
    expires_at: float | None = None

    def active(self, now: float | None = None) -> bool:
        return self.expires_at is None or self.expires_at > (time.time() if now is None else now)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Lock:
        return cls(**json.loads(text))


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
