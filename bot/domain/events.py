"""Typed progress events: the one language actions speak and every renderer understands.

Actions emit them in order; the final event of an operation is always Succeeded or Failed.
Renderers (Slack threads, the terminal) only show them; they never decide outcomes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.domain.aws import revision_of
from bot.domain.text import Text


@dataclass(frozen=True)
class Started:
    """An operation was accepted and is about to touch ECS."""

    action: str
    app: str
    env: str
    actor: str
    subject: str
    trigger: str = "slash command"


@dataclass(frozen=True)
class WaitingForImage:
    image: str
    timeout_s: int


@dataclass(frozen=True)
class ImageVerified:
    image: str
    previous_image: str | None = None


@dataclass(frozen=True)
class TaskDefinitionRegistered:
    arn: str
    family: str
    revision: int
    previous_revision: int
    image: str
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class TaskStarted:
    name: str
    task_arn: str
    revision: int


@dataclass(frozen=True)
class TaskStopped:
    """A one-off task ended; exit codes per container, ECS's reasons and the log tail."""

    name: str
    task_arn: str
    exit_codes: dict[str, int | None]
    stop_code: str | None
    reason: str | None
    log_tail: tuple[str, ...] = ()
    log_location: str | None = None

    @property
    def succeeded(self) -> bool:
        return bool(self.exit_codes) and all(code == 0 for code in self.exit_codes.values())


@dataclass(frozen=True)
class ServiceUpdated:
    """update_service was accepted; from here on, the deployment id is what gets watched."""

    deployment_id: str
    task_definition: str
    previous_task_definition: str
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""
    service_deployment: str | None = None
    """The service deployment's ARN when the service deploys blue/green, linear or canary."""

    @property
    def revision(self) -> int:
        return revision_of(self.task_definition)

    @property
    def previous_revision(self) -> int:
        return revision_of(self.previous_task_definition)


@dataclass(frozen=True)
class RolloutProgress:
    running: int
    desired: int
    pending: int
    failed_tasks: int = 0
    new_events: tuple[str, ...] = ()
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class StageReached:
    """A blue/green, linear or canary deployment reached a lifecycle stage (or moved traffic)."""

    stage: str
    traffic: str
    bake_left_s: int | None = None
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class GatePaused:
    """A PAUSE hook holds the deployment until someone answers (Continue or Roll back)."""

    hook_id: str
    service_deployment: str
    stage: str
    traffic: str
    expires_at: float | None
    timeout_action: str | None
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class GateAnswered:
    """A pause ended: someone answered it, its timeout acted, or the deployment moved past it."""

    hook_id: str
    outcome: str
    """`continued`, `rolled back`, `timed out`, … as the thread says it."""
    answered: bool = False
    """Someone answered it (a press, `/rollback`, the console), rather than its timeout or the
    deployment's end: a press draws the reply itself, so the thread leaves it alone."""


@dataclass(frozen=True)
class StoppedTasks:
    """Why the new deployment's tasks died: what on-call needs first when a rollout fails."""

    reasons: tuple[str, ...]
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class RollingBack:
    to_revision: int
    reason: str
    by_ecs: bool = False
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class RolledBack:
    to_revision: int
    completed: bool = True
    by_ecs: bool = False
    service: str | None = None
    """The service this is about, in an operation over several services; None for one."""


@dataclass(frozen=True)
class ReleasePlanned:
    """An operation over several services starts: each one's name and current task definition.

    Folded into the record before the first ECS write, so a resume knows every service."""

    services: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ServiceSettled:
    """One service of a release reached its verdict; the release is judged once all have."""

    service: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class ScaleRequested:
    """update_service set a new desired count; from here on, running = desired is awaited."""

    service: str
    previous: int
    desired: int


@dataclass(frozen=True)
class MovingSchedules:
    """The rollout succeeded; the environment's schedules are moved next (a resumable phase)."""

    task_definition: str
    count: int


@dataclass(frozen=True)
class ScheduleMoved:
    """A schedule now runs `task_definition` (`unchanged`: it already did)."""

    name: str
    previous_task_definition: str
    task_definition: str

    @property
    def unchanged(self) -> bool:
        return self.previous_task_definition == self.task_definition


@dataclass(frozen=True)
class ScheduleNotMoved:
    """A schedule could not be moved: the operation ends succeeded with warnings."""

    name: str
    reason: str


@dataclass(frozen=True)
class Note:
    """A line for the thread that is neither progress nor outcome (a skipped step, a force)."""

    text: Text | str
    """Someone's words (a str, escaped where shown) or a line Tugboat composed (Text)."""
    loud: bool = False


@dataclass(frozen=True)
class Succeeded:
    summary: str
    warnings: tuple[str, ...] = ()
    """What did not go as planned though the service did (a schedule left behind)."""


@dataclass(frozen=True)
class Failed:
    reason: str
    details: tuple[str, ...] = field(default=())


ProgressEvent = (
    Started
    | WaitingForImage
    | ImageVerified
    | TaskDefinitionRegistered
    | TaskStarted
    | TaskStopped
    | ServiceUpdated
    | RolloutProgress
    | StageReached
    | GatePaused
    | GateAnswered
    | StoppedTasks
    | RollingBack
    | RolledBack
    | ReleasePlanned
    | ServiceSettled
    | ScaleRequested
    | MovingSchedules
    | ScheduleMoved
    | ScheduleNotMoved
    | Note
    | Succeeded
    | Failed
)

Emit = Callable[[ProgressEvent], Awaitable[None]]
"""Where an action sends its events; awaited, so the consumer may persist before it goes on."""
