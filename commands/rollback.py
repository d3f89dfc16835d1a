"""Rollback: put a service back on an exact earlier task definition revision.

Registers nothing new (SPEC). With no REVISION the target is the last successful deploy
before the current one, from Tugboat's own history; without history, the previous ACTIVE
revision of the family. Watched like a deploy.

An environment of several services rolls back as one release: every service goes back to its
revision in the last successful release, and a REVISION (one family's number) is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, family_of, revision_of
from bot.domain.catalog import Catalog, Environment
from bot.domain.events import Emit, Failed, ReleasePlanned, RollingBack, ServiceUpdated
from bot.domain.ports import Ecs
from bot.domain.records import OperationRecord, Target
from commands import schedules as schedules_action
from commands.grammar import RollbackRequest
from commands.rollout import Change, DeployDeps, first_failure, release_summary, watch_all
from commands.wait import wait_for_rollout


class RollbackRefused(Exception):
    """There is nothing to roll back to, or the revision does not exist; nothing changed."""


@dataclass(frozen=True)
class ServiceRollback:
    """One service going back: from what it runs to the revision it returns to."""

    name: str
    ref: ServiceRef
    current_task_definition: str
    task_definition: str

    @property
    def revision(self) -> int:
        return revision_of(self.task_definition)


@dataclass(frozen=True)
class RollbackPlan:
    target: Target
    env: Environment
    why: str
    services: tuple[ServiceRollback, ...]
    """The services that go back (in a release, those not already on their revision)."""
    release: bool = False
    """The environment deploys several services as one release: events name each."""
    running: tuple[tuple[str, str], ...] = ()
    """Every service's task definition when planned (in a release, those that stay too)."""

    @property
    def service(self) -> ServiceRef:
        return self.services[0].ref

    @property
    def current_task_definition(self) -> str:
        return self.services[0].current_task_definition

    @property
    def task_definition(self) -> str:
        return self.services[0].task_definition

    @property
    def revision(self) -> int:
        return revision_of(self.task_definition)

    @property
    def first_service_after(self) -> str:
        """What the environment's first service runs once this is done (the schedules follow it),
        whether or not it goes back itself."""
        if not self.running:
            return self.task_definition
        name, now = self.running[0]
        return next((s.task_definition for s in self.services if s.name == name), now)

    @property
    def subject(self) -> str:
        """`rev 3`, or for a release `api rev 3, api-worker rev 7`."""
        if not self.release:
            return f"rev {self.revision}"
        return ", ".join(f"{s.name} rev {s.revision}" for s in self.services)

    def pin(self) -> dict[str, object]:
        """What a card pins, so a press runs this rollback or nothing: where it goes, what ran."""
        pinned: dict[str, object] = {"to": self.task_definition, "replaces": self.current_task_definition}
        if self.release:
            pinned["to_services"] = {s.name: s.task_definition for s in self.services}
            pinned["running"] = dict(self.running)
        return pinned

    def changes(self, pinned: Mapping[str, Any]) -> list[str]:
        """What differs between the card (`pin()`) and the target now; empty when it still holds."""
        shown = pinned.get("running")
        if not self.release or not isinstance(shown, dict):
            if self.current_task_definition == pinned.get("replaces"):
                return []
            return [f"it now runs revision {revision_of(self.current_task_definition)}"]
        now = dict(self.running)
        return [
            f"service {name} now runs revision {revision_of(now.get(name, ''))},"
            f" not revision {revision_of(str(arn))} as the card showed"
            for name, arn in shown.items()
            if now.get(name) != arn
        ]


# -- describe and decide -----------------------------------------------------------------


async def prepare(
    request: RollbackRequest,
    ecs: Ecs,
    catalog: Catalog,
    history: Sequence[OperationRecord],
    *,
    to_task_definition: str | None = None,
    to_services: dict[str, str] | None = None,
    described: Mapping[str, ServiceSnapshot] | None = None,
) -> RollbackPlan:
    """Find the revision to go back to; refuse when there is none.

    `to_services`: for a release, each service's revision before a given release (the button).
    `described`: the services as the caller just described them, by `ServiceRef.key` (not again).
    """
    _, env = catalog.target(request.target.app, request.target.env)
    if env.is_release:
        return await _prepare_release(request, ecs, catalog, history, to_services, described)
    ref = catalog.service_ref(request.target.app, request.target.env)
    service = (described or {}).get(ref.key) or await ecs.describe_service(ref)
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
    chosen = str(described["taskDefinitionArn"])
    going = (ServiceRollback(ref.service, ref, current, chosen),)
    return RollbackPlan(request.target, env, why, going, running=((ref.service, current),))


async def _prepare_release(
    request: RollbackRequest,
    ecs: Ecs,
    catalog: Catalog,
    history: Sequence[OperationRecord],
    to_services: dict[str, str] | None,
    described: Mapping[str, ServiceSnapshot] | None,
) -> RollbackPlan:
    """Every service back to its revision in the last successful release (or the one given)."""
    target = request.target
    _, env = catalog.target(target.app, target.env)
    names = ", ".join(env.service_names())
    if request.revision is not None:
        raise RollbackRefused(
            f"{target} deploys {len(env.services)} services as one release ({names}), and a "
            f"revision number belongs to one service's task definition family. `/rollback "
            f"{target.app} {target.env}` puts every service back on its revision of the last "
            "successful release."
        )
    refs = [ref for _, ref in catalog.release_refs(target.app, target.env)]
    snapshots = described if described is not None else await ecs.describe_services(refs)
    current: dict[str, str] = {}
    for ref in refs:
        snapshot = snapshots.get(ref.key)
        if snapshot is None:
            raise RollbackRefused(f"Service {ref.service} is not active in cluster {ref.cluster}.")
        current[ref.service] = snapshot.task_definition
    if to_services:
        wanted, why = dict(to_services), "the revisions before that release"
    else:
        wanted, why = await _last_good_release(ecs, refs, current, history)
    going: list[ServiceRollback] = []
    for ref in refs:
        chosen = wanted.get(ref.service)
        if chosen is None or chosen == current[ref.service]:
            continue
        try:
            described = await ecs.describe_task_definition(ref, chosen)
        except AwsError as exc:
            raise RollbackRefused(
                f"Task definition `{chosen.rsplit('/', 1)[-1]}` of {ref.service} cannot be used:"
                f" {exc.aws_message}"
            ) from None
        going.append(
            ServiceRollback(ref.service, ref, current[ref.service], str(described["taskDefinitionArn"]))
        )
    if not going:
        raise RollbackRefused(f"Every service of {target} already runs the revision it would go back to.")
    running = tuple(current.items())
    return RollbackPlan(target, env, why, tuple(going), release=True, running=running)


def _released(record: OperationRecord, first: str) -> dict[str, str]:
    """What a successful operation left each service on (a one-service record: the first)."""
    if record.services:
        return {s.name: s.task_definition for s in record.services if s.task_definition}
    return {first: record.task_definition} if record.task_definition else {}


async def _last_good_release(
    ecs: Ecs, refs: list[ServiceRef], current: dict[str, str], history: Sequence[OperationRecord]
) -> tuple[dict[str, str], str]:
    """The last successful release that left the services elsewhere than they are now; without
    one, each family's previous ACTIVE revision."""
    for record in history:
        if record.action not in ("deploy", "rollback") or record.state != "succeeded":
            continue
        left = _released(record, refs[0].service)
        if left and any(current.get(name) != arn for name, arn in left.items()):
            return left, f"the last good release (`{record.subject}`)"
    wanted: dict[str, str] = {}
    for ref in refs:
        family = family_of(current[ref.service])
        earlier = [
            arn
            for arn in await ecs.list_revisions(ref, family, limit=20)
            if revision_of(arn) < revision_of(current[ref.service])
        ]
        if earlier:
            wanted[ref.service] = earlier[0]
    if not wanted:
        raise RollbackRefused(
            "Nothing to roll back to: no earlier successful release is recorded and no service"
            " has an active revision before the current one."
        )
    return wanted, "the previous active revisions (no earlier good release is recorded)"


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
    if plan.release:
        return await _execute_release(plan, deps, emit, cancel)
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


async def _execute_release(
    plan: RollbackPlan, deps: DeployDeps, emit: Emit, cancel: asyncio.Event | None
) -> bool:
    """Every service of the release back at once, watched together; succeeded only when all are."""
    await emit(ReleasePlanned(tuple((s.name, s.current_task_definition) for s in plan.services)))
    changes: list[Change] = []
    for service in plan.services:
        await emit(RollingBack(service.revision, plan.why, service=service.name))
        snapshot = await deps.ecs.update_service(service.ref, service.task_definition)
        primary = snapshot.primary
        if primary is None:
            await emit(
                Failed(f"{service.name}: ECS accepted update_service but shows no PRIMARY deployment.")
            )
            return False
        await emit(
            ServiceUpdated(
                primary.id, service.task_definition, service.current_task_definition, service=service.name
            )
        )
        changes.append(
            Change(
                service.name,
                service.ref,
                service.current_task_definition,
                service.task_definition,
                primary.id,
                snapshot,
            )
        )
    outcomes = await watch_all(changes, deps.ecs, deps.watcher, plan.env.timeout, emit, cancel=cancel)
    if all(outcome.ok for outcome in outcomes):
        summary = release_summary(changes, outcomes, "Release is back")
        await schedules_action.succeed(
            deps.catalog, plan.target, plan.first_service_after, summary, deps.ecs, deps.schedules, emit
        )
        return True
    change, outcome = first_failure(changes, outcomes)
    await emit(Failed(f"The rollback did not complete: {change.name}: {outcome.reason}"))
    return False
