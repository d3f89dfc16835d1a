"""Rollback: put a service back on an exact earlier task definition revision.

Registers nothing new (SPEC). With no REVISION the target is the last successful deploy
before the current one, from Tugboat's own history; without history, the previous ACTIVE
revision of the family. Watched like a deploy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.aws import AwsError, ServiceRef, family_of, revision_of
from bot.domain.catalog import Catalog, Environment
from bot.domain.events import Emit, Failed, RollingBack, ServiceUpdated
from bot.domain.ports import Ecs
from bot.domain.records import OperationRecord, Target
from commands import schedules as schedules_action
from commands.deploy import DeployDeps
from commands.grammar import RollbackRequest
from commands.wait import wait_for_rollout


class RollbackRefused(Exception):
    """There is nothing to roll back to, or the revision does not exist; nothing changed."""


@dataclass(frozen=True)
class RollbackPlan:
    target: Target
    service: ServiceRef
    env: Environment
    current_task_definition: str
    task_definition: str
    why: str

    @property
    def revision(self) -> int:
        return revision_of(self.task_definition)


# -- describe and decide -----------------------------------------------------------------


async def prepare(
    request: RollbackRequest,
    ecs: Ecs,
    catalog: Catalog,
    history: Sequence[OperationRecord],
    *,
    to_task_definition: str | None = None,
) -> RollbackPlan:
    """Find the revision to go back to; refuse when there is none."""
    _, env = catalog.target(request.target.app, request.target.env)
    ref = catalog.service_ref(request.target.app, request.target.env)
    service = await ecs.describe_service(ref)
    current = service.task_definition
    family = family_of(current)
    if request.revision is not None:
        chosen, why = f"{family}:{request.revision}", f"revision {request.revision} as asked"
    elif to_task_definition is not None:
        chosen, why = to_task_definition, "the revision before that deploy"
    else:
        chosen, why = await _last_good(ecs, ref, current, history)
    if revision_of(chosen) == revision_of(current) and family_of(chosen) == family:
        raise RollbackRefused(f"{request.target} already runs revision {revision_of(current)}.")
    try:
        described = await ecs.describe_task_definition(ref, chosen)
    except AwsError as exc:
        raise RollbackRefused(
            f"Task definition `{chosen.rsplit('/', 1)[-1]}` cannot be used: {exc.aws_message}"
        ) from None
    return RollbackPlan(request.target, ref, env, current, str(described["taskDefinitionArn"]), why)


async def _last_good(
    ecs: Ecs, ref: ServiceRef, current: str, history: Sequence[OperationRecord]
) -> tuple[str, str]:
    """The last successful deploy before the current one; else the previous ACTIVE revision."""
    for record in history:
        if (
            record.action in ("deploy", "rollback")
            and record.state == "succeeded"
            and record.task_definition
            and revision_of(record.task_definition) != revision_of(current)
        ):
            return record.task_definition, f"the last good deploy (`{record.subject}`)"
    family = family_of(current)
    for arn in await ecs.list_revisions(ref, family, limit=20):
        if revision_of(arn) < revision_of(current):
            return arn, "the previous active revision (no earlier good deploy is recorded)"
    raise RollbackRefused(
        f"Nothing to roll back to: no earlier successful deploy is recorded and `{family}` "
        f"has no active revision before {revision_of(current)}."
    )


# -- act and wait ------------------------------------------------------------------------


async def execute(
    plan: RollbackPlan, deps: DeployDeps, emit: Emit, cancel: asyncio.Event | None = None
) -> bool:
    await emit(RollingBack(plan.revision, plan.why))
    service = await deps.ecs.update_service(plan.service, plan.task_definition)
    primary = service.primary
    if primary is None:
        await emit(Failed("ECS accepted update_service but shows no PRIMARY deployment for it."))
        return False
    await emit(ServiceUpdated(primary.id, plan.task_definition, plan.current_task_definition))
    outcome = await wait_for_rollout(
        deps.watcher,
        plan.service,
        primary.id,
        plan.task_definition,
        plan.env.timeout,
        emit,
        seen_events={e.id for e in service.events},
        cancel=cancel,
        known=service,
    )
    if outcome.ok:
        summary = f"Back on revision {plan.revision}: {outcome.reason}."
        await schedules_action.succeed(
            deps.catalog, plan.target, plan.task_definition, summary, deps.ecs, deps.schedules, emit
        )
        return True
    await emit(Failed(f"The rollback to revision {plan.revision} did not complete: {outcome.reason}"))
    return False
