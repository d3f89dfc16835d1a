"""Deploy: ship an image tag to an app's ECS service (SPEC, deploy semantics).

Reads top-down like ecspresso's deploy.go: describe what runs now, decide what to ship,
act (register a revision, run before_deploy tasks, update the service), then wait, and on
failure go back. `prepare` only reads; `execute` is the first to write.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.domain.aws import AwsError, ServiceRef, revision_of
from bot.domain.catalog import App, Catalog, Environment
from bot.domain.events import (
    Emit,
    Failed,
    ImageVerified,
    RolledBack,
    RollingBack,
    ServiceUpdated,
    TaskDefinitionRegistered,
    WaitingForImage,
)
from bot.domain.ports import Ecs, Schedules, Watcher
from bot.domain.records import Target
from commands import schedules as schedules_action
from commands.grammar import DeployRequest
from commands.run_task import before_deploy_plans, failure_reason, run_one_off
from commands.taskdef import container_image, tag_of, with_image
from commands.wait import RolloutOutcome, stopped_task_reasons, wait_for_rollout

T = TypeVar("T")
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

    @classmethod
    def of(cls, plan: DeployPlan) -> Pin:
        return cls(plan.tag, plan.digest, plan.current_task_definition)

    def to_dict(self) -> dict[str, str]:
        return {"tag": self.tag, "digest": self.digest, "replaces": self.replaces}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pin | None:
        try:
            return cls(str(data["tag"]), str(data["digest"]), str(data["replaces"]))
        except KeyError:
            return None

    def changes(self, plan: DeployPlan) -> list[str]:
        """What differs between the card and the target now; empty when the plan still holds."""
        found = []
        if plan.current_task_definition != self.replaces:
            found.append(
                f"{plan.target} now runs revision {plan.current_revision},"
                f" not revision {revision_of(self.replaces)} as the card showed"
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
class DeployDeps:
    """What a deploy needs, passed in by name."""

    ecs: Ecs
    watcher: Watcher
    catalog: Catalog
    schedules: Schedules


@dataclass(frozen=True)
class DeployPlan:
    """A fully understood deploy: every name resolved and the image known to exist."""

    target: Target
    service: ServiceRef
    app: App
    env: Environment
    tag: str
    image: str
    current_task_definition: str
    current_definition: dict[str, Any]
    current_image: str | None
    digest: str
    """What the tag pointed at when the plan was made: a confirmation ships exactly this."""
    promoted_from: str | None = None

    @property
    def current_revision(self) -> int:
        return revision_of(self.current_task_definition)


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
    ref = catalog.service_ref(request.target.app, request.target.env)
    current_task_definition, current, current_image = await _running(deps, ref, app.container)
    if current_image is None:
        raise DeployRefused(
            f"Container `{app.container}` is not in task definition "
            f"{current.get('family')}:{current.get('revision')} of service {ref.service}."
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
        service=ref,
        app=app,
        env=env,
        tag=tag,
        image=image,
        current_task_definition=current_task_definition,
        current_definition=current,
        current_image=current_image,
        digest=digest,
        promoted_from=promoted_from,
    )


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

    `expected_s` is how long earlier rollouts took, so the watcher can look closely then.
    """
    ecs, ref = deps.ecs, plan.service
    await emit(ImageVerified(plan.image, plan.current_image))

    spec = with_image(plan.current_definition, plan.app.container, plan.image)
    registered = await ecs.register_task_definition(ref, spec)
    new_arn = str(registered["taskDefinitionArn"])
    family, revision = str(registered["family"]), int(registered["revision"])
    await emit(TaskDefinitionRegistered(new_arn, family, revision, plan.current_revision, plan.image))

    if plan.env.before_deploy:
        snapshot = await deps.watcher.describe(ref)
        tasks = before_deploy_plans(plan.app, plan.env, plan.target, ref, snapshot, new_arn, actor)
        for task in tasks:
            stopped = await run_one_off(task, ecs, emit, cancel)
            if not stopped.succeeded:
                reason = failure_reason(task.name, stopped)
                await emit(Failed(f"{reason} The service was not changed."))
                return False
    if cancel is not None and cancel.is_set():
        await emit(Failed("Cancelled before the service was changed."))
        return False

    service = await ecs.update_service(ref, new_arn)
    primary = service.primary
    if primary is None or primary.task_definition != new_arn:
        await emit(Failed("ECS accepted update_service but shows no PRIMARY deployment for it."))
        return False
    await emit(ServiceUpdated(primary.id, new_arn, plan.current_task_definition))

    outcome = await wait_for_rollout(
        deps.watcher,
        ref,
        primary.id,
        new_arn,
        plan.env.timeout,
        emit,
        seen_events={e.id for e in service.events},
        cancel=cancel,
        expected_s=expected_s,
        known=service,
    )
    return await finish(
        plan.target, plan.env, plan.current_task_definition, primary.id, new_arn, outcome, deps, emit
    )


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
        stopped = await _safely(stopped_task_reasons(deps.ecs, ref, deployment_id))
        if stopped is not None and stopped.reasons:
            await emit(stopped)
            details = stopped.reasons
    if ref is not None and outcome.ecs_rollback is not None:
        await _follow_ecs_rollback(env, ref, outcome, deps, emit)
    elif ref is not None and env.rollback_on_failure:
        await roll_back(env, ref, previous_task_definition, outcome.reason, deps, emit)
    await emit(Failed(outcome.reason, details))
    return False


async def _follow_ecs_rollback(
    env: Environment, ref: ServiceRef, outcome: RolloutOutcome, deps: DeployDeps, emit: Emit
) -> None:
    rollback = outcome.ecs_rollback
    assert rollback is not None
    revision = revision_of(rollback.task_definition)
    await emit(
        RollingBack(revision, "ECS's deployment circuit breaker rolled the deployment back", by_ecs=True)
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
    )
    await emit(RolledBack(revision, completed=after.ok, by_ecs=True))


async def roll_back(
    env: Environment,
    ref: ServiceRef,
    task_definition: str,
    reason: str,
    deps: DeployDeps,
    emit: Emit,
) -> bool:
    """Put the service back on an earlier revision and watch that too."""
    revision = revision_of(task_definition)
    await emit(RollingBack(revision, reason))
    try:
        service = await deps.ecs.update_service(ref, task_definition)
    except AwsError as exc:
        await emit(RolledBack(revision, completed=False))
        raise exc from None
    primary = service.primary
    if primary is None:
        await emit(RolledBack(revision, completed=False))
        return False
    after = await wait_for_rollout(
        deps.watcher,
        ref,
        primary.id,
        task_definition,
        env.timeout,
        emit,
        seen_events={e.id for e in service.events},
        known=service,
    )
    await emit(RolledBack(revision, completed=after.ok))
    return after.ok


async def _safely(awaitable: Awaitable[T]) -> T | None:
    """Extra detail for a failure report must not turn into a second failure."""
    try:
        return await awaitable
    except AwsError:
        return None
