"""Run task: a named catalog task as a one-off ECS task, reported with exit codes and log tail.

Reads top-down like ecspresso's run.go: describe the service (its revision and network),
decide the command, act (run_task), wait for STOPPED, report. The deploy's `before_deploy`
step runs its migrations through the same `run_one_off`, from the new revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from bot.domain.aws import ServiceRef, ServiceSnapshot, awslogs_of, revision_of
from bot.domain.catalog import App, Catalog, Environment, TaskSpec
from bot.domain.events import Emit, Failed, Succeeded, TaskStarted, TaskStopped
from bot.domain.ports import Ecs, Schedules, TaskWatcher
from bot.domain.records import Target
from bot.domain.schedules import ScheduleMissing
from commands.grammar import RunTaskRequest

LOG_LINES = 20
STARTED_BY = "tugboat"
SCHEDULE_RUN_TIMEOUT_S = 3600


@dataclass(frozen=True)
class TaskPlan:
    """Everything run_task needs, copied from the service so the task runs where it runs."""

    target: Target
    service: ServiceRef
    name: str
    spec: TaskSpec
    command: tuple[str, ...]
    container: str
    task_definition: str
    placement: dict[str, Any]
    actor: str
    overrides: dict[str, Any] | None = None
    """A schedule's own task overrides, sent as they are (None: `command` for `container`)."""
    tags: tuple[dict[str, str], ...] = ()


def placement_of(snapshot: ServiceSnapshot) -> dict[str, Any]:
    """Launch type or capacity providers, platform version and network, as the service has them."""
    raw = snapshot.raw
    placement: dict[str, Any] = {}
    if raw.get("capacityProviderStrategy"):
        placement["capacityProviderStrategy"] = raw["capacityProviderStrategy"]
    elif raw.get("launchType"):
        placement["launchType"] = raw["launchType"]
    if raw.get("platformVersion") and raw.get("launchType") == "FARGATE":
        placement["platformVersion"] = raw["platformVersion"]
    if raw.get("networkConfiguration"):
        placement["networkConfiguration"] = raw["networkConfiguration"]
    return placement


# -- describe and decide -----------------------------------------------------------------


class RunTaskRefused(Exception):
    """The task cannot run as asked; nothing was started. The message says why."""


async def prepare(
    request: RunTaskRequest, ecs: Ecs, catalog: Catalog, actor: str, schedules: Schedules
) -> TaskPlan:
    app, _ = catalog.target(request.target.app, request.target.env)
    ref = catalog.service_ref(request.target.app, request.target.env)
    if request.schedule:
        return await _scheduled(request, catalog, ref, actor, schedules)
    snapshot = await ecs.describe_service(ref)
    spec = app.tasks[request.task]
    return TaskPlan(
        target=request.target,
        service=ref,
        name=request.task,
        spec=spec,
        command=(*spec.command, *request.args),
        container=app.container,
        task_definition=snapshot.task_definition,
        placement=placement_of(snapshot),
        actor=actor,
    )


async def _scheduled(
    request: RunTaskRequest, catalog: Catalog, ref: ServiceRef, actor: str, schedules: Schedules
) -> TaskPlan:
    """A schedule's ECS target, once, as the schedule would run it (SPEC: "Run it now")."""
    app, env = catalog.target(request.target.app, request.target.env)
    entry = env.schedule(request.task)
    assert entry is not None, "the grammar only sets `schedule` for the environment's schedules"
    try:
        tasks = await schedules.read(entry.ref(catalog.region_of(env), env.role_arn))
    except ScheduleMissing as exc:
        raise RunTaskRefused(f"Schedule `{entry.name}` cannot be run: {exc}.") from None
    if len(tasks) != 1:
        names = ", ".join(f"`{t.target_id}`" for t in tasks)
        raise RunTaskRefused(
            f"Rule `{entry.name}` has {len(tasks)} ECS targets ({names}):"
            " name one with `target:` in the catalog."
        )
    task = tasks[0]
    if task.cluster != ref.cluster:
        raise RunTaskRefused(
            f"Schedule `{entry.name}` runs in cluster `{task.cluster}`, not in {request.target}'s"
            f" cluster `{ref.cluster}`: Tugboat runs tasks only where the environment runs."
        )
    overrides = task.overrides()
    ours: dict[str, Any] = next(
        (c for c in overrides.get("containerOverrides", []) if c.get("name") == app.container), {}
    )
    return TaskPlan(
        target=request.target,
        service=ref,
        name=entry.name,
        spec=schedule_spec(ours.get("command") or ["(as scheduled)"]),
        command=tuple(ours.get("command") or ()),
        container=app.container,
        task_definition=task.task_definition,
        placement=task.placement(),
        actor=actor,
        overrides=overrides,
        tags=task.tags(),
    )


def schedule_spec(command: list[str]) -> TaskSpec:
    """A schedule run now is watched like a catalog task, for up to an hour."""
    return TaskSpec(command=command, timeout=SCHEDULE_RUN_TIMEOUT_S)


def plan_to_follow(
    catalog: Catalog, target: Target, subject: str, task_definition: str, actor: str
) -> TaskPlan:
    """What a restarted Tugboat needs to follow a started task to its end; KeyError if unknown now."""
    app, env = catalog.target(target.app, target.env)
    words = tuple(subject.split(" "))
    name = words[0]
    spec = app.tasks.get(name)
    if spec is None:
        if env.schedule(name) is None:
            raise KeyError(name)
        spec = schedule_spec(["(as scheduled)"])
    return TaskPlan(
        target=target,
        service=catalog.service_ref(target.app, target.env),
        name=name,
        spec=spec,
        command=words,
        container=app.container,
        task_definition=task_definition,
        placement={},
        actor=actor,
    )


def before_deploy_plans(
    app: App,
    env: Environment,
    target: Target,
    ref: ServiceRef,
    snapshot: ServiceSnapshot,
    new_arn: str,
    actor: str,
) -> list[TaskPlan]:
    """The environment's before_deploy tasks, to run from the new revision."""
    return [
        TaskPlan(
            target=target,
            service=ref,
            name=name,
            spec=app.tasks[name],
            command=tuple(app.tasks[name].command),
            container=app.container,
            task_definition=new_arn,
            placement=placement_of(snapshot),
            actor=actor,
        )
        for name in env.before_deploy
    ]


# -- act and wait ------------------------------------------------------------------------


async def execute(plan: TaskPlan, ecs: Ecs, emit: Emit, cancel: asyncio.Event | None = None) -> bool:
    """Run the task and end with Succeeded or Failed."""
    stopped = await run_one_off(plan, ecs, emit, cancel)
    return await execute_stopped(plan, stopped, emit)


async def execute_stopped(plan: TaskPlan, stopped: TaskStopped, emit: Emit) -> bool:
    """The final word on a one-off task: exit code 0 everywhere, or a failure that says why."""
    if stopped.succeeded:
        await emit(Succeeded(f"Task `{plan.name}` exited 0."))
        return True
    await emit(Failed(failure_reason(plan.name, stopped)))
    return False


def failure_reason(name: str, stopped: TaskStopped) -> str:
    codes = ", ".join(f"{c} exited {code}" for c, code in stopped.exit_codes.items() if code != 0)
    if stopped.stop_code == "UserInitiated" and stopped.reason:
        return f"Task `{name}` was stopped: {stopped.reason}" + (f" ({codes})." if codes else ".")
    return f"Task `{name}` failed: {codes or stopped.reason or 'it did not finish'}."


async def run_one_off(
    plan: TaskPlan,
    ecs: Ecs,
    emit: Emit,
    cancel: asyncio.Event | None = None,
) -> TaskStopped:
    """Start the task, wait for STOPPED (or stop it on timeout/cancel), and report how it ended."""
    task = await ecs.run_task(
        plan.service,
        taskDefinition=plan.task_definition,
        count=1,
        startedBy=STARTED_BY,
        overrides=(
            plan.overrides
            if plan.overrides is not None
            else {"containerOverrides": [{"name": plan.container, "command": list(plan.command)}]}
        ),
        tags=[
            *plan.tags,
            {"key": "tugboat:requested-by", "value": plan.actor},
            {"key": "tugboat:task", "value": plan.name},
        ],
        **plan.placement,
    )
    arn = str(task["taskArn"])
    await emit(TaskStarted(plan.name, arn, revision_of(plan.task_definition)))
    return await wait_one_off(plan, arn, ecs, emit, cancel, time.monotonic() + plan.spec.timeout)


async def wait_one_off(
    plan: TaskPlan,
    arn: str,
    ecs: Ecs,
    emit: Emit,
    cancel: asyncio.Event | None,
    deadline: float,
    poll_s: float = 1.0,
) -> TaskStopped:
    """Follow a started task to STOPPED; also how a restarted Tugboat picks a task up again.

    When `ecs` is also a TaskWatcher, the shared watcher follows the task (batched with other
    tasks, woken by ECS task events); otherwise describe_tasks every `poll_s`, growing.
    """
    stop_reason: str | None = None
    delay = poll_s
    async with contextlib.AsyncExitStack() as stack:
        follow = (
            await stack.enter_async_context(ecs.follow_task(plan.service, arn))
            if isinstance(ecs, TaskWatcher)
            else None
        )
        while True:
            if follow is None:
                described = await ecs.describe_tasks(plan.service, [arn])
                current: dict[str, Any] | None = described[0] if described else {}
            else:  # None: no newer describe within a second, time to check deadline and cancel
                current = await follow.next(1.0)
            if current is not None and current.get("lastStatus") == "STOPPED":
                stopped = await _stopped(plan, ecs, current, stop_reason)
                await emit(stopped)
                return stopped
            if stop_reason is None and time.monotonic() > deadline:
                stop_reason = f"timed out after {plan.spec.timeout} s"
                await ecs.stop_task(plan.service, arn, f"Tugboat: {stop_reason}")
            if stop_reason is None and cancel is not None and cancel.is_set():
                stop_reason = "cancelled from Slack"
                await ecs.stop_task(plan.service, arn, f"Tugboat: {stop_reason}")
            if follow is None:
                await _pause(cancel if stop_reason is None else None, delay)
                delay = min(delay * 1.3, 10.0)


async def _pause(cancel: asyncio.Event | None, seconds: float) -> None:
    if cancel is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancel.wait(), seconds)


async def _stopped(plan: TaskPlan, ecs: Ecs, task: dict[str, Any], stop_reason: str | None) -> TaskStopped:
    exit_codes = {str(c.get("name")): c.get("exitCode") for c in task.get("containers", [])}
    if plan.container in exit_codes:
        exit_codes = {plan.container: exit_codes[plan.container]}
    reason = stop_reason or task.get("stoppedReason")
    group, stream, region = await _log_stream(plan, ecs, str(task.get("taskArn", "")))
    tail: list[str] = []
    if group and stream:
        tail = await ecs.log_tail(region, group, stream, plan.service.role_arn, LOG_LINES)
    return TaskStopped(
        name=plan.name,
        task_arn=str(task.get("taskArn", "")),
        exit_codes=exit_codes,
        stop_code=task.get("stopCode"),
        reason=str(reason) if reason else None,
        log_tail=tuple(tail),
        log_location=f"{group} {stream}" if group and stream else None,
    )


async def _log_stream(plan: TaskPlan, ecs: Ecs, task_arn: str) -> tuple[str | None, str | None, str]:
    """awslogs names streams `<prefix>/<container>/<task-id>`; group and prefix are in the definition."""
    definition = await ecs.describe_task_definition(plan.service, plan.task_definition)
    for container in definition.get("containerDefinitions", []):
        if container.get("name") != plan.container:
            continue
        logs = awslogs_of(container, plan.service.region)
        if logs is None:
            return None, None, plan.service.region
        task_id = task_arn.rsplit("/", 1)[-1]
        stream = f"{logs.prefix}/{plan.container}/{task_id}" if logs.prefix else None
        return logs.group, stream, logs.region
    return None, None, plan.service.region
