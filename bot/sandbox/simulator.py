"""Makes moto's ECS services roll out like real ECS, as seen over HTTP.

moto never rolls a service out (one PRIMARY deployment, no events, tasks that never stop),
so this thread edits moto's in-memory backend while ThreadedMotoServer serves it. It also
wraps a few backend methods (update_service, run_task, stop_task, ...) where real ECS
answers synchronously. All edits happen under one lock and replace dicts/lists whole,
because moto's request threads iterate them without locking.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.backends import get_backend
from moto.ecs import models as _ecs_models
from moto.ecs.exceptions import InvalidParameterException
from moto.logs import models as _logs_models

from bot.sandbox.service_deployments import (
    STAGE_MINUTES,
    STOPPABLE,
    TIMEOUT_ACTION,
    TIMEOUT_MINUTES,
    Hook,
    ServiceDeployment,
    ServiceDeploymentError,
    ServiceRevision,
    Shares,
    Step,
    hook_error,
    plan,
    uses_strategy,
)

__all__ = ["EventSink", "PublishedEvent", "RolloutSimulator", "TaskScript", "UnstartableRule"]

# moto's models are untyped: every backend object below is `Any` and stays inside this module.
UnstartableRule = str | Callable[[str], bool]
EventSink = Callable[[list[dict[str, Any]]], None]
"""Takes EventBridge PutEvents entries (the world sends them to its simulated EventBridge)."""
_Backend = Any
_Service = Any
_Task = Any
_Deployment = dict[str, Any]
_new_container: Any = _ecs_models.Container
_new_task: Any = _ecs_models.Task
_new_log_stream: Any = _logs_models.LogStream

_log = logging.getLogger(__name__)
_MARKER = "_tugboat_simulator"
INSTALLED = ("update_service", "create_service", "run_task", "stop_task", _MARKER)
"""What the simulator puts on moto's ECS backend instance (a reset of the backend drops them)."""
_SEEDED_STATE = ("_services", "_deployments", "_completed", "_service_deployments", "_latest", "_revisions")
_EVENTS_KEPT = 100
_PUBLISHED_KEPT = 5000
_STOPPED_TASK_TTL = 3600.0
_FAILED_REASON = "Essential container in task exited"
_BREAKER_REASON = "ECS deployment circuit breaker: tasks failed to start."
_ID_LETTERS = string.ascii_letters + string.digits
_CANNOT_START = "CannotStartContainerError: exec /app/server: exec format error"
_MIGRATION_LINES = (
    "I, [2026-11-01T12:00:00.000000 #1]  INFO -- : Migrating to CreateWidgets (20261101120000)",
    "== 20261101120000 CreateWidgets: migrating ====================================",
    "-- create_table(:widgets)",
    "   -> 0.0102s",
    "-- add_index(:widgets, :name)",
    "   -> 0.0021s",
    "== 20261101120000 CreateWidgets: migrated (0.0123s) ===========================",
)
_MIGRATION_ERROR = (
    "rails aborted! ActiveRecord::StatementInvalid: PG::UndefinedTable: "
    'ERROR:  relation "widgets" does not exist'
)


@dataclass(frozen=True)
class TaskScript:
    """A scripted one-off task outcome, matched as a substring of the joined command."""

    match: str
    exit_code: int
    log_lines: tuple[str, ...]
    seconds: float | None = None


@dataclass
class _Outcome:
    exit_code: int
    lines: list[str]
    seconds: float
    hang: bool = False
    unstartable: bool = False


@dataclass(frozen=True)
class PublishedEvent:
    """An ECS event the simulator published: when (``time.monotonic()``), its type, resources, detail."""

    at: float
    kind: str
    resources: tuple[str, ...]
    detail: dict[str, Any]


@dataclass
class _OneOff:
    """A run_task task the simulator walks PROVISIONING -> PENDING -> RUNNING -> STOPPED."""

    cluster: str
    arn: str
    outcome: _Outcome
    container: str
    log_group: str | None
    log_stream: str | None
    due: float
    running_since: float | None = None
    lines_written: int = 0


@dataclass
class _DeploymentMeta:
    rollback_id: str | None
    rollback_task_definition: str | None


@dataclass
class _ServiceState:
    last_action: float
    steady: bool = False
    last_completed: tuple[str, str] | None = None  # (deployment id, task definition)


@dataclass
class _Index:
    """Live service tasks per (cluster, deployment id), built once per tick."""

    by_deployment: dict[tuple[str, str], list[_Task]] = field(default_factory=dict)

    def tasks(self, cluster: str, deployment_id: str) -> list[_Task]:
        tasks = self.by_deployment.get((cluster, deployment_id), [])
        return [t for t in tasks if t.last_status != "STOPPED"]

    def add(self, cluster: str, task: _Task) -> None:
        self.by_deployment.setdefault((cluster, task.started_by), []).append(task)


class _Shadow:
    """Lets a moto method insert into private copies of the backend's dicts.

    moto inserts into ``tasks``/``services`` in place while other request threads iterate
    them; we publish the copies whole afterwards instead.
    """

    def __init__(self, backend: _Backend) -> None:
        self._backend = backend
        self.tasks: dict[str, dict[str, _Task]] = {}
        self.services: dict[str, _Service] = dict(backend.services)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    @classmethod
    def build(cls, backend: _Backend, original: Callable[..., Any], *a: Any, **k: Any) -> tuple[_Shadow, Any]:
        """Run moto's `original` on a shadow of `backend`: the shadow, and what moto returned."""
        shadow = cls(backend)
        return shadow, original(shadow, *a, **k)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: object) -> str | None:
    """ECS's event timestamps: ISO 8601 in UTC with milliseconds and a Z."""
    if not isinstance(moment, datetime):
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _image_tag(image: str) -> str:
    """The tag (or digest) of an image reference; ``latest`` when it has neither."""
    if "@" in image:
        return image.rsplit("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def _task_id(task: _Task) -> str:
    return str(task.task_arn).rsplit("/", 1)[-1]


def _broken(tag: str, _container: str | None = None) -> bool:
    """The default rule: images tagged `broken…` cannot start."""
    return tag.startswith("broken")


def _breaker_threshold(svc: _Service) -> int:
    """Failed tasks that trip ECS's circuit breaker: half the desired count, within [3, 200]."""
    return max(3, min(200, math.ceil(0.5 * int(svc.desired_count))))


def _key(svc: _Service) -> str:
    return f"{svc.cluster_name}:{svc.name}"


class RolloutSimulator:
    """Background ticker that gives moto's ECS rolling deployments, circuit breakers and tasks."""

    def __init__(
        self,
        account_id: str = "123456789012",
        region: str = "us-east-1",
        *,
        rollout_seconds: float = 2.0,
        tick: float = 0.1,
        task_seconds: float = 1.0,
        minute_seconds: float = 6.0,
        seed: int | None = None,
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.rollout_seconds = rollout_seconds
        self.tick = tick
        self.task_seconds = task_seconds
        self.minute_seconds = minute_seconds
        """Seconds per ECS minute, for service deployments' bake times, steps and hook timeouts."""
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._thread: threading.Thread | None = None
        self._paused_at: float | None = None
        self._services: dict[str, _ServiceState] = {}
        self._deployments: dict[str, _DeploymentMeta] = {}
        self._completed: dict[tuple[str, str, str], float] = {}
        self._oneoffs: dict[str, _OneOff] = {}
        self._stops: dict[str, tuple[str, float]] = {}  # task arn -> (cluster, due)
        self._scripts: list[TaskScript] = []
        self._unstartable: list[Callable[[str, str | None], bool]] = [_broken]
        self._installed_on: _Backend | None = None
        self._tick_index: _Index | None = None  # set while a tick runs, under the lock
        self._sink: EventSink | None = None
        self._outbox: list[dict[str, Any]] = []  # PutEvents entries not yet sent, under the lock
        self._published: list[PublishedEvent] = []
        self._service_deployments: dict[str, ServiceDeployment] = {}  # by ARN, oldest first
        self._latest: dict[str, ServiceDeployment] = {}  # each service's newest, by cluster:service
        self._revisions: dict[str, ServiceRevision] = {}  # by ARN

    # -- public controls -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        with self._lock:
            b = get_backend("ecs")[self.account_id][self.region]
            other = b.__dict__.get(_MARKER)
            if other is not None and other is not self and other._thread is not None:
                raise RuntimeError("another RolloutSimulator is running in this process")
            self._deployments.clear()
            self._completed.clear()
            self._oneoffs.clear()
            self._stops.clear()
            self._forget_service_deployments()
            self._backend()
        self._thread = threading.Thread(target=self._run, name="rollout-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            if self._installed_on is not None:
                for name in INSTALLED:
                    self._installed_on.__dict__.pop(name, None)
                self._installed_on = None

    def reset(
        self,
        *,
        rollout_seconds: float,
        tick: float,
        task_seconds: float,
        minute_seconds: float = 6.0,
        seed: int | None = None,
        wipe: Callable[[], None] | None = None,
    ) -> None:
        """Forget everything simulated and take new knobs, as if freshly constructed.

        ``wipe`` (such as a moto reset) runs under the simulator's lock, so no tick edits a
        backend while it is being cleared. Scripts and unstartable rules return to defaults,
        and a pause is lifted.
        """
        with self._lock:
            if wipe is not None:
                wipe()
            self.rollout_seconds = rollout_seconds
            self.tick = tick
            self.task_seconds = task_seconds
            self.minute_seconds = minute_seconds
            self._rng = random.Random(seed)
            self._paused_at = None
            self._services.clear()
            self._deployments.clear()
            self._completed.clear()
            self._oneoffs.clear()
            self._stops.clear()
            self._scripts.clear()
            self._forget_service_deployments()
            self._unstartable = [_broken]
            self._sink = None
            self._outbox = []
            self._published = []
            self._idle.clear()
            if self._thread is not None:
                self._backend()  # reinstall the wrappers on the wiped backend now

    def saved_state(self) -> dict[str, Any]:
        """What the simulator knows of the services seeded so far (a copy), for `restore_state`."""
        with self._lock:
            return copy.deepcopy(
                {name: getattr(self, name) for name in _SEEDED_STATE}, {id(self._backend()): self._backend()}
            )

    def restore_state(self, saved: dict[str, Any]) -> None:
        """Know the seeded services again as `saved_state` found them (after a reset that put
        their backends back)."""
        with self._lock:
            b = self._backend()
            for name, value in copy.deepcopy(saved, {id(b): b}).items():
                setattr(self, name, value)

    def pause(self) -> None:
        """Freeze every rollout and task where it is (wrapped calls still answer)."""
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic()

    def resume(self) -> None:
        """Continue as if no time had passed while paused."""
        with self._lock:
            if self._paused_at is None:
                return
            delta = time.monotonic() - self._paused_at
            self._paused_at = None
            for state in self._services.values():
                state.last_action += delta
            for job in self._oneoffs.values():
                job.due += delta
                if job.running_since is not None:
                    job.running_since += delta
            self._stops = {arn: (c, due + delta) for arn, (c, due) in self._stops.items()}
            for deployment in self._service_deployments.values():
                if deployment.due is not None:
                    deployment.due += delta
                for hook in deployment.awaiting:
                    hook.deadline = hook.deadline + delta if hook.deadline is not None else None
                    hook.expires_at = hook.expires_at + timedelta(seconds=delta) if hook.expires_at else None

    def wait_idle(self, timeout: float) -> bool:
        """True once a tick finds nothing in progress (hanging tasks excepted)."""
        with self._lock:
            self._idle.clear()
        return self._idle.wait(timeout)

    def completed_at(self, cluster: str, service: str, deployment_id: str) -> float | None:
        """``time.monotonic()`` when the simulator marked that deployment COMPLETED."""
        with self._lock:
            return self._completed.get((cluster, service, deployment_id))

    # -- service deployments, as ECS's API answers about them ------------------------------

    def service_deployments(self, arns: list[str]) -> list[dict[str, Any]]:
        """DescribeServiceDeployments' answers for the ARNs the world knows, in the order asked."""
        with self._lock:
            b = self._backend()
            known = [self._service_deployments.get(arn) for arn in dict.fromkeys(arns)]
            answers = []
            for deployment in known:
                if deployment is not None:
                    self._count_shares(b, deployment)
                    answers.append(deployment.describe())
            return answers

    def service_deployment_briefs(self, cluster: str, service: str) -> list[dict[str, Any]]:
        """ListServiceDeployments' briefs for one service, newest first (ECS's not-found errors)."""
        cluster_name, service_name = cluster.rsplit("/", 1)[-1], service.rsplit("/", 1)[-1]
        with self._lock:
            b = self._backend()
            if cluster_name not in b.clusters:
                raise ServiceDeploymentError("ClusterNotFoundException", "Cluster not found.")
            key = f"{cluster_name}:{service_name}"
            if key not in b.services:
                raise ServiceDeploymentError("ServiceNotFoundException", "Service not found.")
            mine = [d for d in self._service_deployments.values() if d.key == key]
            return [d.brief() for d in reversed(mine)]

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None:
        """Answer a PAUSE hook that awaits action: CONTINUE goes on, ROLLBACK goes back."""
        with self._lock:
            deployment, svc = self._known(arn)
            hook = deployment.hook(hook_id)
            if hook is None:
                raise ServiceDeploymentError(
                    "InvalidParameterException", f"The service deployment has no lifecycle hook {hook_id}."
                )
            if hook.status != "AWAITING_ACTION" or deployment.status != "IN_PROGRESS":
                raise ServiceDeploymentError(
                    "InvalidParameterException",
                    f"The lifecycle hook {hook_id} is {hook.status}, not AWAITING_ACTION "
                    f"(the service deployment is {deployment.status}): there is nothing to answer.",
                )
            if action == "ROLLBACK":
                self._end_hook(deployment, hook, "FAILED")
                reason = f"Rollback requested at the lifecycle hook {hook_id} ({hook.stage})."
                self._request_rollback(svc, deployment, reason)
                return
            self._end_hook(deployment, hook, "SUCCEEDED")
            step = deployment.current
            if not deployment.awaiting and step is not None:
                deployment.due = time.monotonic() + self._dwell(step)

    def stop_service_deployment(self, arn: str, stop_type: str) -> None:
        """ROLLBACK goes back to the revision that served production; ABORT stops where it is."""
        with self._lock:
            deployment, svc = self._known(arn)
            if not deployment.ongoing:
                raise ServiceDeploymentError(
                    "ConflictException",
                    f"The service deployment is {deployment.status}: only an ongoing one can be stopped.",
                )
            if deployment.status not in STOPPABLE:
                return  # already stopping or rolling back: ECS carries on
            if stop_type == "ROLLBACK":
                self._request_rollback(svc, deployment, "StopServiceDeployment requested a rollback.")
                return
            for hook in deployment.awaiting:
                self._end_hook(deployment, hook, "FAILED")
            deployment.status = "STOP_REQUESTED"
            deployment.status_reason = "StopServiceDeployment requested a stop."
            deployment.updated_at = _now()
            deployment.due = time.monotonic() + self._seconds(STAGE_MINUTES)

    def service_revisions(self, arns: list[str]) -> list[dict[str, Any]]:
        """DescribeServiceRevisions' answers for the revisions of service deployments."""
        with self._lock:
            return [self._revisions[arn].describe() for arn in dict.fromkeys(arns) if arn in self._revisions]

    def lifecycle_stages(self, arn: str) -> list[str]:
        """Every lifecycle stage a service deployment has entered, in order: some last a moment."""
        with self._lock:
            deployment = self._service_deployments.get(arn)
            return list(deployment.stages) if deployment is not None else []

    def publish_events(self, sink: EventSink | None) -> None:
        """Publish ECS's events (deployment, service action, task state) to `sink`; None: stop.

        Events are made under the lock as the world changes and sent after each tick, outside
        it, so a slow EventBridge never holds a rollout back. A reset stops publishing.
        """
        with self._lock:
            self._sink = sink
            self._outbox = []

    def published(self, kind: str | None = None) -> list[PublishedEvent]:
        """The events published since publishing began (or the last reset), oldest first."""
        with self._lock:
            return [e for e in self._published if kind is None or e.kind == kind]

    def script_task(
        self, match: str, exit_code: int, log_lines: list[str], seconds: float | None = None
    ) -> None:
        """Decide the outcome of one-off tasks whose joined command contains ``match``."""
        with self._lock:
            self._scripts.insert(0, TaskScript(match, exit_code, tuple(log_lines), seconds))

    def mark_unstartable(self, rule: UnstartableRule, *, container: str | None = None) -> None:
        """An image tag (exact) or a predicate on the tag whose containers cannot start;
        with `container`, only containers of that name (one service of a release fails)."""
        matches = rule if callable(rule) else (lambda tag, wanted=rule: tag == wanted)
        named = container

        def predicate(tag: str, name: str | None = None) -> bool:
            return matches(tag) and (named is None or name == named)

        with self._lock:
            self._unstartable.append(predicate)

    def settle(self, cluster: str, service: str) -> None:
        """Make a just-created service steady now: RUNNING tasks, COMPLETED, steady event."""
        with self._lock:
            b = self._backend()
            svc = b.services[f"{cluster}:{service}"]
            primary = svc.deployments[0]
            for task in self._live_tasks(b, svc, primary["id"]):
                if task.last_status != "RUNNING":
                    self._start_containers(task)
            started = [
                self._new_service_task(b, svc, primary, running=True)
                for _ in range(svc.desired_count - len(self._live_tasks(b, svc, primary["id"])))
            ]
            if started:
                ids = " ".join(f"(task {_task_id(t)})" for t in started)
                self._event(svc, f"has started {len(started)} tasks: {ids}.")
            now = _now()
            svc.deployments = [
                {
                    **primary,
                    "rolloutState": "COMPLETED",
                    "rolloutStateReason": f"ECS deployment {primary['id']} completed.",
                    "updatedAt": now,
                }
            ]
            self._event(svc, f"(deployment {primary['id']}) deployment completed.")
            self._event(svc, "has reached a steady state.")
            self._deployment_event(svc, svc.deployments[0], "SERVICE_DEPLOYMENT_COMPLETED")
            self._service_action(svc, "SERVICE_STEADY_STATE")
            self._sync_counts(b, svc)
            state = self._state(svc)
            state.steady = True
            state.last_completed = (primary["id"], primary["taskDefinition"])
            self._completed[(svc.cluster_name, svc.name, primary["id"])] = time.monotonic()

    # -- thread loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.tick):
            self._tick_once()
            self._send_events()

    def _tick_once(self) -> None:
        with self._lock:
            if self._paused_at is not None:
                return
            try:
                busy = self._tick(time.monotonic())
            except Exception:
                # Keep simulating: one odd object must not freeze every rollout.
                _log.exception("rollout simulator tick failed")
                return
            if not busy:
                self._idle.set()  # under the lock, so wait_idle() never sees a stale tick

    def _send_events(self) -> None:
        """Hand the events made since the last tick to the sink, outside the lock."""
        with self._lock:
            sink, entries, self._outbox = self._sink, self._outbox, []
        if sink is None or not entries:
            return
        try:
            sink(entries)
        except Exception:  # EventBridge or its queue is gone (a test deleted it): events are lost, as in AWS
            _log.info("ECS events not delivered", exc_info=True)

    def _tick(self, now: float) -> bool:
        b = self._backend()
        index = self._index(b, now)
        self._tick_index = index
        try:
            busy = self._tick_stops(b, now)  # first: a stopped service task needs replacing
            for svc in list(b.services.values()):
                busy = self._tick_service(b, svc, index, now) or busy
            return self._tick_oneoffs(b, now) or busy
        finally:
            self._tick_index = None

    # -- backend and wrappers --------------------------------------------------------------

    def _backend(self) -> _Backend:
        """The ECS backend, with our wrappers (re)installed after a moto reset."""
        b = get_backend("ecs")[self.account_id][self.region]
        if b.__dict__.get(_MARKER) is not self:
            self._install(b)
        return b

    def _install(self, b: _Backend) -> None:
        cls = type(b)

        def update_service(*args: Any, **kwargs: Any) -> Any:
            return self._update_service(b, cls.update_service, *args, **kwargs)

        def create_service(*args: Any, **kwargs: Any) -> Any:
            return self._create_service(b, cls.create_service, *args, **kwargs)

        def run_task(*args: Any, **kwargs: Any) -> Any:
            return self._run_task(b, cls.run_task, *args, **kwargs)

        def stop_task(cluster_str: str, task_str: str, reason: str | None = None) -> Any:
            return self._stop_task(b, cls.stop_task, cluster_str, task_str, reason)

        b.update_service = update_service
        b.create_service = create_service
        b.run_task = run_task
        b.stop_task = stop_task
        setattr(b, _MARKER, self)
        self._installed_on = b
        self._services.clear()

    def _update_service(self, b: _Backend, original: Callable[..., Any], properties: dict[str, Any]) -> Any:
        """Real ECS creates the new PRIMARY deployment (and for a service with a deployment
        strategy, its service deployment) before UpdateService returns."""
        cluster = properties.get("cluster") or "default"
        name = str(properties.get("service") or "").rsplit("/", 1)[-1]
        requested = properties.get("task_definition")
        force = bool(properties.get("force_new_deployment"))
        refused = hook_error(properties.get("deployment_configuration"))
        if refused is not None:
            raise InvalidParameterException(refused)
        with self._lock:
            try:
                svc = b._get_service(cluster, name)
            except Exception:
                return original(b, properties)
            before = [dict(d) for d in svc.deployments]
            result = original(b, properties)
            if not before:
                return result
            primary = before[0]
            arn = b.describe_task_definition(requested).arn if requested else None
            now = _now()
            if (arn and arn != primary["taskDefinition"]) or force:
                state = self._state(svc)
                rollback = state.last_completed or (primary["id"], primary["taskDefinition"])
                deployment = self._new_deployment(svc, primary, arn or primary["taskDefinition"])
                self._deployments[deployment["id"]] = _DeploymentMeta(*rollback)
                old = {**primary, "status": "ACTIVE", "updatedAt": now}
                svc.deployments = [deployment, old, *before[1:]]
                self._deployment_event(svc, deployment, "SERVICE_DEPLOYMENT_IN_PROGRESS")
                state.steady = False
                state.last_action = time.monotonic()
                if uses_strategy(getattr(svc, "deployment_configuration", None)):
                    self._begin_service_deployment(b, svc, deployment, before)
            else:
                svc.deployments = [
                    {**primary, "desiredCount": svc.desired_count, "updatedAt": now},
                    *before[1:],
                ]
                if svc.desired_count != primary["desiredCount"]:
                    self._state(svc).steady = False
            svc.task_definition = svc.deployments[0]["taskDefinition"]
            self._sync_counts(b, svc)
            return result

    def _create_service(self, b: _Backend, original: Callable[..., Any], *a: Any, **k: Any) -> Any:
        """Give the first deployment a real-looking id; the ticker rolls it out from zero."""
        with self._lock:
            shadow, svc = _Shadow.build(b, original, *a, **k)
            svc._backend = b
            b.services = shadow.services
            if svc.deployments:
                first = svc.deployments[0]
                dep_id = self._deployment_id()
                svc.deployments = [
                    {
                        **first,
                        "id": dep_id,
                        "rolloutState": "IN_PROGRESS",
                        "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
                    }
                ]
                self._deployments[dep_id] = _DeploymentMeta(None, None)
                self._deployment_event(svc, svc.deployments[0], "SERVICE_DEPLOYMENT_IN_PROGRESS")
            state = _ServiceState(last_action=time.monotonic())
            self._services[f"{svc.cluster_name}:{svc.name}"] = state
            self._sync_counts(b, svc)
            return svc

    def _run_task(self, b: _Backend, original: Callable[..., Any], *a: Any, **k: Any) -> Any:
        """Let moto build the tasks privately, publish them atomically, then adopt them."""
        with self._lock:
            shadow, tasks = _Shadow.build(b, original, *a, **k)
            for task in tasks:
                task._backend = b
            for cluster, new in shadow.tasks.items():
                if new:
                    merged = {**b.tasks.get(cluster, {}), **new}
                    b.tasks = {**b.tasks, cluster: merged}
            for task in tasks:
                self._adopt_oneoff(b, task)
            return tasks

    def _stop_task(
        self,
        b: _Backend,
        original: Callable[..., Any],
        cluster_str: str,
        task_str: str,
        reason: str | None,
    ) -> Any:
        """Like ECS: desiredStatus STOPPED now, lastStatus STOPPED a moment later."""
        with self._lock:
            task = self._find_task(b, cluster_str, task_str)
            if task is None or task.desired_status == "STOPPED":
                return task if task is not None else original(b, cluster_str, task_str, reason)
            # Not moto's stop_task: it flips lastStatus to STOPPED at once.
            task.desired_status = "STOPPED"
            task.stop_code = "UserInitiated"
            task.stopped_reason = reason or "Task stopped by user"
            task.stopping_at = _now()
            due = time.monotonic() + min(0.3, 0.2 * self.task_seconds)
            self._stops[task.task_arn] = (task.cluster_name, due)
            self._task_event(task)
            return task

    # -- services --------------------------------------------------------------------------

    def _state(self, svc: _Service) -> _ServiceState:
        key = _key(svc)
        state = self._services.get(key)
        if state is None:
            state = self._services[key] = _ServiceState(last_action=time.monotonic())
        return state

    def _interval(self, svc: _Service) -> float:
        return self.rollout_seconds / (3 * max(int(svc.desired_count), 1) + 1)

    def _tick_service(self, b: _Backend, svc: _Service, index: _Index, now: float) -> bool:
        if svc.status != "ACTIVE":
            return self._drain_deleted(b, svc, index)
        if not svc.deployments:
            return False
        ongoing = self._ongoing(svc)
        if ongoing is not None:
            scheduling, busy = self._drive(b, svc, ongoing, now)
            self._sync_counts(b, svc)
            if not scheduling:
                return busy
        state = self._state(svc)
        interval = self._interval(svc)
        acted = False
        for _ in range(1000):
            if now - state.last_action < interval:
                return acted or self._working(svc, state)
            if not self._step(b, svc, state, index):
                state.last_action = now
                return acted or self._working(svc, state)
            acted = True
            state.last_action = max(state.last_action + interval, now - interval)
            self._sync_counts(b, svc)
        return True

    def _working(self, svc: _Service, state: _ServiceState) -> bool:
        primary = svc.deployments[0]
        return not state.steady and primary.get("rolloutState") != "FAILED"

    def _step(self, b: _Backend, svc: _Service, state: _ServiceState, index: _Index) -> bool:
        """One scheduler action, in real ECS order: launch, start, scale in, drain, settle."""
        primary = svc.deployments[0]
        if primary["status"] != "PRIMARY" or primary.get("rolloutState") == "FAILED":
            return False
        mine = index.tasks(svc.cluster_name, primary["id"])
        pending = [t for t in mine if t.last_status != "RUNNING"]
        running = [t for t in mine if t.last_status == "RUNNING"]
        desired = int(svc.desired_count)
        state.steady = state.steady and len(running) == desired and len(svc.deployments) == 1
        if len(mine) < desired:
            task = self._new_service_task(b, svc, primary, running=False)
            self._event(svc, f"has started 1 tasks: (task {_task_id(task)}).")
            state.steady = False
            return True
        if pending:
            task = pending[0]
            if self._cannot_start(b, task):
                self._fail_service_task(b, svc, primary, task)
            else:
                self._start_containers(task)
            return True
        if len(running) > desired:
            task = running[-1]
            self._stop_service_task(task, f"Scaling activity initiated by (deployment {primary['id']})")
            self._event(svc, f"has stopped 1 running tasks: (task {_task_id(task)}).")
            state.steady = False
            return True
        for old in svc.deployments[1:]:
            old_tasks = index.tasks(svc.cluster_name, old["id"])
            if old_tasks:
                task = old_tasks[0]
                reason = f"Scaling activity initiated by (deployment {primary['id']})"
                self._stop_service_task(task, reason)
                self._event(svc, f"has stopped 1 running tasks: (task {_task_id(task)}).")
                return True
        if state.steady:
            return False
        self._complete(svc, state, primary)
        return True

    def _complete(self, svc: _Service, state: _ServiceState, primary: _Deployment) -> None:
        now = _now()
        if primary.get("rolloutState") == "IN_PROGRESS":
            primary = {
                **primary,
                "rolloutState": "COMPLETED",
                "rolloutStateReason": f"ECS deployment {primary['id']} completed.",
                "updatedAt": now,
            }
            self._event(svc, f"(deployment {primary['id']}) deployment completed.")
            self._completed[(svc.cluster_name, svc.name, primary["id"])] = time.monotonic()
            state.last_completed = (primary["id"], primary["taskDefinition"])
            self._deployment_event(svc, primary, "SERVICE_DEPLOYMENT_COMPLETED")
        svc.deployments = [primary]
        self._event(svc, "has reached a steady state.")
        self._service_action(svc, "SERVICE_STEADY_STATE")
        state.steady = True
        self._scheduler_done(svc)

    def _fail_service_task(self, b: _Backend, svc: _Service, primary: _Deployment, task: _Task) -> None:
        """A task that cannot start: count it, and let the circuit breaker judge."""
        self._stop_failed(task)
        self._event(svc, f"has stopped 1 running tasks: (task {_task_id(task)}).")
        failed = int(primary.get("failedTasks") or 0) + 1
        primary = {**primary, "failedTasks": failed, "updatedAt": _now()}
        svc.deployments = [primary, *svc.deployments[1:]]
        config = getattr(svc, "deployment_configuration", None) or {}
        breaker = config.get("deploymentCircuitBreaker") or {}
        if not breaker.get("enable") or failed < _breaker_threshold(svc):
            return
        failed_dep = {
            **primary,
            "rolloutState": "FAILED",
            "rolloutStateReason": _BREAKER_REASON,
            "updatedAt": _now(),
        }
        self._event(svc, f"(deployment {primary['id']}) deployment failed: tasks failed to start.")
        self._deployment_event(svc, failed_dep, "SERVICE_DEPLOYMENT_FAILED")
        for leftover in self._live_tasks(b, svc, primary["id"]):
            if leftover.last_status != "RUNNING":
                self._stop_service_task(leftover, "Deployment failed: circuit breaker")
        meta = self._deployments.get(primary["id"])
        if not breaker.get("rollback") or meta is None or meta.rollback_task_definition is None:
            svc.deployments = [failed_dep, *svc.deployments[1:]]
            return
        self._event(svc, f"rolling back to deployment {meta.rollback_id}.")
        rollback = self._new_deployment(svc, failed_dep, meta.rollback_task_definition)
        self._deployments[rollback["id"]] = _DeploymentMeta(None, None)
        svc.deployments = [rollback, {**failed_dep, "status": "ACTIVE"}, *svc.deployments[1:]]
        svc.task_definition = meta.rollback_task_definition
        reason = f"ECS deployment circuit breaker: rolling back to deploymentId {meta.rollback_id}."
        self._deployment_event(svc, rollback, "SERVICE_DEPLOYMENT_IN_PROGRESS", reason)

    def _drain_deleted(self, b: _Backend, svc: _Service, index: _Index) -> bool:
        """A deleted (INACTIVE) service's tasks are stopped by the scheduler."""
        tasks = [t for d in svc.deployments for t in index.tasks(svc.cluster_name, d["id"])]
        for task in tasks:
            self._stop_service_task(task, "Service deleted")
        if tasks:
            self._sync_counts(b, svc)
        return False

    def _deployment_id(self) -> str:
        return f"ecs-svc/{self._rng.randrange(10**18, 10**19)}"

    def _new_deployment(self, svc: _Service, template: _Deployment, task_definition: str) -> _Deployment:
        now = _now()
        dep_id = self._deployment_id()
        return {
            **template,
            "id": dep_id,
            "status": "PRIMARY",
            "taskDefinition": task_definition,
            "desiredCount": svc.desired_count,
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
            "createdAt": now,
            "updatedAt": now,
        }

    def _event(self, svc: _Service, text: str) -> None:
        event = {
            "id": str(uuid.uuid4()),
            "createdAt": _now(),
            "message": f"(service {svc.name}) {text}",
        }
        svc.events = [event, *svc.events][:_EVENTS_KEPT]

    # -- service deployments (blue/green, linear, canary) ----------------------------------

    def _forget_service_deployments(self) -> None:
        self._service_deployments.clear()
        self._latest.clear()
        self._revisions.clear()

    def _seconds(self, minutes: float) -> float:
        return minutes * self.minute_seconds

    def _dwell(self, step: Step) -> float:
        """How long a stage lasts once entered (and once no pause holds it)."""
        return self._seconds((STAGE_MINUTES if step.moment else 0.0) + step.bake_minutes)

    def _ongoing(self, svc: _Service) -> ServiceDeployment | None:
        deployment = self._latest.get(_key(svc))
        return deployment if deployment is not None and deployment.ongoing else None

    def _known(self, arn: str) -> tuple[ServiceDeployment, _Service]:
        deployment = self._service_deployments.get(arn)
        svc = self._backend().services.get(deployment.key) if deployment is not None else None
        if deployment is None or svc is None:
            raise ServiceDeploymentError(
                "ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist."
            )
        return deployment, svc

    def _random_id(self, length: int) -> str:
        return "".join(self._rng.choice(_ID_LETTERS) for _ in range(length))

    def _revision(self, svc: _Service, deployment: _Deployment) -> ServiceRevision:
        """The service revision of an ECS deployment; its id is the deployment id's number."""
        number = str(deployment["id"]).rsplit("/", 1)[-1]
        arn = self._ecs_arn("service-revision", svc.cluster_name, svc.name, number)
        revision = self._revisions.get(arn)
        if revision is None:
            created = deployment.get("createdAt")
            revision = self._revisions[arn] = ServiceRevision(
                arn=arn,
                service_arn=str(svc.arn),
                cluster_arn=self._cluster_arn(svc.cluster_name),
                task_definition=str(deployment["taskDefinition"]),
                launch_type=deployment.get("launchType") or svc.launch_type,
                platform_version=deployment.get("platformVersion"),
                network_configuration=deployment.get("networkConfiguration") or svc.network_configuration,
                created_at=created if isinstance(created, datetime) and created.tzinfo else _now(),
            )
        return revision

    def _begin_service_deployment(
        self, b: _Backend, svc: _Service, deployment: _Deployment, before: list[_Deployment]
    ) -> None:
        """UpdateService of a service with a strategy: a service deployment takes the new ECS
        deployment through the lifecycle stages, and the scheduler waits until CLEAN_UP.

        One still going is stopped, and its revisions become the new one's sources."""
        key, now = _key(svc), _now()
        previous = self._latest.get(key)
        live = {d["id"] for d in before}
        production = {s.deployment_id: s.production_weight for s in previous.shares} if previous else {}
        test = {s.deployment_id: s.test_weight for s in previous.shares} if previous else {}
        if not any(production.get(i) for i in live):  # no record of the traffic: the PRIMARY had it all
            production = test = {before[0]["id"]: 100.0}
        sources = [
            Shares(
                revision=self._revision(svc, dep),
                deployment_id=dep["id"],
                requested=len(self._live_tasks(b, svc, dep["id"])),
                test_weight=test.get(dep["id"], 0.0),
                production_weight=production.get(dep["id"], 0.0),
                served=production.get(dep["id"], 0.0),
            )
            for dep in before
            if dep is before[0] or production.get(dep["id"]) or self._live_tasks(b, svc, dep["id"])
        ]
        configuration = json.loads(json.dumps(svc.deployment_configuration))
        breaker = configuration.get("deploymentCircuitBreaker") or {}
        cluster = svc.cluster_name
        record = ServiceDeployment(
            arn=self._ecs_arn("service-deployment", cluster, svc.name, self._random_id(22)),
            service_arn=str(svc.arn),
            cluster_arn=self._cluster_arn(cluster),
            key=key,
            configuration=configuration,
            sources=sources,
            target=Shares(self._revision(svc, deployment), deployment["id"]),
            steps=plan(configuration, reconcile=len(sources) > 1),
            created_at=now,
            updated_at=now,
            threshold=_breaker_threshold(svc),
            breaker=bool(breaker.get("enable")),
            due=time.monotonic() + self._seconds(STAGE_MINUTES),
        )
        if previous is not None and previous.ongoing:
            self._halt(svc, previous, f"Service deployment {record.arn} replaced it.", fail_target=False)
        self._service_deployments[record.arn] = record
        self._latest[key] = record
        svc.current_service_deployment = record.arn

    def _drive(
        self, b: _Backend, svc: _Service, deployment: ServiceDeployment, now: float
    ) -> tuple[bool, bool]:
        """Move a service deployment on: (whether the scheduler may act on the service, busy).

        The scheduler drains the old revision at CLEAN_UP and the new one in a rollback; a
        pause awaiting a person is not busy, as a hanging task is not."""
        for _ in range(2 * len(deployment.steps) + 4):
            status = deployment.status
            waiting = deployment.due is not None and now < deployment.due
            if status == "PENDING":
                if waiting:
                    return False, True
                deployment.status, deployment.started_at = "IN_PROGRESS", _now()
                self._enter_step(svc, deployment, 0, now)
            elif status == "STOP_REQUESTED":
                if not waiting:
                    self._halt(svc, deployment, deployment.status_reason, fail_target=True)
                return False, deployment.ongoing
            elif status == "ROLLBACK_REQUESTED":
                if waiting:
                    return False, True
                self._roll_back(b, svc, deployment)
                return True, True
            elif status == "ROLLBACK_IN_PROGRESS":
                return True, True
            elif status != "IN_PROGRESS":
                return False, False
            elif deployment.awaiting:
                self._time_out_hooks(svc, deployment, now)
                if deployment.awaiting:
                    return False, False
            else:
                step = deployment.current
                if step is None:
                    return False, False
                if step.stage == "SCALE_UP" and not self._scaled_up(b, svc, deployment, now):
                    return False, True
                if deployment.due is not None and now < deployment.due:
                    return False, True
                if step.stage == "CLEAN_UP":
                    return True, True  # the scheduler stops the old tasks; _complete then ends it
                self._enter_step(svc, deployment, deployment.step + 1, now)
        return False, True

    def _enter_step(self, svc: _Service, deployment: ServiceDeployment, index: int, now: float) -> None:
        """Show the next stage, do what it does, and run the hooks configured there."""
        step = deployment.enter(index, _now())
        if step.stage == "SCALE_UP":
            deployment.target.requested = int(svc.desired_count)
        elif step.stage == "TEST_TRAFFIC_SHIFT":
            deployment.shift_test_traffic()
        elif step.stage == "PRODUCTION_TRAFFIC_SHIFT" and step.production_weight is not None:
            deployment.shift_production_traffic(step.production_weight)
        deployment.due = now + self._dwell(step)
        for configured in deployment.configuration.get("lifecycleHooks") or []:
            if step.stage in (configured.get("lifecycleStages") or []):
                self._run_hook(deployment, configured, step.stage, now)
        if deployment.awaiting:
            deployment.due = None

    def _run_hook(
        self, deployment: ServiceDeployment, configured: dict[str, Any], stage: str, now: float
    ) -> None:
        """A PAUSE waits for ContinueServiceDeployment or its timeout; a Lambda hook succeeds at
        once (no Lambda runs in the sandbox)."""
        target_type = str(configured.get("targetType") or "AWS_LAMBDA")
        if target_type != "PAUSE":
            hook_id = f"ecs-hook-{self._random_id(43)}"
            target = configured.get("hookTargetArn")
            deployment.hooks.append(Hook(hook_id, target_type, stage, "SUCCEEDED", target_arn=target))
            return
        timeout = configured.get("timeoutConfiguration") or {}
        seconds = self._seconds(float(timeout.get("timeoutInMinutes") or TIMEOUT_MINUTES))
        hook = Hook(
            hook_id=f"ecs-pause-{self._random_id(43)}",
            target_type=target_type,
            stage=stage,
            status="AWAITING_ACTION",
            timeout_action=str(timeout.get("action") or TIMEOUT_ACTION),
            expires_at=_now() + timedelta(seconds=seconds),
            deadline=now + seconds,
        )
        deployment.hooks.append(hook)
        self._hook_event(deployment, hook, "HOOK_AWAITING_ACTION")

    def _end_hook(self, deployment: ServiceDeployment, hook: Hook, status: str) -> None:
        hook.status = status
        deployment.updated_at = _now()
        self._hook_event(deployment, hook, f"HOOK_{status}")

    def _time_out_hooks(self, svc: _Service, deployment: ServiceDeployment, now: float) -> None:
        """At expiresAt a pause is TIMED_OUT and its timeoutAction applies."""
        for hook in deployment.awaiting:
            if hook.deadline is None or now < hook.deadline:
                continue
            self._end_hook(deployment, hook, "TIMED_OUT")
            if hook.timeout_action != "CONTINUE":
                self._request_rollback(svc, deployment, f"The lifecycle hook {hook.hook_id} timed out.")
                return
        step = deployment.current
        if not deployment.awaiting and step is not None and deployment.due is None:
            deployment.due = now + self._dwell(step)

    def _scaled_up(self, b: _Backend, svc: _Service, deployment: ServiceDeployment, now: float) -> bool:
        """SCALE_UP, one action per stage moment: start (or fail) the new revision's pending
        tasks, then launch the missing ones. True once all of them run."""
        target = self._ecs_deployment(svc, deployment.target.deployment_id)
        if target is None:
            return True
        tasks = self._live_tasks(b, svc, target["id"])
        if len(tasks) >= int(svc.desired_count) and all(t.last_status == "RUNNING" for t in tasks):
            return True
        if deployment.due is not None and now < deployment.due:
            return False
        deployment.due = now + self._seconds(STAGE_MINUTES)
        for task in tasks:
            if task.last_status == "RUNNING":
                continue
            if self._cannot_start(b, task):
                self._fail_target_task(b, svc, deployment, task)
                if deployment.status != "IN_PROGRESS":
                    return False
            else:
                self._start_containers(task)
        missing = int(svc.desired_count) - len(self._live_tasks(b, svc, target["id"]))
        started = [self._new_service_task(b, svc, target, running=False) for _ in range(missing)]
        if started:
            ids = " ".join(f"(task {_task_id(t)})" for t in started)
            self._event(svc, f"has started {len(started)} tasks: {ids}.")
        return False

    def _fail_target_task(
        self, b: _Backend, svc: _Service, deployment: ServiceDeployment, task: _Task
    ) -> None:
        """A new task that cannot start; at the threshold the circuit breaker ends the deployment."""
        self._stop_failed(task)
        self._event(svc, f"has stopped 1 running tasks: (task {_task_id(task)}).")
        deployment.failures += 1
        target = self._ecs_deployment(svc, deployment.target.deployment_id)
        if target is None:
            return
        target = {**target, "failedTasks": int(target.get("failedTasks") or 0) + 1, "updatedAt": _now()}
        self._replace_ecs_deployment(svc, target)
        if not deployment.breaker or deployment.failures < deployment.threshold:
            return
        failed = {**target, "rolloutState": "FAILED", "rolloutStateReason": _BREAKER_REASON}
        self._replace_ecs_deployment(svc, failed)
        self._event(svc, f"(deployment {target['id']}) deployment failed: tasks failed to start.")
        self._deployment_event(svc, failed, "SERVICE_DEPLOYMENT_FAILED")
        for leftover in self._live_tasks(b, svc, target["id"]):
            self._stop_service_task(leftover, "Deployment failed: circuit breaker")
        if (deployment.configuration.get("deploymentCircuitBreaker") or {}).get("rollback"):
            self._request_rollback(svc, deployment, _BREAKER_REASON)
        else:
            self._halt(svc, deployment, _BREAKER_REASON, fail_target=False)

    def _request_rollback(self, svc: _Service, deployment: ServiceDeployment, reason: str) -> None:
        for hook in deployment.awaiting:
            self._end_hook(deployment, hook, "FAILED")
        deployment.request_rollback(reason, _now())
        deployment.due = time.monotonic() + self._seconds(STAGE_MINUTES)

    def _roll_back(self, b: _Backend, svc: _Service, deployment: ServiceDeployment) -> None:
        """ROLLBACK_IN_PROGRESS: traffic back on the revision that served production, which is
        PRIMARY again; the scheduler stops the others' tasks, and _complete ends the rollback."""
        back = deployment.rollback_to
        deployment.return_traffic()
        for share in deployment.shares:
            share.requested = int(svc.desired_count) if share is back else 0
        stamp = _now()
        source = self._ecs_deployment(svc, back.deployment_id)
        if source is None:  # its ECS deployment is gone: start one on its task definition
            source = self._new_deployment(svc, svc.deployments[0], back.revision.task_definition)
            back.deployment_id = source["id"]
        reason = f"Service deployment rollback to deploymentId {source['id']}: {deployment.status_reason}"
        revived = {
            **source,
            "status": "PRIMARY",
            "desiredCount": svc.desired_count,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {source['id']} in progress.",
            "updatedAt": stamp,
        }
        others = []
        for dep in svc.deployments:
            if dep["id"] == source["id"]:
                continue
            if dep["id"] == deployment.target.deployment_id and dep.get("rolloutState") != "FAILED":
                dep = {**dep, "rolloutState": "FAILED", "rolloutStateReason": reason, "updatedAt": stamp}
                self._deployment_event(svc, dep, "SERVICE_DEPLOYMENT_FAILED")
            others.append({**dep, "status": "ACTIVE"})
        svc.deployments = [revived, *others]
        svc.task_definition = revived["taskDefinition"]
        self._event(svc, f"rolling back to deployment {source['id']}.")
        self._deployment_event(svc, revived, "SERVICE_DEPLOYMENT_IN_PROGRESS", reason)
        self._state(svc).steady = False
        deployment.status, deployment.updated_at = "ROLLBACK_IN_PROGRESS", stamp

    def _halt(
        self, svc: _Service, deployment: ServiceDeployment, reason: str | None, *, fail_target: bool
    ) -> None:
        """STOPPED where it stands: traffic and tasks stay as they are (docs/architecture.md)."""
        for hook in deployment.awaiting:
            self._end_hook(deployment, hook, "FAILED")
        target = self._ecs_deployment(svc, deployment.target.deployment_id)
        if fail_target and target is not None and target.get("rolloutState") != "FAILED":
            failed = {**target, "rolloutState": "FAILED", "rolloutStateReason": reason, "updatedAt": _now()}
            self._replace_ecs_deployment(svc, failed)
            self._event(svc, f"(deployment {target['id']}) deployment failed: {reason}")
            self._deployment_event(svc, failed, "SERVICE_DEPLOYMENT_FAILED")
        self._count_shares(self._backend(), deployment)
        deployment.end("STOPPED", _now(), reason)

    def _scheduler_done(self, svc: _Service) -> None:
        """The scheduler finished what a service deployment handed it: CLEAN_UP, or a rollback."""
        deployment = self._ongoing(svc)
        if deployment is None:
            return
        step = deployment.current
        if deployment.status == "ROLLBACK_IN_PROGRESS":
            status = "ROLLBACK_SUCCESSFUL"
        elif deployment.status == "IN_PROGRESS" and step is not None and step.stage == "CLEAN_UP":
            status = "SUCCESSFUL"
            for source in deployment.sources:
                source.requested = 0
        else:
            return
        self._count_shares(self._backend(), deployment)
        deployment.end(status, _now())

    def _ecs_deployment(self, svc: _Service, deployment_id: str) -> _Deployment | None:
        return next((d for d in svc.deployments if d["id"] == deployment_id), None)

    def _replace_ecs_deployment(self, svc: _Service, deployment: _Deployment) -> None:
        svc.deployments = [deployment if d["id"] == deployment["id"] else d for d in svc.deployments]

    def _count_shares(self, b: _Backend, deployment: ServiceDeployment) -> None:
        """An ongoing deployment's task counts follow the ECS deployments' (ended ones keep theirs)."""
        svc = b.services.get(deployment.key)
        if not deployment.ongoing or svc is None:
            return
        counts = {d["id"]: d for d in svc.deployments}
        for share in deployment.shares:
            dep = counts.get(share.deployment_id) or {}
            share.running = int(dep.get("runningCount") or 0)
            share.pending = int(dep.get("pendingCount") or 0)

    def _current_revisions(self, svc: _Service) -> None:
        """DescribeServices' currentServiceRevisions, for a service deployed by service deployments."""
        latest = self._latest.get(_key(svc))
        if latest is None:
            return
        counts = {d["id"]: d for d in svc.deployments}
        svc.current_service_revisions = [
            {
                "arn": share.revision.arn,
                "requestedTaskCount": share.requested,
                "runningTaskCount": int(counts[share.deployment_id].get("runningCount") or 0),
                "pendingTaskCount": int(counts[share.deployment_id].get("pendingCount") or 0),
            }
            for share in latest.shares
            if share.deployment_id in counts
        ]

    def _hook_event(self, deployment: ServiceDeployment, hook: Hook, name: str) -> None:
        """``ECS Hook State Change``; its detail's names are ours where AWS documents none."""
        detail = {
            "eventType": "INFO" if hook.status in ("AWAITING_ACTION", "SUCCEEDED") else "WARN",
            "eventName": name,
            "clusterArn": deployment.cluster_arn,
            "serviceArn": deployment.service_arn,
            "serviceDeploymentArn": deployment.arn,
            "hookId": hook.hook_id,
            "targetType": hook.target_type,
            "lifecycleStage": hook.stage,
            "status": hook.status,
            "timeoutAction": hook.timeout_action,
            "expiresAt": _iso(hook.expires_at),
            "updatedAt": _iso(_now()),
        }
        self._emit("ECS Hook State Change", deployment.service_arn, {k: v for k, v in detail.items() if v})

    # -- ECS events (EventBridge) ----------------------------------------------------------

    def _emit(self, kind: str, resource: str, detail: dict[str, Any]) -> None:
        """Queue one event as ECS would send it, if publishing (sent after the tick)."""
        if self._sink is None:
            return
        self._outbox.append(
            {
                "Source": "aws.ecs",
                "DetailType": kind,
                "Resources": [resource],
                "Detail": json.dumps(detail),
                "Time": _now(),
            }
        )
        self._published.append(PublishedEvent(time.monotonic(), kind, (resource,), detail))
        if len(self._published) > 2 * _PUBLISHED_KEPT:
            self._published = self._published[-_PUBLISHED_KEPT:]

    def _deployment_event(
        self, svc: _Service, deployment: _Deployment, name: str, reason: str | None = None
    ) -> None:
        detail = {
            "eventType": "ERROR" if name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
            "eventName": name,
            "deploymentId": deployment["id"],
            "updatedAt": _iso(_now()),
            "reason": reason or deployment.get("rolloutStateReason") or "",
        }
        self._emit("ECS Deployment State Change", str(svc.arn), detail)

    def _service_action(self, svc: _Service, name: str) -> None:
        detail = {
            "eventType": "INFO",
            "eventName": name,
            "clusterArn": self._cluster_arn(svc.cluster_name),
            "createdAt": _iso(_now()),
        }
        self._emit("ECS Service Action", str(svc.arn), detail)

    def _task_event(self, task: _Task) -> None:
        """The task as DescribeTasks would show it, the way ECS puts it in a task event."""
        if self._sink is None:
            return
        containers = [
            {
                "name": c.name,
                "image": c.image,
                "lastStatus": c.last_status,
                "exitCode": c.exitCode,
                "taskArn": task.task_arn,
            }
            for c in task.containers
        ]
        detail = {
            "clusterArn": self._cluster_arn(task.cluster_name),
            "taskArn": task.task_arn,
            "taskDefinitionArn": task.task_definition_arn,
            "group": task.group,
            "startedBy": task.started_by,
            "launchType": task.launch_type,
            "lastStatus": task.last_status,
            "desiredStatus": task.desired_status,
            "stopCode": getattr(task, "stop_code", None),
            "stoppedReason": task.stopped_reason,
            "containers": [{k: v for k, v in c.items() if v is not None} for c in containers],
            "createdAt": _iso(task.created_at),
            "startedAt": _iso(getattr(task, "started_at", None)),
            "stoppedAt": _iso(getattr(task, "stopped_at", None)),
            "updatedAt": _iso(_now()),
        }
        self._emit(
            "ECS Task State Change", str(task.task_arn), {k: v for k, v in detail.items() if v is not None}
        )

    def _cluster_arn(self, cluster: str) -> str:
        return self._ecs_arn("cluster", cluster)

    def _ecs_arn(self, kind: str, *path: str) -> str:
        return f"arn:aws:ecs:{self.region}:{self.account_id}:{kind}/{'/'.join(path)}"

    def _sync_counts(self, b: _Backend, svc: _Service) -> None:
        """Deployment and service counts follow the task objects, as in ECS."""
        total_running = total_pending = 0
        deployments = []
        for dep in svc.deployments:
            tasks = self._live_tasks(b, svc, dep["id"])
            running = sum(1 for t in tasks if t.last_status == "RUNNING")
            pending = len(tasks) - running
            total_running += running
            total_pending += pending
            if dep.get("runningCount") != running or dep.get("pendingCount") != pending:
                dep = {**dep, "runningCount": running, "pendingCount": pending, "updatedAt": _now()}
            deployments.append(dep)
        svc.deployments = deployments
        svc.running_count = total_running
        svc.pending_count = total_pending
        self._current_revisions(svc)

    # -- tasks -----------------------------------------------------------------------------

    def _index(self, b: _Backend, now: float) -> _Index:
        """Group live service tasks by deployment; drop tasks stopped over an hour ago."""
        index = _Index()
        for cluster, tasks in list(b.tasks.items()):
            expired = []
            for arn, task in list(tasks.items()):
                if task.last_status == "STOPPED":
                    stopped = getattr(task, "_tugboat_stopped", None)
                    if stopped is not None and now - stopped > _STOPPED_TASK_TTL:
                        expired.append(arn)
                    continue
                if str(task.group).startswith("service:"):
                    index.add(cluster, task)
            if expired:
                gone = set(expired)
                kept = {arn: t for arn, t in tasks.items() if arn not in gone}
                b.tasks = {**b.tasks, cluster: kept}
        return index

    def _live_tasks(self, b: _Backend, svc: _Service, deployment_id: str) -> list[_Task]:
        if self._tick_index is not None:
            return self._tick_index.tasks(svc.cluster_name, deployment_id)
        return [
            t
            for t in b.tasks.get(svc.cluster_name, {}).values()
            if t.started_by == deployment_id
            and t.last_status != "STOPPED"
            and str(t.group).startswith("service:")
        ]

    def _find_task(self, b: _Backend, cluster_str: str, task_str: str) -> _Task | None:
        cluster = cluster_str.rsplit("/", 1)[-1]
        task_id = task_str.rsplit("/", 1)[-1]
        for arn, task in b.tasks.get(cluster, {}).items():
            if arn.endswith(task_id):
                return task
        return None

    def _publish(self, b: _Backend, task: _Task) -> None:
        cluster = task.cluster_name
        if self._tick_index is not None and str(task.group).startswith("service:"):
            self._tick_index.add(cluster, task)
        b.tasks = {**b.tasks, cluster: {**b.tasks.get(cluster, {}), task.task_arn: task}}

    def _new_service_task(
        self, b: _Backend, svc: _Service, deployment: _Deployment, *, running: bool
    ) -> _Task:
        task_definition = b.describe_task_definition(deployment["taskDefinition"])
        task = _new_task(
            cluster=b._get_cluster(svc.cluster_name),
            task_definition=task_definition,
            container_instance_arn=None,
            resource_requirements=None,
            backend=b,
            group=f"service:{svc.name}",
            launch_type=svc.launch_type or "FARGATE",
            started_by=deployment["id"],
            networking_configuration=svc.network_configuration or None,
            platform_version=svc.platform_version,
        )
        self._dress(task, task_definition, "PROVISIONING")
        task.last_status = "PENDING"
        if running:
            self._start_containers(task)
        else:
            self._task_event(task)
        self._publish(b, task)
        return task

    def _dress(self, task: _Task, task_definition: Any, status: str) -> None:
        """Give moto's task every container (moto keeps only the first) and ECS timestamps."""
        containers = []
        for definition in task_definition.container_definitions:
            container = _new_container(task_definition)
            container.task_arn = task.task_arn
            container.name = definition.get("name")
            container.image = definition.get("image")
            container.cpu = str(definition.get("cpu", 0))
            memory = definition.get("memory")
            container.memory = str(memory) if memory is not None else None
            container.environment = definition.get("environment")
            container.command = definition.get("command")
            container.last_status = "PENDING"
            container.exitCode = None
            container.essential = bool(definition.get("essential", True))
            containers.append(container)
        interfaces = [
            {"attachmentId": attachment["id"], "privateIpv4Address": detail["value"]}
            for attachment in task.attachments
            for detail in attachment.get("details", [])
            if detail.get("name") == "privateIPv4Address"
        ]
        for container in containers:
            container.network_interfaces = interfaces
        task.containers = containers
        task.last_status = status
        task.desired_status = "RUNNING"
        task.stopped_reason = None
        task.created_at = _now()
        task.cpu = task_definition.cpu
        task.memory = task_definition.memory
        task.availability_zone = f"{self.region}a"
        task.connectivity = "CONNECTED"

    def _start_containers(self, task: _Task) -> None:
        now = _now()
        task.pull_started_at = getattr(task, "pull_started_at", None) or now
        task.pull_stopped_at = now
        task.started_at = now
        task.connectivity_at = now
        task.last_status = "RUNNING"
        for container in task.containers:
            container.last_status = "RUNNING"
        self._task_event(task)

    def _finish(self, task: _Task, stop_code: str, reason: str, exit_codes: dict[str, int | None]) -> None:
        now = _now()
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = exit_codes.get(container.name, 0)
        task.stop_code = stop_code
        task.stopped_reason = reason
        task.stopping_at = getattr(task, "stopping_at", None) or now
        task.execution_stopped_at = now
        task.stopped_at = now
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"
        task._tugboat_stopped = time.monotonic()
        self._release_enis(task)
        self._task_event(task)

    def _release_enis(self, task: _Task) -> None:
        """Fargate deletes a task's ENI when it stops; without this they pile up forever."""
        eni_ids = {
            detail["value"]
            for attachment in task.attachments
            for detail in attachment.get("details", [])
            if detail.get("name") == "networkInterfaceId"
        }
        if not eni_ids:
            return
        task.attachments = [{**a, "status": "DELETED"} for a in task.attachments]
        ec2 = get_backend("ec2")[self.account_id][self.region]
        ec2.enis = {k: v for k, v in ec2.enis.items() if k not in eni_ids}

    def _stop_service_task(self, task: _Task, reason: str) -> None:
        ran = task.last_status == "RUNNING"
        codes: dict[str, int | None] = {c.name: (0 if ran else None) for c in task.containers}
        self._finish(task, "ServiceSchedulerInitiated", reason, codes)

    def _stop_failed(self, task: _Task) -> None:
        task.pull_started_at = getattr(task, "pull_started_at", None) or _now()
        task.pull_stopped_at = _now()
        task.started_at = _now()
        codes: dict[str, int | None] = {}
        for container in task.containers:
            if self._container_unstartable(container):
                container.reason = _CANNOT_START
                codes[container.name] = 1
            else:
                codes[container.name] = 0
        self._finish(task, "EssentialContainerExited", _FAILED_REASON, codes)

    def _container_unstartable(self, container: Any) -> bool:
        if not getattr(container, "essential", True):
            return False
        tag = _image_tag(str(container.image or ""))
        name = getattr(container, "name", None)
        return any(rule(tag, name) for rule in self._unstartable)

    def _cannot_start(self, b: _Backend, task: _Task) -> bool:
        return any(self._container_unstartable(c) for c in task.containers)

    def _tick_stops(self, b: _Backend, now: float) -> bool:
        """Finish stop_task requests: exit 137 for what was running, like SIGKILL."""
        for arn, (cluster, due) in list(self._stops.items()):
            if now < due:
                continue
            del self._stops[arn]
            task = b.tasks.get(cluster, {}).get(arn)
            job = self._oneoffs.pop(arn, None)
            if task is None or task.last_status == "STOPPED":
                continue
            if job is not None:
                self._flush_logs(job, task, now, everything=False)
            ran = task.last_status == "RUNNING"
            codes: dict[str, int | None] = {c.name: (137 if ran else None) for c in task.containers}
            self._finish(task, "UserInitiated", task.stopped_reason, codes)
            svc = self._service_of(b, task)
            if svc is not None:
                self._event(svc, f"has stopped 1 running tasks: (task {_task_id(task)}).")
                self._state(svc).steady = False
                self._sync_counts(b, svc)
        return bool(self._stops)

    def _service_of(self, b: _Backend, task: _Task) -> _Service | None:
        group = str(task.group)
        if not group.startswith("service:"):
            return None
        return b.services.get(f"{task.cluster_name}:{group.split(':', 1)[1]}")

    # -- one-off tasks ---------------------------------------------------------------------

    def _adopt_oneoff(self, b: _Backend, task: _Task) -> None:
        task_definition = b.describe_task_definition(task.task_definition_arn)
        self._dress(task, task_definition, "PROVISIONING")
        overrides = {o.get("name"): o for o in (task.overrides or {}).get("containerOverrides") or []}
        main = next(
            (c for c in task_definition.container_definitions if overrides.get(c["name"], {}).get("command")),
            next(
                (c for c in task_definition.container_definitions if c.get("essential", True)),
                task_definition.container_definitions[0],
            ),
        )
        command = overrides.get(main["name"], {}).get("command") or main.get("command") or []
        for container in task.containers:
            override = overrides.get(container.name, {}).get("command")
            if override:
                container.command = override
        outcome = self._outcome([str(arg) for arg in command])
        outcome.unstartable = self._cannot_start(b, task)
        options = (main.get("logConfiguration") or {}).get("options") or {}
        group = options.get("awslogs-group")
        prefix = options.get("awslogs-stream-prefix")
        stream = f"{prefix}/{main['name']}/{_task_id(task)}" if group and prefix else None
        self._oneoffs[task.task_arn] = _OneOff(
            cluster=task.cluster_name,
            arn=task.task_arn,
            outcome=outcome,
            container=main["name"],
            log_group=group,
            log_stream=stream,
            due=time.monotonic() + 0.15 * self.task_seconds,
        )
        self._task_event(task)

    def _outcome(self, argv: list[str]) -> _Outcome:
        """Scripts first; then ``fail`` exits 1, ``sleep``/``hang`` wait for stop_task."""
        joined = " ".join(argv)
        run_seconds = 0.7 * self.task_seconds
        for script in self._scripts:
            if script.match in joined:
                seconds = script.seconds if script.seconds is not None else run_seconds
                return _Outcome(script.exit_code, list(script.log_lines), seconds)
        migrate = "db:migrate" in joined
        if any("fail" in arg for arg in argv):
            lines = (
                [*_MIGRATION_LINES[:3], _MIGRATION_ERROR]
                if migrate
                else [
                    f"Running {joined}",
                    f"Error: {joined} failed",
                ]
            )
            if not migrate and any("rails" in arg for arg in argv):
                lines.append(_MIGRATION_ERROR)
            return _Outcome(1, lines, run_seconds)
        if any("sleep" in arg or "hang" in arg for arg in argv):
            return _Outcome(0, [f"Running {joined}"], run_seconds, hang=True)
        if migrate:
            return _Outcome(0, list(_MIGRATION_LINES), run_seconds)
        return _Outcome(0, [f"Running {joined}", "Done."], run_seconds)

    def _tick_oneoffs(self, b: _Backend, now: float) -> bool:
        busy = False
        for arn, job in list(self._oneoffs.items()):
            task = b.tasks.get(job.cluster, {}).get(arn)
            if task is None or task.last_status == "STOPPED":
                del self._oneoffs[arn]
                continue
            if arn in self._stops:
                continue
            if job.running_since is not None:
                self._flush_logs(job, task, now, everything=False)
            if now < job.due:
                busy = busy or not (job.outcome.hang and job.running_since is not None)
                continue
            if task.last_status == "PROVISIONING":
                task.last_status = "PENDING"
                task.pull_started_at = _now()
                self._task_event(task)
                job.due = now + 0.15 * self.task_seconds
                busy = True
            elif task.last_status != "RUNNING":
                if job.outcome.unstartable:
                    self._stop_failed(task)
                    del self._oneoffs[arn]
                    continue
                self._start_containers(task)
                job.running_since = now
                job.due = now + job.outcome.seconds
                self._flush_logs(job, task, now, everything=False)
                busy = True
            elif not job.outcome.hang:
                self._flush_logs(job, task, now, everything=True)
                codes: dict[str, int | None] = {c.name: 0 for c in task.containers}
                codes[job.container] = job.outcome.exit_code
                self._finish(task, "EssentialContainerExited", _FAILED_REASON, codes)
                del self._oneoffs[arn]
        return busy

    def _flush_logs(self, job: _OneOff, task: _Task, now: float, *, everything: bool) -> None:
        """Write the lines due by now (all of them once the task ends) to CloudWatch Logs."""
        lines = job.outcome.lines
        if job.running_since is None and not everything:
            return
        if everything or job.running_since is None or job.outcome.seconds <= 0:
            upto = len(lines)
        else:
            elapsed = (now - job.running_since) / job.outcome.seconds
            upto = min(len(lines), 1 + int(elapsed * len(lines)))
        if upto <= job.lines_written or job.log_group is None or job.log_stream is None:
            return
        self._write_logs(job.log_group, job.log_stream, lines[job.lines_written : upto])
        job.lines_written = upto

    def _write_logs(self, group_name: str, stream_name: str, lines: list[str]) -> None:
        logs = get_backend("logs")[self.account_id][self.region]
        if group_name not in logs.groups:
            logs.create_log_group(group_name, {})
        group = logs.groups[group_name]
        if stream_name not in group.streams:
            group.streams = {**group.streams, stream_name: _new_log_stream(group, stream_name)}
        millis = int(time.time() * 1000)
        events = [{"timestamp": millis, "message": line} for line in lines]
        logs.put_log_events(group_name, stream_name, events)
