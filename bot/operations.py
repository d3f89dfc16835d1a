"""OperationRunner: turns an understood request into one tracked, recorded operation.

It checks (permission, lock, busy target, image), claims the target atomically in the store,
writes the record before the first ECS write, opens the thread, and runs the action in a
task it tracks, so shutdown can wait for it and a restart can resume it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from bot import metrics
from bot.aws.ecs import EcsGateway
from bot.aws.watcher import RolloutWatcher
from bot.domain.aws import AwsError
from bot.domain.catalog import Catalog, who
from bot.domain.events import (
    Failed,
    Note,
    ProgressEvent,
    RollingBack,
    ServiceUpdated,
    Started,
    Succeeded,
    TaskDefinitionRegistered,
    TaskStarted,
)
from bot.domain.records import Lock, OperationRecord, Target
from bot.permissions import GroupDirectory, Permissions
from bot.report.view import ThreadView
from bot.slack.api import SlackApi
from bot.slack.confirm import confirmation_blocks
from bot.slack.thread import ThreadReporter
from bot.state import StateStore
from commands import deploy as deploy_action
from commands import rollback as rollback_action
from commands import run_task as run_task_action
from commands.grammar import (
    DeployRequest,
    HistoryRequest,
    LockRequest,
    RollbackRequest,
    RunTaskRequest,
    UnlockRequest,
)

log = logging.getLogger(__name__)


class Reply(Protocol):
    """Tells the requester something privately (an ephemeral message), with optional blocks."""

    async def __call__(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None: ...


CONFIRM_TTL_S = 600.0

LEASE_S = 60.0


@dataclass(frozen=True)
class Origin:
    """Who asked, from where, and how."""

    actor: str
    channel: str
    trigger: str = "slash command"
    thread_ts: str | None = None


class TaskTracker:
    """Every task the bot starts, so none is lost and shutdown can wait for all of them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", exc_info=task.exception(), extra={"task": task.get_name()})

    def __len__(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until no tracked task is left (tasks may start others meanwhile)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def cancel_all(self, timeout: float) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


class OperationRunner:
    """Starts, tracks and resumes operations. Everything it needs is passed in."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        ecs: EcsGateway,
        watcher: RolloutWatcher,
        store: StateStore,
        slack: SlackApi,
        tracker: TaskTracker | None = None,
        owner: str | None = None,
        thread_interval_s: float = 3.0,
        lease_s: float = LEASE_S,
    ) -> None:
        self.catalog = catalog
        self.ecs = ecs
        self.watcher = watcher
        self.store = store
        self.slack = slack
        self.tracker = tracker if tracker is not None else TaskTracker()
        self.owner = owner or os.environ.get("TUGBOAT_REPLICA_ID") or socket.gethostname()
        self.thread_interval_s = thread_interval_s
        self.lease_s = lease_s
        self.accepting = True
        self._running: dict[str, OperationRecord] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self.permissions = Permissions(catalog, GroupDirectory(slack))

    @property
    def deploy_deps(self) -> deploy_action.DeployDeps:
        return deploy_action.DeployDeps(self.ecs, self.watcher, self.catalog)

    def in_flight(self) -> int:
        return len(self._running)

    def is_running(self, op_id: str) -> bool:
        return op_id in self._running

    # -- checks ----------------------------------------------------------------------------

    async def authorize(self, target: Target, origin: Origin, *, write: bool = True) -> str | None:
        """Why `origin` may not act on (or read) `target`, or None; refusals are audited."""
        refusal = await self.permissions.check(target, origin.actor, origin.channel, write=write)
        if refusal is not None:
            await self.audit(origin, "refused", target, refusal)
        return refusal

    async def audit(self, origin: Origin, what: str, target: Target | None, outcome: str) -> None:
        await write_audit(self.store, origin.actor, what, target, origin.channel, origin.trigger, outcome)

    async def busy_or_locked(self, target: Target) -> str | None:
        lock = await self.store.get_lock(target.app, target.env)
        if lock is not None:
            return _lock_text(target, lock)
        running = await self.store.active_on(target.app, target.env)
        if running is not None:
            return _busy_text(target, running)
        return None

    # -- deploy ----------------------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tracker.spawn(coro, name)

    async def deploy(
        self, request: DeployRequest, origin: Origin, reply: Reply, *, confirmed_by: str | None = None
    ) -> OperationRecord | None:
        """Check, prepare, (ask to confirm,) claim, open the thread and start the rollout."""
        target = request.target
        refusal = await self.authorize(target, origin)
        lock = None
        if refusal is None:
            lock = await self.store.get_lock(target.app, target.env)
            if lock is not None and not request.force:
                refusal = _lock_text(target, lock) + " (`--force` deploys anyway.)"
        if refusal is None and (running := await self.store.active_on(target.app, target.env)) is not None:
            refusal = _busy_text(target, running)
        if refusal is not None:
            await reply(refusal)
            return None
        try:
            plan = await deploy_action.prepare(request, self.deploy_deps)
        except (deploy_action.DeployRefused, AwsError) as exc:
            await reply(f"Not deploying {target}: {exc}")
            return None
        if plan.env.confirm and confirmed_by is None:
            await self._ask_to_confirm(request, plan, origin, reply, lock)
            return None
        record = OperationRecord(
            action="deploy",
            app=target.app,
            env=target.env,
            actor=origin.actor,
            subject=plan.tag,
            trigger=origin.trigger,
            owner=self.owner,
            previous_task_definition=plan.current_task_definition,
            channel=plan.env.channel or origin.channel,
        )
        holder = await self.store.claim_target(record, self.lease_s)
        if holder is not None:
            await reply(_busy_text(target, holder))
            return None
        reporter = await self.open_thread(record)
        await reply(f"Deploying {target} `{plan.tag}`: {reporter.permalink}")
        if lock is not None:
            await self.audit(origin, "force", target, f"deployed through lock by {lock.holder}")
        if confirmed_by is not None:
            reporter.say(f"Confirmed by <@{confirmed_by}>.")
        self.tracker.spawn(self._run_deploy(record, plan, reporter, lock), f"deploy-{record.id}")
        return record

    async def _ask_to_confirm(
        self,
        request: DeployRequest,
        plan: deploy_action.DeployPlan,
        origin: Origin,
        reply: Reply,
        lock: Lock | None,
    ) -> None:
        pending = self._record("deploy", request.target, origin, plan.tag)
        pending.state, pending.phase, pending.channel = "pending", "awaiting confirmation", origin.channel
        pending.extra = {"ref": request.ref, "force": request.force}
        await self.store.save(pending)
        await self.audit(origin, "deploy requested", request.target, "awaiting confirmation")
        text, blocks = confirmation_blocks(pending.id, plan, lock, CONFIRM_TTL_S)
        try:
            pending.ts = await self.slack.post(origin.channel, text, blocks)
        except Exception:
            log.info(
                "confirmation not postable in channel; sent privately", extra={"channel": origin.channel}
            )
            await reply(text, blocks)
            return
        await self.store.save(pending)

    async def _settle_confirmation(self, pending: OperationRecord, outcome: str) -> None:
        """Replace the confirmation's buttons with what became of it."""
        if pending.ts is None or pending.channel is None:
            return
        what = f"Deploy {pending.app} {pending.env} `{pending.subject}`"
        text = f"{what} requested by <@{pending.actor}>: {outcome}"
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        with contextlib.suppress(Exception):
            await self.slack.update(pending.channel, pending.ts, text, blocks)

    async def confirm(self, pending_id: str, origin: Origin, reply: Reply, *, accept: bool) -> None:
        """A Deploy or Cancel click on a confirmation: only the requester or an allowed user."""
        pending = await self.store.get(pending_id)
        if pending is None or pending.state != "pending":
            await reply("That confirmation was already used or cancelled; nothing changed.")
            return
        target = Target(pending.app, pending.env)
        if origin.actor != pending.actor:
            refusal = await self.authorize(target, origin)
            if refusal is not None:
                await reply(f"Only <@{pending.actor}> or someone allowed on {target} can confirm. {refusal}")
                return
        if time.time() - pending.created_at > CONFIRM_TTL_S:
            pending.state, pending.reason = "expired", "not confirmed within 10 minutes"
            await self.store.save(pending)
            await self.audit(origin, "confirm", target, "expired")
            await self._settle_confirmation(pending, "expired, nothing changed.")
            await reply("That confirmation expired after 10 minutes; nothing changed. Run the command again.")
            return
        pending.state = "confirmed" if accept else "cancelled"
        pending.ended_at = time.time()
        await self.store.save(pending)
        await self.audit(origin, "confirm" if accept else "cancel", target, pending.state)
        verdict = "confirmed" if accept else "cancelled, nothing changed."
        await self._settle_confirmation(pending, f"{verdict} by <@{origin.actor}>")
        if not accept:
            await reply(f"Cancelled the deploy of `{pending.subject}` to {target}; nothing changed.")
            return
        request = DeployRequest(target, pending.extra.get("ref"), bool(pending.extra.get("force")))
        requester = Origin(pending.actor, pending.channel or origin.channel, pending.trigger)
        await self.deploy(request, requester, reply, confirmed_by=origin.actor)

    async def rollback(
        self,
        request: RollbackRequest,
        origin: Origin,
        reply: Reply,
        *,
        to_task_definition: str | None = None,
    ) -> OperationRecord | None:
        """Check, find the revision to go back to, claim, and roll back in a tracked task."""
        target = request.target
        refusal = await self.authorize(target, origin) or await self.busy_or_locked(target)
        if refusal is not None:
            await reply(refusal)
            return None
        history = await self.store.history(target.app, target.env, 50)
        try:
            plan = await rollback_action.prepare(
                request, self.ecs, self.catalog, history, to_task_definition=to_task_definition
            )
        except (rollback_action.RollbackRefused, AwsError) as exc:
            await reply(f"Not rolling back {target}: {exc}")
            return None
        record = self._record("rollback", target, origin, f"rev {plan.revision}")
        record.previous_task_definition = plan.current_task_definition
        record.channel = plan.env.channel or origin.channel
        holder = await self.store.claim_target(record, self.lease_s)
        if holder is not None:
            await reply(_busy_text(target, holder))
            return None
        reporter = await self.open_thread(record)
        await reply(f"Rolling back {target} to revision {plan.revision}: {reporter.permalink}")
        cancel = self.cancel_event(record)
        emit = self.emitter(record, reporter)

        async def body() -> None:
            await emit(Started("rollback", target.app, target.env, origin.actor, record.subject))
            await rollback_action.execute(plan, self.deploy_deps, emit, cancel)

        self.tracker.spawn(self.run(record, reporter, body), f"rollback-{record.id}")
        return record

    async def run_task(self, request: RunTaskRequest, origin: Origin, reply: Reply) -> OperationRecord | None:
        """Run a catalog task as a one-off ECS task, in its own thread."""
        target = request.target
        refusal = await self.authorize(target, origin)
        if refusal is not None:
            await reply(refusal)
            return None
        try:
            plan = await run_task_action.prepare(request, self.ecs, self.catalog, origin.actor)
        except AwsError as exc:
            await reply(f"Not running `{request.task}` on {target}: {exc}")
            return None
        _, env = self.catalog.target(target.app, target.env)
        subject = " ".join((request.task, *request.args))
        record = self._record("run-task", target, origin, subject)
        record.channel = env.channel or origin.channel
        record.task_definition = plan.task_definition
        await self.store.save(record)
        await self.store.renew_claim(record, self.lease_s)  # leased from the start: no early takeover
        reporter = await self.open_thread(record)
        await reply(f"Running `{subject}` on {target}: {reporter.permalink}")
        cancel = self.cancel_event(record)
        emit = self.emitter(record, reporter)

        async def body() -> None:
            await emit(Started("run-task", target.app, target.env, origin.actor, subject))
            await run_task_action.execute(plan, self.ecs, emit, cancel)

        self.tracker.spawn(self.run(record, reporter, body), f"run-task-{record.id}")
        return record

    def _record(self, action: str, target: Target, origin: Origin, subject: str) -> OperationRecord:
        return OperationRecord(
            action=action,
            app=target.app,
            env=target.env,
            actor=origin.actor,
            subject=subject,
            trigger=origin.trigger,
            owner=self.owner,
        )

    def cancel_event(self, record: OperationRecord) -> asyncio.Event:
        event = asyncio.Event()
        self._cancels[record.id] = event
        return event

    async def cancel(self, op_id: str, origin: Origin, reply: Reply) -> None:
        """The Cancel button: stop a one-off task, or stop a rollout and roll it back."""
        record = self._running.get(op_id) or await self.store.get(op_id)
        if record is None or record.finished:
            await reply("That operation has already finished; there is nothing to cancel.")
            return
        refusal = await self.authorize(Target(record.app, record.env), origin)
        if refusal is not None:
            await reply(refusal)
            return
        event = self._cancels.get(op_id)
        if event is None:
            await reply("That operation is not running on this replica; try again in a moment.")
            return
        event.set()
        await reply(f"Cancelling the {record.action} of `{record.subject}` on {record.app} {record.env}.")

    async def lock(self, request: LockRequest, origin: Origin, reply: Reply) -> None:
        """Hold a target: deploys, rollbacks and auto-deploys are refused until unlock."""
        target = request.target
        refusal = await self.authorize(target, origin)
        if refusal is not None:
            await reply(refusal)
            return
        now = time.time()
        expires = now + request.seconds if request.seconds else None
        lock = Lock(target.app, target.env, origin.actor, request.reason, now, expires)
        existing = await self.store.lock(lock)
        if existing is not None:
            await reply(_lock_text(target, existing))
            return
        await self.audit(origin, "lock", target, request.reason)
        await self._announce(
            target,
            origin,
            f":lock: <@{origin.actor}> locked {target}{_until(expires)}: {request.reason}",
        )
        await reply(f"Locked {target}.")

    async def unlock(self, request: UnlockRequest, origin: Origin, reply: Reply) -> None:
        target = request.target
        refusal = await self.authorize(target, origin)
        if refusal is not None:
            await reply(refusal)
            return
        removed = await self.store.unlock(target.app, target.env)
        if removed is None:
            await reply(f"{target} was not locked.")
            return
        await self.audit(origin, "unlock", target, f"was locked by {removed.holder}: {removed.reason}")
        await self._announce(target, origin, f":unlock: <@{origin.actor}> unlocked {target}.")
        await reply(f"Unlocked {target}.")

    async def _announce(self, target: Target, origin: Origin, text: str) -> None:
        _, env = self.catalog.target(target.app, target.env)
        try:
            await self.slack.post(env.channel or origin.channel, text)
        except Exception:
            log.warning("could not announce", extra={"target": str(target)})

    async def history(self, request: HistoryRequest, origin: Origin) -> list[OperationRecord] | str:
        """The last 10 deploys and rollbacks, or the refusal."""
        refusal = await self.authorize(request.target, origin, write=False)
        if refusal is not None:
            return refusal
        records = await self.store.history(request.target.app, request.target.env, 50)
        shown = ("running", "succeeded", "failed")
        return [r for r in records if r.action in ("deploy", "rollback") and r.state in shown][:10]

    async def expected_duration(self, app: str, env: str) -> float | None:
        """The median length of the last few successful deploys of a target, if any."""
        records = await self.store.history(app, env, 20)
        recent = [
            r.ended_at - r.created_at
            for r in records
            if r.action == "deploy" and r.state == "succeeded" and r.ended_at is not None
        ][:5]
        took = sorted(recent)
        return took[len(took) // 2] if took else None

    async def open_thread(self, record: OperationRecord) -> ThreadReporter:
        """Post the parent message for a claimed record and save where it lives."""
        view = view_of(record)
        assert record.channel is not None
        reporter = ThreadReporter(self.slack, record.channel, view, min_interval_s=self.thread_interval_s)
        try:
            record.ts = await reporter.open()
        except Exception:
            record.state, record.reason = "failed", "could not post the Slack thread"
            await self.store.save(record)
            await self.store.release_target(record)
            raise
        record.permalink = reporter.permalink
        await self.store.save(record)
        return reporter

    async def _run_deploy(
        self,
        record: OperationRecord,
        plan: deploy_action.DeployPlan,
        reporter: ThreadReporter,
        lock: Lock | None,
    ) -> None:
        emit = self.emitter(record, reporter)

        cancel = self.cancel_event(record)

        async def body() -> None:
            await emit(Started("deploy", record.app, record.env, record.actor, plan.tag, record.trigger))
            if lock is not None:
                holder = f"<@{lock.holder}>: {lock.reason}"
                await emit(Note(f"Forced through the lock held by {holder}", loud=True))
            expected = await self.expected_duration(record.app, record.env)
            await deploy_action.execute(
                plan, self.deploy_deps, emit, actor=record.actor, cancel=cancel, expected_s=expected
            )

        await self.run(record, reporter, body)

    # -- running ---------------------------------------------------------------------------

    def emitter(
        self, record: OperationRecord, reporter: ThreadReporter
    ) -> Callable[[ProgressEvent], Awaitable[None]]:
        return record_keeping(self.store, record, reporter)

    async def run(
        self,
        record: OperationRecord,
        reporter: ThreadReporter,
        body: Callable[[], Awaitable[None]],
    ) -> None:
        """Run an action to its final event, whatever happens; release the target after."""
        self._running[record.id] = record
        metrics.IN_FLIGHT.set(len(self._running))
        started = time.monotonic()
        heartbeat = asyncio.create_task(
            keep_lease(self.store, record, self.lease_s), name=f"lease-{record.id}"
        )
        interrupted = False
        emit = self.emitter(record, reporter)
        try:
            await body()
        except asyncio.CancelledError:
            interrupted = True
            raise
        except AwsError as exc:
            await emit(Failed(f"AWS refused {exc.operation}: {exc.code}: {exc.aws_message}"))
        except Exception as exc:
            log.exception("operation crashed", extra={"op": record.id})
            await emit(
                Failed(f"Tugboat hit an internal error ({type(exc).__name__}); nothing further was changed.")
            )
        finally:
            heartbeat.cancel()
            if interrupted:
                await reporter.abandon()
            else:
                if not record.finished:
                    await emit(Failed("The operation ended without a result."))
                await reporter.close()
                await self.store.release_target(record)
                metrics.DEPLOYS.labels(record.action, record.app, record.env, record.state).inc()
                metrics.DEPLOY_SECONDS.labels(record.action).observe(time.monotonic() - started)
                log.info(
                    "operation finished",
                    extra={
                        "op": record.id,
                        "action": record.action,
                        "app": record.app,
                        "env": record.env,
                        "result": record.state,
                        "actor": record.actor,
                    },
                )
            self._running.pop(record.id, None)
            self._cancels.pop(record.id, None)
            metrics.IN_FLIGHT.set(len(self._running))

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop taking work; interrupt running operations, which stay recorded for resume."""
        self.accepting = False
        await self.tracker.cancel_all(timeout)


async def write_audit(
    store: StateStore,
    actor: str,
    what: str,
    target: Target | None,
    channel: str | None,
    trigger: str,
    outcome: str,
) -> None:
    """One audit record per action and refusal: in the store, and as one JSON log line."""
    entry = {
        "who": actor,
        "what": what,
        "where": str(target) if target else None,
        "channel": channel,
        "trigger": trigger,
        "outcome": outcome,
        "at": time.time(),
    }
    log.info("audit", extra={f"audit_{k}": v for k, v in entry.items() if k != "at"})
    with contextlib.suppress(Exception):
        await store.audit(entry)


def record_keeping(
    store: StateStore,
    record: OperationRecord,
    reporter: Callable[[ProgressEvent], Awaitable[None]],
    *,
    persist: bool = True,
) -> Callable[[ProgressEvent], Awaitable[None]]:
    """The emit an action gets: report each event, and save what a resume would need."""

    async def emit(event: ProgressEvent) -> None:
        changed = fold_event(record, event)
        await reporter(event)
        if changed and persist:
            await store.save(record)

    return emit


async def keep_lease(store: StateStore, record: OperationRecord, lease_s: float) -> None:
    """Renew the claim on the target every third of a lease until cancelled."""
    while True:
        await asyncio.sleep(lease_s / 3)
        with contextlib.suppress(Exception):
            await store.renew_claim(record, lease_s)


def view_of(record: OperationRecord) -> ThreadView:
    return ThreadView(
        action=record.action,
        app=record.app,
        env=record.env,
        actor=record.actor,
        subject=record.subject,
        op_id=record.id,
        started_at=record.created_at,
        service_changed=record.deployment_id is not None,
    )


def fold_event(record: OperationRecord, event: ProgressEvent) -> bool:
    """Copy what a resume needs from the event into the record; True if it changed."""
    match event:
        case TaskDefinitionRegistered(arn=arn):
            record.task_definition, record.phase = arn, "registered"
        case TaskStarted(task_arn=arn):
            record.task_arn, record.phase = arn, "task running"
        case ServiceUpdated(deployment_id=dep, task_definition=arn):
            record.deployment_id, record.task_definition, record.phase = dep, arn, "updated"
        case RollingBack():
            record.phase = "rolling back"
        case Succeeded(summary=summary):
            record.state, record.reason, record.ended_at = "succeeded", summary, time.time()
        case Failed(reason=reason):
            record.state, record.reason, record.ended_at = "failed", reason, time.time()
        case _:
            return False
    return True


def _until(expires_at: float | None) -> str:
    if expires_at is None:
        return ""
    stamp = time.strftime("%H:%M UTC", time.gmtime(expires_at))
    return f" until <!date^{int(expires_at)}^{{time}}|{stamp}>"


def _lock_text(target: Target, lock: Lock) -> str:
    return f":lock: {target} is locked by <@{lock.holder}>{_until(lock.expires_at)}: {lock.reason}"


def _busy_text(target: Target, running: OperationRecord) -> str:
    link = f" <{running.permalink}|See its thread.>" if running.permalink else ""
    return (
        f"{target} is busy: a {running.action} of `{running.subject}` by {who(running.actor)}"
        f" is in progress.{link}"
    )
