"""Following a blue/green, linear or canary deployment, and the rule that decides how it ended.

Such a service deploys through lifecycle stages (SPEC part two, "Blue/green and canary"):
the thread hears each stage, the traffic on the new revision and the bake time, and each PAUSE
hook becomes a gate that people answer from the thread. The verdict is the service
deployment's own status: SUCCESSFUL is success; a rollback or a stop is a failure that says
why. ECS goes back by itself (its native rollback), so Tugboat never updates the service again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection
from dataclasses import dataclass

from bot.domain.aws import AwsError, ServiceRef, ServiceSnapshot, revision_of
from bot.domain.events import Emit, GateAnswered, GatePaused, RolledBack, RollingBack, StageReached
from bot.domain.gates import (
    ROLLBACK,
    ROLLBACK_ENDS,
    ROLLED_BACK,
    SUCCESS,
    Hook,
    ServiceDeploymentState,
    gated,
    traffic_words,
)
from bot.domain.ports import DeploymentSubscription, Ecs, Watcher
from commands.wait import RolloutOutcome

HOOK_ENDINGS = {
    "SUCCEEDED": "continued",
    "FAILED": "rolled back",
    "TIMED_OUT": "timed out",
}
"""How a hook that stopped awaiting ended, as the thread says it."""
ANSWERS = frozenset({"SUCCEEDED", "FAILED"})
"""Hook statuses that someone's answer (CONTINUE, ROLLBACK) leaves, not its timeout."""


@dataclass(frozen=True)
class GatedWait:
    """What following one service deployment needs beyond the ports."""

    ref: ServiceRef
    arn: str
    task_definition: str
    previous_task_definition: str
    timeout_s: float
    service: str | None = None
    """The service's name in a thread about several services; None when there is one."""
    announced: Collection[str] = ()
    """Pauses whose reply is already in the thread (a resumed operation posts none again)."""
    roll_back_when_stopped: bool = True
    """On timeout or cancel, ask ECS to roll back (StopServiceDeployment ROLLBACK)."""


async def started_deployment(ecs: Ecs, snapshot: ServiceSnapshot) -> str | None:
    """The service deployment update_service just started, for a blue/green, linear or canary
    service (the service names it, else the newest unfinished one); None for a rolling one."""
    if not gated(snapshot.raw.get("deploymentConfiguration")):
        return None
    current = snapshot.raw.get("currentServiceDeployment")
    if current:
        return str(current)
    unfinished = await ecs.service_deployments(snapshot.ref, in_progress=True)
    return unfinished[0] if unfinished else None


async def wait_for_deployment(
    watcher: Watcher,
    ecs: Ecs,
    wait: GatedWait,
    emit: Emit,
    *,
    cancel: asyncio.Event | None = None,
) -> RolloutOutcome:
    """Follow the deployment to its end, emitting stages, traffic and pauses as they come.

    The timeout does not run while a pause awaits people: the hook's own timeout governs then.
    """
    deadline = time.monotonic() + wait.timeout_s
    announced = set(wait.announced)
    shown: tuple[str | None, float | None] | None = None
    paused_since: float | None = None
    last: ServiceDeploymentState | None = None
    async with watcher.follow_deployment(wait.ref, wait.arn) as subscription:
        while True:
            now = time.monotonic()
            if paused_since is not None:
                deadline, paused_since = deadline + (now - paused_since), now
            if now >= deadline:
                why = f"timed out after {int(wait.timeout_s)} s"
                return await _stop(subscription, ecs, wait, emit, last, why)
            if cancel is not None and cancel.is_set():
                why = "Cancelled from Slack during the rollout."
                return await _stop(subscription, ecs, wait, emit, last, why)
            state = await subscription.next(min(deadline - now, 1.0))
            if state is None:
                continue
            last = state
            if (state.stage, state.production_weight) != shown and state.stage and not state.ended:
                shown = (state.stage, state.production_weight)
                await emit(StageReached(state.stage, traffic_words(state), _bake_s(state), wait.service))
            for hook in state.hooks:
                if hook.awaiting and hook.hook_id not in announced:
                    announced.add(hook.hook_id)
                    await emit(_paused(state, hook, wait.service))
                elif not hook.awaiting and hook.hook_id in announced:
                    announced.discard(hook.hook_id)
                    await emit(GateAnswered(hook.hook_id, _ending(hook), hook.status in ANSWERS))
            paused_since = (paused_since or time.monotonic()) if state.awaiting else None
            if state.rolling_back or state.ended:
                return await _ended(subscription, wait, emit, state, announced)


def _paused(state: ServiceDeploymentState, hook: Hook, service: str | None) -> GatePaused:
    return GatePaused(
        hook.hook_id,
        state.arn,
        state.stage or "PENDING",
        traffic_words(state),
        hook.expires_at,
        hook.timeout_action,
        service,
    )


def _ending(hook: Hook) -> str:
    ending = HOOK_ENDINGS.get(hook.status, hook.status.lower().replace("_", " "))
    if hook.status == "TIMED_OUT" and hook.timeout_action:
        ending += ": ECS " + ("rolled back" if hook.timeout_action == ROLLBACK else "continued")
    return ending


def _bake_s(state: ServiceDeploymentState) -> int | None:
    return state.bake_minutes * 60 if state.stage == "BAKE_TIME" and state.bake_minutes else None


async def _ended(
    subscription: DeploymentSubscription,
    wait: GatedWait,
    emit: Emit,
    state: ServiceDeploymentState,
    announced: set[str],
) -> RolloutOutcome:
    """Success, or ECS's own way back followed to its end (the old revision serves again)."""
    for hook_id in sorted(announced):
        await emit(GateAnswered(hook_id, "ended with the deployment"))
    if state.status == SUCCESS:
        return RolloutOutcome(True, _live(state))
    revision = revision_of(wait.previous_task_definition)
    if state.rolling_back or state.status in ROLLBACK_ENDS:  # not STOPPED (aborted)
        await emit(RollingBack(revision, state.why, by_ecs=True, service=wait.service))
    final = (await _until_ended(subscription, wait) or state) if state.rolling_back else state
    if final.status in ROLLBACK_ENDS:
        back = final.status == ROLLED_BACK
        await emit(RolledBack(revision, completed=back, by_ecs=True, service=wait.service))
    return RolloutOutcome(False, state.why, settled_by_ecs=True)


async def _until_ended(
    subscription: DeploymentSubscription, wait: GatedWait
) -> ServiceDeploymentState | None:
    """Follow ECS's rollback to its end (bounded by the operation's timeout)."""
    deadline = time.monotonic() + wait.timeout_s
    while (remaining := deadline - time.monotonic()) > 0:
        state = await subscription.next(min(remaining, 1.0))
        if state is not None and state.ended:
            return state
    return None


async def _stop(
    subscription: DeploymentSubscription,
    ecs: Ecs,
    wait: GatedWait,
    emit: Emit,
    last: ServiceDeploymentState | None,
    reason: str,
) -> RolloutOutcome:
    """Timed out or cancelled mid-deployment: ask ECS for its own rollback and follow it."""
    if not wait.roll_back_when_stopped or (last is not None and last.ended):
        return RolloutOutcome(False, reason, settled_by_ecs=last is not None and last.ended)
    revision = revision_of(wait.previous_task_definition)
    await emit(RollingBack(revision, reason, by_ecs=True, service=wait.service))
    try:
        await ecs.stop_service_deployment(wait.ref, wait.arn, ROLLBACK)
    except AwsError as exc:
        await emit(RolledBack(revision, completed=False, by_ecs=True, service=wait.service))
        why = f"{reason} ECS refused the rollback: {exc.aws_message}"
        return RolloutOutcome(False, why, settled_by_ecs=True)
    subscription.look_now()
    final = await _until_ended(subscription, wait)
    back = final is not None and final.status == ROLLED_BACK
    await emit(RolledBack(revision, completed=back, by_ecs=True, service=wait.service))
    return RolloutOutcome(False, reason, settled_by_ecs=True)


def _live(state: ServiceDeploymentState) -> str:
    return f"{state.strategy.replace('_', '/').lower()} deployment SUCCESSFUL"


# -- going back natively -------------------------------------------------------------------


async def rollback_candidate(ecs: Ecs, snapshot: ServiceSnapshot) -> ServiceDeploymentState | None:
    """The service's blue/green deployment that `/rollback` sends back natively: one that is
    paused or baking (ECS still holds the old revision ready); None otherwise."""
    if not gated(snapshot.raw.get("deploymentConfiguration")):
        return None
    current = snapshot.raw.get("currentServiceDeployment")
    arns = [str(current)] if current else await ecs.service_deployments(snapshot.ref, in_progress=True)
    state = await ecs.describe_service_deployment(snapshot.ref, arns[0]) if arns else None
    if state is None or state.ended or state.rolling_back:
        return None
    return state if state.awaiting is not None or state.stage == "BAKE_TIME" else None


async def roll_back_natively(ecs: Ecs, ref: ServiceRef, state: ServiceDeploymentState) -> str:
    """ECS's own way back: answer the waiting pause with ROLLBACK, else stop with rollback.

    Returns the call made, for the audit trail and the reply."""
    hook = state.awaiting
    if hook is not None:
        await ecs.continue_service_deployment(ref, state.arn, hook.hook_id, ROLLBACK)
        return f"ContinueServiceDeployment ROLLBACK (hook {hook.hook_id})"
    await ecs.stop_service_deployment(ref, state.arn, ROLLBACK)
    return "StopServiceDeployment ROLLBACK"
