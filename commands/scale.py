"""Scale: set how many tasks a service runs, and watch until that many run (SPEC, on-call).

A remedy like `/run-task`: a lock does not stop it, a running deploy or rollback does (the
operation checks that). Nothing else of the service changes: the same revision, fewer or more
copies of it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bot.domain.aws import ServiceRef, ServiceSnapshot
from bot.domain.catalog import Catalog, Environment
from bot.domain.events import Emit, Failed, RolloutProgress, ScaleRequested, Succeeded
from bot.domain.ports import Ecs, Watcher
from bot.domain.records import Target
from commands.grammar import ScaleRequest


@dataclass(frozen=True)
class ScalePlan:
    target: Target
    env: Environment
    service: str
    ref: ServiceRef
    previous: int
    """The desired count before."""
    desired: int

    @property
    def subject(self) -> str:
        """`api-worker to 3` in a release, `to 3` for the only service."""
        return f"{self.service} to {self.desired}" if self.env.is_release else f"to {self.desired}"


async def prepare(request: ScaleRequest, watcher: Watcher, catalog: Catalog) -> ScalePlan:
    """What the service's desired count is now (a describe; nothing changes)."""
    _, env = catalog.target(request.target.app, request.target.env)
    found = catalog.release_refs(request.target.app, request.target.env)
    ref = next(ref for entry, ref in found if entry.name == request.service)
    snapshot = await watcher.describe(ref)
    return ScalePlan(request.target, env, request.service, ref, snapshot.desired, request.count)


async def execute(
    plan: ScalePlan, ecs: Ecs, watcher: Watcher, emit: Emit, cancel: asyncio.Event | None = None
) -> bool:
    """Set the count, then watch until running = desired (or the environment's timeout)."""
    await ecs.scale_service(plan.ref, plan.desired)
    await emit(ScaleRequested(plan.service, plan.previous, plan.desired))
    return await wait_for_count(plan.ref, plan.service, plan.desired, plan.env.timeout, watcher, emit, cancel)


def counted(snapshot: ServiceSnapshot, desired: int) -> bool:
    """The service runs exactly `desired` tasks, none starting, with one deployment."""
    return (
        snapshot.desired == desired
        and snapshot.running == desired
        and snapshot.pending == 0
        and len(snapshot.deployments) <= 1
    )


async def wait_for_count(
    ref: ServiceRef,
    service: str,
    desired: int,
    timeout_s: float,
    watcher: Watcher,
    emit: Emit,
    cancel: asyncio.Event | None = None,
) -> bool:
    """Follow the service until it runs `desired` tasks; the last event is Succeeded or Failed."""
    deadline = time.monotonic() + timeout_s
    last: tuple[int, int, int] | None = None
    seen: set[str] | None = None
    async with watcher.watch(ref) as subscription:
        while (remaining := deadline - time.monotonic()) > 0:
            if cancel is not None and cancel.is_set():
                await emit(Failed(f"Stopped watching: ECS keeps {service}'s desired count at {desired}."))
                return False
            snapshot = await subscription.next(min(remaining, 1.0))
            if snapshot is None:
                continue
            first_look, seen = seen is None, seen or set()
            # The first look shows ECS's events up to now: only what comes after is news.
            new = (
                () if first_look else tuple(e.message for e in reversed(snapshot.events) if e.id not in seen)
            )
            seen.update(e.id for e in snapshot.events)
            counts = (snapshot.running, snapshot.desired, snapshot.pending)
            if counts != last or new:
                last = counts
                await emit(RolloutProgress(*counts, new_events=new))
            if counted(snapshot, desired):
                await emit(Succeeded(f"{service} runs {desired}/{desired} tasks."))
                return True
    running = f"{last[0]}/{last[1]} running" if last else "no answer from ECS"
    await emit(
        Failed(f"{service} did not reach {desired} running tasks within {int(timeout_s)} s ({running}).")
    )
    return False
