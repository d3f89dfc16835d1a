"""Deploy: ship an image tag to an app's ECS service (SPEC, deploy semantics).

Reads top-down like ecspresso's deploy.go: describe what runs now, decide what to ship,
act (register a revision, run before_deploy tasks, update the service), then wait, and on
failure go back. `prepare` only reads; `execute` is the first to write.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from bot.domain.aws import AwsError, ServiceRef, revision_of
from bot.domain.catalog import App, Environment
from bot.domain.commits import CommitList
from bot.domain.events import (
    Emit,
    Failed,
    ImageVerified,
    ReleasePlanned,
    ServiceUpdated,
    TaskDefinitionRegistered,
    WaitingForImage,
)
from bot.domain.records import Target
from commands import schedules as schedules_action
from commands.gated import started_deployment
from commands.grammar import DeployRequest
from commands.rollout import (
    Change,
    DeployDeps,
    fail_release,
    follow_ecs_rollback,
    release_summary,
    roll_back,
    safely,
    watch_all,
)
from commands.run_task import before_deploy_plans, failure_reason, run_one_off
from commands.taskdef import container_image, tag_of, with_images
from commands.wait import RolloutOutcome, stopped_task_reasons

__all__ = [
    "DeployDeps",
    "DeployPlan",
    "DeployRefused",
    "Pin",
    "ServicePlan",
    "execute",
    "finish",
    "finish_release",
    "prepare",
    "roll_back",
]

SHORT_SHA = re.compile(r"^[0-9a-f]{7,39}$")
ECR_IMAGE = re.compile(r"^(?:\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(.+)$")


class DeployRefused(Exception):
    """The deploy cannot start; nothing was changed. The message says why."""


@dataclass(frozen=True)
class Pin:
    """What a confirmation card showed, so the press ships that and nothing else."""

    tag: str
    digest: str
    replaces: str
    """The task definition the service ran when the card was posted."""
    also_replaces: tuple[str, ...] = ()
    """In a release, what each of the other services ran, in catalog order."""

    @classmethod
    def of(cls, plan: DeployPlan) -> Pin:
        others = tuple(s.current_task_definition for s in plan.services[1:])
        return cls(plan.tag, plan.digest, plan.current_task_definition, others)

    def to_dict(self) -> dict[str, Any]:
        pinned: dict[str, Any] = {"tag": self.tag, "digest": self.digest, "replaces": self.replaces}
        if self.also_replaces:
            pinned["also_replaces"] = list(self.also_replaces)
        return pinned

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pin | None:
        try:
            others = tuple(str(arn) for arn in data.get("also_replaces") or ())
            return cls(str(data["tag"]), str(data["digest"]), str(data["replaces"]), others)
        except KeyError:
            return None

    def changes(self, plan: DeployPlan) -> list[str]:
        """What differs between the card and the target now; empty when the plan still holds."""
        found = []
        pinned = (self.replaces, *self.also_replaces)
        if len(plan.services) != len(pinned):
            found.append(f"{plan.target} now deploys {len(plan.services)} services, not {len(pinned)}")
        for service, arn in zip(plan.services, pinned, strict=False):
            if service.current_task_definition != arn:
                who = f"service {service.name}" if plan.is_release else str(plan.target)
                found.append(
                    f"{who} now runs revision {service.current_revision},"
                    f" not revision {revision_of(arn)} as the card showed"
                )
        if plan.digest != self.digest:
            found.append(
                f"tag `{self.tag}` now points at image {short_digest(plan.digest)},"
                f" not {short_digest(self.digest)} as the card showed"
            )
        return found


def short_digest(digest: str) -> str:
    return digest if len(digest) <= 19 else digest[:19] + "…"


@dataclass(frozen=True)
class ServicePlan:
    """One service of a deploy: what it runs now, and which of its containers get the image."""

    name: str
    ref: ServiceRef
    containers: tuple[str, ...]
    current_task_definition: str
    current_definition: dict[str, Any]
    current_image: str | None
    """The first listed container's image now."""

    @property
    def current_revision(self) -> int:
        return revision_of(self.current_task_definition)


@dataclass(frozen=True)
class DeployPlan:
    """A fully understood deploy: every name resolved and the image known to exist.

    One service, or a release of several (in catalog order); the first stands for the app
    where one is needed (the confirmation card's revision, `before_deploy`, the schedules).
    """

    target: Target
    app: App
    env: Environment
    tag: str
    image: str
    services: tuple[ServicePlan, ...]
    digest: str
    """What the tag pointed at when the plan was made: a confirmation ships exactly this."""
    promoted_from: str | None = None
    commits: CommitList | None = None
    """What ships, commit by commit, when the repository could tell (shown on the cards)."""

    @property
    def first(self) -> ServicePlan:
        return self.services[0]

    @property
    def is_release(self) -> bool:
        return len(self.services) > 1

    @property
    def service(self) -> ServiceRef:
        return self.first.ref

    @property
    def current_task_definition(self) -> str:
        return self.first.current_task_definition

    @property
    def current_definition(self) -> dict[str, Any]:
        return self.first.current_definition

    @property
    def current_image(self) -> str | None:
        return self.first.current_image

    @property
    def current_revision(self) -> int:
        return self.first.current_revision

    def label(self, service: ServicePlan) -> str | None:
        """How events name a service: by name in a release, not at all for one service."""
        return service.name if self.is_release else None


def repository_of(image: str, default_region: str) -> tuple[str, str]:
    """(region, repository name) of an ECR image reference without its tag."""
    match = ECR_IMAGE.match(image)
    if match is None:
        return default_region, image.rsplit("/", 1)[-1]
    return match.group(1), match.group(2)


# -- describe and decide -----------------------------------------------------------------


async def prepare(
    request: DeployRequest,
    deps: DeployDeps,
    *,
    image_wait_s: float = 0,
    emit: Emit | None = None,
) -> DeployPlan:
    """Resolve the request against ECS and ECR without changing anything."""
    catalog = deps.catalog
    app, env = catalog.target(request.target.app, request.target.env)
    services = await asyncio.gather(
        *(
            _service_plan(deps, entry.name, ref, tuple(app.containers_of(entry)))
            for entry, ref in catalog.release_refs(request.target.app, request.target.env)
        )
    )
    promoted_from = None
    if request.ref is None:
        promoted_from = env.promote_from
        assert promoted_from is not None, "the grammar only leaves REF out where promote_from is set"
        tag = await _promoted_tag(request.target.app, promoted_from, app.container, deps)
    else:
        tag = await _resolve_tag(request.ref, app, env, deps, catalog.region_of(env))
    image = f"{app.image}:{tag}"
    digest = await _require_image(app, env, tag, image, deps, catalog.region_of(env), image_wait_s, emit)
    return DeployPlan(
        target=request.target,
        app=app,
        env=env,
        tag=tag,
        image=image,
        services=tuple(services),
        digest=digest,
        promoted_from=promoted_from,
    )


async def _service_plan(
    deps: DeployDeps, name: str, ref: ServiceRef, containers: tuple[str, ...]
) -> ServicePlan:
    """What one service runs; refused when a container the deploy replaces is not in it."""
    current_task_definition, current, current_image = await _running(deps, ref, containers[0])
    missing = [c for c in containers if container_image(current, c) is None]
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        verb = "are" if len(missing) > 1 else "is"
        raise DeployRefused(
            f"Container{'s' if len(missing) > 1 else ''} {names} {verb} not in task definition "
            f"{current.get('family')}:{current.get('revision')} of service {ref.service}."
        )
    return ServicePlan(name, ref, containers, current_task_definition, current, current_image)


async def _running(
    deps: DeployDeps, ref: ServiceRef, container: str
) -> tuple[str, dict[str, Any], str | None]:
    """The service's task definition ARN, that definition, and `container`'s image in it."""
    service = await deps.watcher.describe(ref)
    definition = await deps.ecs.describe_task_definition(ref, service.task_definition)
    return service.task_definition, definition, container_image(definition, container)


async def _promoted_tag(app: str, source: str, container: str, deps: DeployDeps) -> str:
    _, _, image = await _running(deps, deps.catalog.service_ref(app, source), container)
    tag = tag_of(image)
    if tag is None:
        raise DeployRefused(f"Cannot tell which image {app} {source} runs, so nothing to promote.")
    return tag


async def _resolve_tag(ref: str, app: App, env: Environment, deps: DeployDeps, region: str) -> str:
    """A short git sha becomes the one ECR tag that starts with it (SPEC: REF)."""
    if app.tag_format != "{sha}" or not SHORT_SHA.match(ref):
        return ref
    repo_region, repository = repository_of(app.image, region)
    tags = await deps.ecs.image_tags(repo_region, repository, env.role_arn)
    matches = sorted(t for t in tags if t.startswith(ref))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        if ref in tags:
            return ref
        raise DeployRefused(f"No image tag in `{repository}` starts with `{ref}`.")
    shown = ", ".join(f"`{m}`" for m in matches[:5])
    raise DeployRefused(
        f"`{ref}` matches {len(matches)} tags in `{repository}`: {shown}. Give more of the sha."
    )


async def _require_image(
    app: App,
    env: Environment,
    tag: str,
    image: str,
    deps: DeployDeps,
    region: str,
    wait_s: float,
    emit: Emit | None,
) -> str:
    """The image's digest once it exists; refused when it does not (after `wait_s`)."""
    repo_region, repository = repository_of(app.image, region)
    digest = await deps.ecs.image_digest(repo_region, repository, tag, env.role_arn)
    if digest is not None:
        return digest
    if wait_s <= 0:
        raise DeployRefused(f"Image tag `{tag}` does not exist in ECR repository `{repository}`.")
    if emit is not None:
        await emit(WaitingForImage(image, int(wait_s)))
    deadline = time.monotonic() + wait_s
    delay = 2.0
    while time.monotonic() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        digest = await deps.ecs.image_digest(repo_region, repository, tag, env.role_arn)
        if digest is not None:
            return digest
        delay = min(delay * 1.5, 30.0)
    raise DeployRefused(
        f"Image tag `{tag}` did not appear in ECR repository `{repository}` within {int(wait_s)} s."
    )


# -- act and wait ------------------------------------------------------------------------


async def execute(
    plan: DeployPlan,
    deps: DeployDeps,
    emit: Emit,
    *,
    actor: str = "tugboat",
    cancel: asyncio.Event | None = None,
    expected_s: float | None = None,
) -> bool:
    """Ship the plan. Returns True on success; the last event emitted is Succeeded or Failed.

    A release registers every service's revision, runs `before_deploy` once (from the first
    service's), updates every service, then watches them all; it succeeds only when all did.
    `expected_s` is how long earlier rollouts took, so the watcher can look closely then.
    """
    ecs = deps.ecs
    await emit(ImageVerified(plan.image, plan.current_image))
    if plan.is_release:
        await emit(ReleasePlanned(tuple((s.name, s.current_task_definition) for s in plan.services)))

    new_arns: list[str] = []
    for service in plan.services:
        spec = with_images(service.current_definition, list(service.containers), plan.image)
        registered = await ecs.register_task_definition(service.ref, spec)
        new_arn = str(registered["taskDefinitionArn"])
        family, revision = str(registered["family"]), int(registered["revision"])
        new_arns.append(new_arn)
        await emit(
            TaskDefinitionRegistered(
                new_arn, family, revision, service.current_revision, plan.image, service=plan.label(service)
            )
        )

    if plan.env.before_deploy:
        snapshot = await deps.watcher.describe(plan.service)
        tasks = before_deploy_plans(
            plan.app, plan.env, plan.target, plan.service, snapshot, new_arns[0], actor
        )
        for task in tasks:
            stopped = await run_one_off(task, ecs, emit, cancel)
            if not stopped.succeeded:
                reason = failure_reason(task.name, stopped)
                unchanged = "No service was changed." if plan.is_release else "The service was not changed."
                await emit(Failed(f"{reason} {unchanged}"))
                return False
    if cancel is not None and cancel.is_set():
        await emit(Failed("Cancelled before the service was changed."))
        return False

    changes: list[Change] = []
    for service, new_arn in zip(plan.services, new_arns, strict=True):
        try:
            snapshot = await ecs.update_service(service.ref, new_arn)
        except AwsError as exc:
            if not changes:
                raise
            return await _undo(
                plan, changes, f"{service.name}: AWS refused {exc.operation}: {exc.code}", deps, emit
            )
        primary = snapshot.primary
        if primary is None or primary.task_definition != new_arn:
            why = "ECS accepted update_service but shows no PRIMARY deployment for it."
            if not changes:
                await emit(Failed(why))
                return False
            return await _undo(plan, changes, f"{service.name}: {why}", deps, emit)
        label = plan.label(service)
        gate = await started_deployment(ecs, snapshot)
        current = service.current_task_definition
        await emit(ServiceUpdated(primary.id, new_arn, current, service=label, service_deployment=gate))
        changes.append(Change(label, service.ref, current, new_arn, primary.id, snapshot, gate))

    outcomes = await watch_all(
        changes,
        ecs,
        deps.watcher,
        plan.env.timeout,
        emit,
        cancel=cancel,
        expected_s=expected_s,
        roll_back_when_stopped=plan.env.rollback_on_failure,
    )
    if plan.is_release:
        return await finish_release(plan.target, plan.env, changes, outcomes, deps, emit)
    change, outcome = changes[0], outcomes[0]
    return await finish(
        plan.target,
        plan.env,
        plan.current_task_definition,
        change.deployment_id,
        new_arns[0],
        outcome,
        deps,
        emit,
    )


async def _undo(plan: DeployPlan, changes: list[Change], reason: str, deps: DeployDeps, emit: Emit) -> bool:
    """A release could not update every service: the ones it did update go back, and it fails."""
    updated = [RolloutOutcome(True, "updated") for _ in changes]
    await fail_release(plan.env, changes, updated, deps, emit, reason=reason)
    return False


async def finish_release(
    target: Target,
    env: Environment,
    changes: list[Change],
    outcomes: list[RolloutOutcome],
    deps: DeployDeps,
    emit: Emit,
) -> bool:
    """Every service succeeded: the schedules follow (the first service's revision, which runs
    the app's image), then Succeeded. Otherwise the whole release goes back."""
    if all(outcome.ok for outcome in outcomes):
        summary = release_summary(changes, outcomes, "Release is live")
        await schedules_action.succeed(
            deps.catalog, target, changes[0].task_definition, summary, deps.ecs, deps.schedules, emit
        )
        return True
    await fail_release(env, changes, outcomes, deps, emit)
    return False


async def finish(
    target: Target,
    env: Environment,
    previous_task_definition: str,
    deployment_id: str,
    new_task_definition: str,
    outcome: RolloutOutcome,
    deps: DeployDeps,
    emit: Emit,
) -> bool:
    """Report success (once the schedules follow), or explain the failure and go back."""
    if outcome.ok:
        summary = f"Revision {revision_of(new_task_definition)} is live: {outcome.reason}."
        await schedules_action.succeed(
            deps.catalog, target, new_task_definition, summary, deps.ecs, deps.schedules, emit
        )
        return True
    ref = outcome.snapshot.ref if outcome.snapshot else None
    details: tuple[str, ...] = ()
    if ref is not None:
        stopped = await safely(stopped_task_reasons(deps.ecs, ref, deployment_id))
        if stopped is not None and stopped.reasons:
            await emit(stopped)
            details = stopped.reasons
    if ref is not None and outcome.ecs_rollback is not None:
        await follow_ecs_rollback(env, ref, outcome, deps, emit)
    elif ref is not None and env.rollback_on_failure and not outcome.settled_by_ecs:
        await roll_back(env, ref, previous_task_definition, outcome.reason, deps, emit)
    await emit(Failed(outcome.reason, details))
    return False
