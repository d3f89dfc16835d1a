"""Restart: a new deployment of the revision a service already runs (ECS "force new deployment").

Fresh tasks, same definition: what on-call reaches for when tasks hold a bad connection or a
leaked resource. Watched and judged like a rollout (`commands.wait.judge`). With several
services and none named, every service of the release restarts as one operation.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from bot.domain.aws import ServiceRef, revision_of
from bot.domain.catalog import Catalog, Environment
from bot.domain.events import Emit, Failed, ReleasePlanned, ServiceUpdated, Succeeded
from bot.domain.ports import Ecs, Watcher
from bot.domain.records import Target
from commands.gated import started_deployment
from commands.grammar import RestartRequest
from commands.rollout import Change, first_failure, release_summary, safely, watch_all
from commands.wait import stopped_task_reasons


class RestartRefused(Exception):
    """The service cannot be restarted now; nothing changed. The message says why."""


@dataclass(frozen=True)
class RestartPlan:
    target: Target
    env: Environment
    services: tuple[tuple[str, ServiceRef, str], ...]
    """Each service restarted: its name, where it lives, the task definition it runs."""

    @property
    def several(self) -> bool:
        return len(self.services) > 1

    @property
    def subject(self) -> str:
        """`api`, or `api, api-worker` for several."""
        return ", ".join(name for name, _, _ in self.services)


async def prepare(request: RestartRequest, ecs: Ecs, catalog: Catalog) -> RestartPlan:
    """The services to restart and what each runs (one batched describe; nothing changes)."""
    target = request.target
    _, env = catalog.target(target.app, target.env)
    refs = [
        ref
        for entry, ref in catalog.release_refs(target.app, target.env)
        if request.service is None or entry.name == request.service
    ]
    snapshots = await ecs.describe_services(refs)
    services: list[tuple[str, ServiceRef, str]] = []
    for ref in refs:
        snapshot = snapshots.get(ref.key)
        if snapshot is None:
            raise RestartRefused(f"Service {ref.service} is not active in cluster {ref.cluster}.")
        if len(snapshot.deployments) > 1:
            raise RestartRefused(
                f"Service {ref.service} is in the middle of a deployment: let it finish first."
            )
        services.append((ref.service, ref, snapshot.task_definition))
    return RestartPlan(target, env, tuple(services))


async def execute(
    plan: RestartPlan, ecs: Ecs, watcher: Watcher, emit: Emit, cancel: asyncio.Event | None = None
) -> bool:
    """Start a new deployment of each service, watch them all, and judge them like a rollout."""
    if plan.several:
        await emit(ReleasePlanned(tuple((name, arn) for name, _, arn in plan.services)))
    changes: list[Change] = []
    for name, ref, arn in plan.services:
        snapshot = await ecs.force_new_deployment(ref)
        primary = snapshot.primary
        if primary is None:
            await emit(Failed(f"{name}: ECS accepted the restart but shows no PRIMARY deployment."))
            return False
        label = name if plan.several else None
        gate = await started_deployment(ecs, snapshot)
        await emit(
            ServiceUpdated(primary.id, primary.task_definition, arn, service=label, service_deployment=gate)
        )
        changes.append(Change(label, ref, arn, primary.task_definition, primary.id, snapshot, gate))
    outcomes = await watch_all(changes, ecs, watcher, plan.env.timeout, emit, cancel=cancel)
    if all(outcome.ok for outcome in outcomes):
        if plan.several:
            await emit(Succeeded(release_summary(changes, outcomes, "Restarted")))
        else:
            revision = revision_of(changes[0].task_definition)
            await emit(Succeeded(f"Restarted on revision {revision}: {outcomes[0].reason}."))
        return True
    change, outcome = first_failure(changes, outcomes)
    details: tuple[str, ...] = ()
    stopped = await safely(stopped_task_reasons(ecs, change.ref, change.deployment_id))
    if stopped is not None and stopped.reasons:
        await emit(dataclasses.replace(stopped, service=change.label))
        details = stopped.reasons
    where = f"{change.label}: " if change.label else ""
    await emit(Failed(f"The restart did not complete: {where}{outcome.reason}", details))
    return False
