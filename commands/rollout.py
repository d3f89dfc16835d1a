"""Rolling services out and back: the steps deploy, rollback and restart share.

A release changes several services at once. Each is watched by the shared watcher (so one
batched describe covers them all), the first failure stops the wait for the others, and a
failed release goes back as a whole (SPEC part two, "Releases"): every service it changed
returns to its previous revision, the ones that had succeeded included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.catalog import Catalog, Environment
from bot.domain.events import Emit, Failed, RolledBack, RollingBack, ServiceSettled, StoppedTasks
from bot.domain.ports import Ecs, Schedules, Watcher
from commands.gated import GatedWait, wait_for_deployment
from commands.wait import RolloutOutcome, stopped_task_reasons, wait_for_rollout

T = TypeVar("T")
STOPPED = "stopped: "
"""How a service's verdict starts when the wait for it stopped because another service failed."""


@dataclass(frozen=True)
class DeployDeps:
    """What a deploy needs, passed in by name."""

    ecs: Ecs
    watcher: Watcher
    catalog: Catalog
    schedules: Schedules


@dataclass(frozen=True)
class Change:
    """One service an operation updated: what it ran before, the deployment now to watch."""

    label: str | None
    """The service's name in a thread about several services; None when there is one."""
    ref: ServiceRef
    previous_task_definition: str
    task_definition: str
    deployment_id: str
    known: ServiceSnapshot | None = None
    """update_service's answer: what the service looked like when the deployment started."""
    service_deployment: str | None = None
    """The service deployment's ARN when the service deploys blue/green, linear or canary."""

    @property
    def name(self) -> str:
        return self.ref.service


async def follow(
    change: Change,
    ecs: Ecs,
    watcher: Watcher,
    timeout_s: float,
    emit: Emit,
    *,
    cancel: asyncio.Event | None = None,
    expected_s: float | None = None,
    announced: Sequence[str] = (),
    roll_back_when_stopped: bool = True,
) -> RolloutOutcome:
    """Watch one change to its verdict: a rolling deployment, or a blue/green one's stages."""
    if change.service_deployment is not None:
        wait = GatedWait(
            change.ref,
            change.service_deployment,
            change.task_definition,
            change.previous_task_definition,
            timeout_s,
            change.label,
            announced,
            roll_back_when_stopped,
        )
        return await wait_for_deployment(watcher, ecs, wait, emit, cancel=cancel)
    return await wait_for_rollout(
        watcher,
        change.ref,
        change.deployment_id,
        change.task_definition,
        timeout_s,
        emit,
        seen_events={e.id for e in change.known.events} if change.known else None,
        cancel=cancel,
        expected_s=expected_s,
        known=change.known,
        service=change.label,
    )


async def safely(awaitable: Awaitable[T]) -> T | None:
    """Extra detail for a failure report must not turn into a second failure."""
    try:
        return await awaitable
    except AwsError:
        return None


# -- watching ------------------------------------------------------------------------------


async def watch_all(
    changes: Sequence[Change],
    ecs: Ecs,
    watcher: Watcher,
    timeout_s: float,
    emit: Emit,
    *,
    cancel: asyncio.Event | None = None,
    expected_s: float | None = None,
    roll_back_when_stopped: bool = True,
) -> list[RolloutOutcome]:
    """Watch every change at once until each has its verdict; the first failure (or a cancel)
    stops the wait for the others, which then count as failed too. One outcome per change.

    With several changes, each verdict is announced (`ServiceSettled`) as it comes.
    """
    stop = asyncio.Event()
    failed_first: list[str] = []

    async def forward_cancel() -> None:
        if cancel is not None:
            await cancel.wait()
            stop.set()

    async def one(change: Change) -> RolloutOutcome:
        outcome = await follow(
            change,
            ecs,
            watcher,
            timeout_s,
            emit,
            cancel=stop,
            expected_s=expected_s,
            roll_back_when_stopped=roll_back_when_stopped,
        )
        user_cancelled = cancel is not None and cancel.is_set()
        if not outcome.ok and failed_first and not user_cancelled and stop.is_set():
            outcome = RolloutOutcome(
                False,
                f"{STOPPED}{failed_first[0]} failed",
                outcome.ecs_rollback,
                outcome.snapshot,
                outcome.settled_by_ecs,
            )
        elif not outcome.ok and not stop.is_set():
            failed_first.append(change.label or change.name)
            stop.set()
        if change.label is not None:
            await emit(ServiceSettled(change.label, outcome.ok, outcome.reason))
        return outcome

    forwarder = asyncio.create_task(forward_cancel())
    try:
        return list(await asyncio.gather(*(one(change) for change in changes)))
    finally:
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder


# -- going back ----------------------------------------------------------------------------


async def roll_back(
    env: Environment,
    ref: ServiceRef,
    task_definition: str,
    reason: str,
    deps: DeployDeps,
    emit: Emit,
    *,
    service: str | None = None,
) -> bool:
    """Put the service back on an earlier revision and watch that too."""
    revision = revision_of(task_definition)
    await emit(RollingBack(revision, reason, service=service))
    try:
        snapshot = await deps.ecs.update_service(ref, task_definition)
    except AwsError as exc:
        await emit(RolledBack(revision, completed=False, service=service))
        raise exc from None
    primary = snapshot.primary
    if primary is None:
        await emit(RolledBack(revision, completed=False, service=service))
        return False
    after = await wait_for_rollout(
        deps.watcher,
        ref,
        primary.id,
        task_definition,
        env.timeout,
        emit,
        seen_events={e.id for e in snapshot.events},
        known=snapshot,
        service=service,
    )
    await emit(RolledBack(revision, completed=after.ok, service=service))
    return after.ok


async def follow_ecs_rollback(
    env: Environment,
    ref: ServiceRef,
    outcome: RolloutOutcome,
    deps: DeployDeps,
    emit: Emit,
    *,
    service: str | None = None,
) -> None:
    """ECS's circuit breaker went back by itself: say so, and watch it settle."""
    rollback = outcome.ecs_rollback
    assert rollback is not None
    revision = revision_of(rollback.task_definition)
    await emit(
        RollingBack(
            revision,
            "ECS's deployment circuit breaker rolled the deployment back",
            by_ecs=True,
            service=service,
        )
    )
    seen = {e.id for e in outcome.snapshot.events} if outcome.snapshot else set()
    after = await wait_for_rollout(
        deps.watcher,
        ref,
        rollback.id,
        rollback.task_definition,
        env.timeout,
        emit,
        seen_events=seen,
        service=service,
    )
    await emit(RolledBack(revision, completed=after.ok, by_ecs=True, service=service))


async def fail_release(
    env: Environment,
    changes: Sequence[Change],
    outcomes: Sequence[RolloutOutcome],
    deps: DeployDeps,
    emit: Emit,
    *,
    reason: str | None = None,
) -> None:
    """A release failed: say why each failed service stopped, then put every service it changed
    back (with `rollback_on_failure`), all at once, and end Failed (`reason`, or the first
    service that failed by itself and why)."""
    failed = [(c, o) for c, o in zip(changes, outcomes, strict=True) if not o.ok]
    if reason is None:
        first, first_outcome = first_failure(changes, outcomes)
        reason = f"{first.label or first.name}: {first_outcome.reason}"
    details: list[str] = []
    for change, outcome in failed:
        if outcome.reason.startswith(STOPPED):
            continue
        stopped = await safely(stopped_task_reasons(deps.ecs, change.ref, change.deployment_id))
        if stopped is not None and stopped.reasons:
            await emit(StoppedTasks(stopped.reasons, service=change.label))
            details.extend(f"{change.label or change.name}: {reason}" for reason in stopped.reasons)
    backs: list[Awaitable[object]] = []
    for change, outcome in zip(changes, outcomes, strict=True):
        if outcome.settled_by_ecs:
            continue  # a blue/green deployment: ECS went back by itself
        if outcome.ecs_rollback is not None:
            backs.append(follow_ecs_rollback(env, change.ref, outcome, deps, emit, service=change.label))
        elif env.rollback_on_failure:
            why = "the release failed" if outcome.ok else outcome.reason
            backs.append(
                roll_back(
                    env, change.ref, change.previous_task_definition, why, deps, emit, service=change.label
                )
            )
    if backs:
        results = await asyncio.gather(*backs, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, AwsError):
                raise result
    elif not env.rollback_on_failure:
        kept = [c.label or c.name for c, o in zip(changes, outcomes, strict=True) if o.ok]
        if kept:
            reason += f" ({', '.join(kept)} stayed on the new revision: rollback_on_failure is off)"
    await emit(Failed(reason, tuple(details)))


def first_failure(
    changes: Sequence[Change], outcomes: Sequence[RolloutOutcome]
) -> tuple[Change, RolloutOutcome]:
    """The service that failed by itself (not one stopped because another failed)."""
    failed = [(c, o) for c, o in zip(changes, outcomes, strict=True) if not o.ok]
    return next(((c, o) for c, o in failed if not o.reason.startswith(STOPPED)), failed[0])


def release_summary(changes: Sequence[Change], outcomes: Sequence[RolloutOutcome], verb: str) -> str:
    """`Release is live: api rev 4 (2/2 tasks running) · api-worker rev 7 (1/1 tasks running).`"""
    parts = [
        f"{change.label or change.name} rev {revision_of(change.task_definition)} ({outcome.reason})"
        for change, outcome in zip(changes, outcomes, strict=True)
    ]
    return f"{verb}: " + " · ".join(parts) + "."
