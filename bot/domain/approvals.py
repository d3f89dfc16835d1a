"""Four-eyes approvals as values: the catalog rule, a stored request, and how one press counts.

SPEC part two, "Four eyes": the requester cannot approve their own request, each approver is a
distinct user allowed to approve, and a request expires after the rule's timeout. Who is
allowed (group membership) is asked by the caller; everything else is decided here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.domain.records import Target, new_id

GATED_ACTIONS = ("deploy", "rollback", "run-task", "scale", "restart")
"""What `approval.for` may name: every action that changes a running service."""

ApprovalState = Literal["open", "approved", "expired", "cancelled", "superseded"]
"""`superseded`: an auto-deploy's request that a newer push to the same target replaced."""


class ApprovalRule(BaseModel):
    """An environment's `approval:`: how many others must approve which actions, and who may."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    required: int = Field(default=1, ge=1, le=5)
    groups: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=lambda: ["deploy"], alias="for", min_length=1)
    timeout: int = Field(default=1800, gt=0, le=7 * 86_400)

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: list[str]) -> list[str]:
        for action in value:
            if action not in GATED_ACTIONS:
                raise ValueError(f"unknown action {action!r}: expected some of {', '.join(GATED_ACTIONS)}")
        return value

    def covers(self, action: str) -> bool:
        return action in self.actions


@dataclass
class Approval:
    """One request for approval, shared by every replica through the state store.

    `plan` is what runs once enough people approved, pinned when the card was posted (for a
    deploy: the tag, its digest and the revision it replaces). `version` is bumped by every
    write: a write from an older read is refused, so two replicas never count one press twice.
    """

    action: str
    app: str
    env: str
    requester: str
    subject: str
    required: int
    groups: list[str]
    expires_at: float
    channel: str
    """Where the card is posted."""
    origin_channel: str = ""
    """Where the request was made: the operation's story goes where a direct one would."""
    trigger: str = "slash command"
    plan: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    created_at: float = field(default_factory=time.time)
    approvers: list[str] = field(default_factory=list)
    state: ApprovalState = "open"
    outcome: str = ""
    """What became of it, in words (shown on the settled card)."""
    ts: str | None = None
    """The card's message."""
    version: int = 0

    @property
    def target(self) -> Target:
        return Target(self.app, self.env)

    @property
    def awaiting(self) -> int:
        """How many more approvals it needs."""
        return max(0, self.required - len(self.approvers))

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Approval:
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PressResult = Literal["counted", "approved", "own", "twice", "closed", "expired"]


def press(approval: Approval, user: str, now: float | None = None) -> PressResult:
    """Count `user`'s approval (already known to be allowed) into `approval`, in place.

    Only `counted` and `approved` change it; `expired` marks it expired (also a change).
    """
    if approval.state != "open":
        return "closed"
    if approval.expired(now):
        approval.state, approval.outcome = "expired", "expired: nothing ran"
        return "expired"
    if user == approval.requester:
        return "own"
    if user in approval.approvers:
        return "twice"
    approval.approvers.append(user)
    if approval.awaiting == 0:
        approval.state = "approved"
        return "approved"
    return "counted"
