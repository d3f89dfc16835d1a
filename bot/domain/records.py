"""Operation records and locks: what every replica shares about what runs where.

A record is written before the first ECS write of its operation, with what a resume needs.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

ACTIVE_STATES = ("running",)
CLAIMING_ACTIONS = ("deploy", "rollback", "restart")
"""Actions that hold their target: one at a time per app and environment (a restart is a
rollout too, so a deploy never lands in the middle of one)."""
ROLLOUT_ACTIONS = ("deploy", "rollback", "restart", "scale")
"""Actions that change a service: history lists them; resume watches them to their end."""


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class Phase(StrEnum):
    """Where an operation is. Resume decides by it, and the thread's parent line shows it."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    AWAITING_CONFIRMATION = "awaiting confirmation"
    CHECKING = "checking"
    WAITING_FOR_IMAGE = "waiting for image"
    IMAGE_FOUND = "image found"
    REGISTERED = "registered"
    RUNNING_TASK = "running task"
    ROLLING_OUT = "rolling out"
    PAUSED = "paused"
    SCALING = "scaling"
    MOVING_SCHEDULES = "moving schedules"
    ROLLING_BACK = "rolling back"
    ROLLED_BACK = "rolled back"
    ROLLBACK_INCOMPLETE = "rollback did not complete"
    DONE = "done"
    STOPPED = "stopped"

    @classmethod
    def parse(cls, value: str) -> Phase | str:
        """A stored phase, including the words records written before this type used."""
        legacy = {"updated": cls.ROLLING_OUT, "task running": cls.RUNNING_TASK}
        if value in legacy:
            return legacy[value]
        try:
            return cls(value)
        except ValueError:
            return value


@dataclass(frozen=True)
class Target:
    """An app and environment that both exist in the catalog."""

    app: str
    env: str

    def __str__(self) -> str:
        return f"{self.app} {self.env}"


@dataclass
class ServiceProgress:
    """One service of a release (or a restart of several): what a resume needs to finish it,
    and what the thread's parent shows of it (`api-worker ⏳ 1/3`)."""

    name: str
    previous_task_definition: str | None = None
    task_definition: str | None = None
    deployment_id: str | None = None
    service_deployment: str | None = None
    """The service deployment's ARN, for a blue/green, linear or canary service."""
    state: str = "waiting"
    """waiting · registered · rolling out · succeeded · failed · rolling back · rolled back ·
    rollback incomplete"""
    running: int | None = None
    desired: int | None = None
    rollback_to: int | None = None
    reason: str | None = None

    @property
    def changed(self) -> bool:
        """ECS accepted an update of this service for the operation."""
        return self.deployment_id is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceProgress:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class GateEntry:
    """A pause in a blue/green deployment: what the thread's reply with buttons shows.

    `ts` is that reply, so a replica that adopts the operation edits the same message."""

    hook_id: str
    service_deployment: str
    stage: str
    traffic: str
    expires_at: float | None = None
    timeout_action: str | None = None
    state: str = "awaiting"
    """awaiting, or how it ended: continued · rolled back · timed out · …"""
    ts: str | None = None
    service: str | None = None

    @property
    def awaiting(self) -> bool:
        return self.state == "awaiting"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateEntry:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
    phase: Phase | str = Phase.ACCEPTED
    previous_task_definition: str | None = None
    task_definition: str | None = None
    deployment_id: str | None = None
    task_arn: str | None = None
    channel: str | None = None
    ts: str | None = None
    permalink: str | None = None
    reason: str | None = None
    owner: str | None = None
    generation: int = 0
    """Bumped by each adoption: a write from an older lease generation is refused (Fenced)."""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    running: int | None = None
    desired: int | None = None
    pending: int | None = None
    task_name: str | None = None
    """The one-off task running now (a run-task, or a before_deploy step)."""
    rollback_to: int | None = None
    """The revision a rollback after a failed rollout goes (or went) back to."""
    warnings: list[str] = field(default_factory=list)
    """Why a success is only a success with warnings (a schedule that could not be moved)."""
    services: list[ServiceProgress] = field(default_factory=list)
    """Per service, for an operation over several services (a release); empty for one service,
    whose state is the fields above."""
    service_deployment: str | None = None
    """The service deployment's ARN, for a blue/green, linear or canary service."""
    stage: str | None = None
    """The lifecycle stage such a deployment reached last."""
    gates: list[GateEntry] = field(default_factory=list)
    """Its pauses, each shown as a reply with Continue and Roll back."""

    def gate(self, hook_id: str) -> GateEntry | None:
        return next((entry for entry in self.gates if entry.hook_id == hook_id), None)

    def service(self, name: str) -> ServiceProgress | None:
        return next((entry for entry in self.services if entry.name == name), None)

    @property
    def target(self) -> Target:
        return Target(self.app, self.env)

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
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.phase = Phase.parse(str(record.phase))
        record.services = [ServiceProgress.from_dict(dict(entry)) for entry in data.get("services") or []]
        record.gates = [GateEntry.from_dict(dict(entry)) for entry in data.get("gates") or []]
        return record


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
