"""The life of every operation, written once: claim, record, lease, fold, final event, release, audit.

Slack threads, the terminal, the CLI twins, auto-deploys and resume are thin adapters over
this module: each gives it a `Reporter` and a body to run, and none repeats a step of it.
It knows nothing of Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from bot import metrics
from bot.domain.aws import AwsError
from bot.domain.events import Emit, Failed, GatePaused, ProgressEvent
from bot.domain.progress import fold
from bot.domain.records import Lock, OperationRecord, Target
from bot.domain.text import Text, code, date, emoji, link, mention, text
from bot.state import StateStore
from bot.state.base import Fenced

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Where one operation's story goes: a Slack thread, a terminal, a CI log."""

    async def __call__(self, event: ProgressEvent) -> None: ...

    def say(self, line: Text) -> None: ...

    async def close(self) -> None: ...

    async def hand_over(self, line: Text) -> None:
        """Say `line` and stop: the operation's story is another replica's to finish."""
        ...

    async def abandon(self) -> None: ...


Body = Callable[[Emit, asyncio.Event], Awaitable[object]]
"""An action's work: it gets the operation's emit and its cancel signal."""

Opener = Callable[[OperationRecord], Awaitable[Reporter]]

Observer = Callable[[OperationRecord, Reporter], Reporter]
"""Sees an operation's story too: returns its reporter, or one that also tells someone else
(GitHub Deployments). Applied once per run, so every path (Slack, CLI, auto-deploy, resume) has it."""
"""Opens an operation's story (posts a thread's parent) and sets the record's `ts`/`permalink`."""

TURN_POLL_S, TURN_POLL_MAX_S = 0.5, 5.0
"""How often a queued operation asks whether the holder of its target is done."""


async def first(work: Awaitable[object], *, unless: asyncio.Event) -> bool:
    """Await `work` unless `unless` is set first; True if `work` ended (its error is raised)."""
    task = asyncio.ensure_future(work)
    skipped = asyncio.ensure_future(unless.wait())
    try:
        await asyncio.wait({task, skipped}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        skipped.cancel()
    if task.done():
        task.result()
        return True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return False


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


# -- the words every adapter uses for the same refusals ------------------------------------


def until(expires_at: float | None) -> Text:
    return text(" until ", date(expires_at)) if expires_at is not None else text()


def locked_text(target: Target, lock: Lock, *, icon: bool = True) -> Text:
    """A lock, as every refusal and skipped auto-deploy words it."""
    return text(
        text(emoji("lock"), " ") if icon else "",
        f"{target} is locked by ",
        mention(lock.holder),
        until(lock.expires_at),
        ": ",
        lock.reason,
    )


def busy_text(target: Target, running: OperationRecord) -> Text:
    """Who holds the target, how, since when, and where to watch it."""
    since = int(time.time() - running.created_at)
    where = text(" ", link(running.permalink, "See its thread.")) if running.permalink else text()
    return text(
        f"{target} is busy: a {running.action} of ",
        code(running.subject),
        " by ",
        mention(running.actor),
        f" is in progress ({running.trigger}, started {since}s ago).",
        where,
    )


# -- the audit trail ----------------------------------------------------------------------


class AuditTrail:
    """One audit entry per action and refusal: one JSON log line, and the store.

    The store retries its own writes; an entry it still could not take is kept and written
    before the next one (and at shutdown), so a store outage delays entries, never loses them.
    """

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._unwritten: list[dict[str, Any]] = []
        self._flushing = asyncio.Lock()

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)

    async def write(self, origin: Origin, what: str, target: Target | None, outcome: Text | str) -> None:
        entry = {
            "who": origin.actor,
            "what": what,
            "where": str(target) if target else None,
            "channel": origin.channel or None,
            "trigger": origin.trigger,
            "outcome": str(outcome),
            "at": time.time(),
        }
        log.info("audit", extra={f"audit_{k}": v for k, v in entry.items() if k != "at"})
        self._unwritten.append(entry)
        await self.flush()

    async def flush(self) -> None:
        """Write what is waiting, oldest first; stop at the first failure and keep the rest.

        One flush at a time: concurrent writers would otherwise store an entry twice.
        """
        async with self._flushing:
            while self._unwritten:
                entry = self._unwritten[0]
                try:
                    await self._store.audit(entry)
                except Exception as exc:
                    metrics.BACKGROUND_FAILURES.labels(what="audit").inc()
                    log.warning(
                        "audit write failed; kept for the next write",
                        extra={"waiting": len(self._unwritten), "error": repr(exc)},
                    )
                    return
                self._unwritten.remove(entry)


# -- the lifecycle ------------------------------------------------------------------------


HANDED_OVER = text(
    emoji("warning"),
    " Handed over: this replica lost its lease on the operation (another replica adopted it,"
    " or the state store stopped confirming it). Whoever holds it now finishes this thread.",
)


class LeaseLost(BaseException):
    """This replica may no longer own the operation: it must stop acting on it at once.

    A BaseException, like cancellation, so no `except Exception` in an action can swallow it.
    """


class Lifecycle:
    """Claims targets, keeps records and leases, and runs every operation to its final event."""

    def __init__(
        self,
        *,
        store: StateStore,
        owner: str,
        lease_s: float,
        tracker: TaskTracker | None = None,
        audit: AuditTrail | None = None,
        interrupted: str | None = None,
        observe: Observer | None = None,
    ) -> None:
        """`interrupted`: how an interrupted operation ends where nobody will resume it (a CLI
        run); without it, an interrupted operation stays running for a replica to resume."""
        self.interrupted = interrupted
        self.observe = observe
        self.store = store
        self.owner = owner
        self.lease_s = lease_s
        self.tracker = tracker if tracker is not None else TaskTracker()
        self.audit = audit if audit is not None else AuditTrail(store)
        self._running: dict[str, OperationRecord] = {}
        self._cancels: dict[str, asyncio.Event] = {}
        self._unsaved: set[str] = set()
        self._held: set[str] = set()
        """Operations this process claimed, leased or adopted and has not ended."""
        self._lease_until: dict[str, float] = {}
        """Per running operation, the monotonic time until which its lease surely holds."""

    # -- what is running here ---------------------------------------------------------------

    def in_flight(self) -> int:
        return len(self._running)

    def waiting_on_people(self) -> bool:
        """Something runs here, and all of it waits for a press: a pause at a deploy's gate whose
        reply (with its buttons) is in the thread."""
        running = list(self._running.values())
        return bool(running) and all(any(g.awaiting and g.ts for g in r.gates) for r in running)

    def pause_answered(self, op_id: str, hook_id: str) -> None:
        """A press here answered a pause: until the watch sees ECS move on (and the fold says
        how), the operation no longer counts as waiting for people."""
        record = self._running.get(op_id)
        gate = record.gate(hook_id) if record is not None else None
        if gate is not None and gate.awaiting:
            gate.state = "answered"

    def is_running(self, op_id: str) -> bool:
        """Whether this process holds the operation: running it, or about to (claimed, leased)."""
        return op_id in self._running or op_id in self._held

    def cancel(self, op_id: str) -> bool:
        """Signal a running operation to stop; False when it does not run on this replica."""
        event = self._cancels.get(op_id)
        if event is None:
            return False
        event.set()
        return True

    # -- claims -----------------------------------------------------------------------------

    async def obstacle(
        self, target: Target, *, force: bool = False, forcible: bool = False
    ) -> tuple[Text | None, Lock | None]:
        """What stands in the way (the lock unless forced, or a running operation), and the lock.

        `forcible`: the refusal of a lock says how to force it (a deploy can, a rollback cannot).
        """
        lock = await self.store.get_lock(target.app, target.env)
        if lock is not None and not force:
            hint = text(" (", code('--force "REASON"'), " deploys anyway.)") if forcible else text()
            return text(locked_text(target, lock), hint), lock
        running = await self.store.active_on(target.app, target.env)
        if running is not None:
            return busy_text(target, running), lock
        return None, lock

    async def _claim(self, record: OperationRecord) -> OperationRecord | None:
        """Save `record` as the one operation on its target; the holder when someone has it."""
        record.owner = self.owner
        try:
            holder = await self.store.claim_target(record, self.lease_s)
        except Fenced as exc:  # adopted meanwhile by another replica: it is theirs now
            raise LeaseLost(record.id) from exc
        if holder is None:
            self._held.add(record.id)  # ours from now: this replica's takeover pass leaves it alone
        return holder

    async def _lease(self, record: OperationRecord) -> None:
        """Save a record that holds no claim yet (a one-off task, a queued auto-deploy), leased."""
        record.owner = self.owner
        self._held.add(record.id)
        await self.save(record)
        await self.store.renew_claim(record, self.lease_s)

    async def _release(self, record: OperationRecord) -> None:
        self._held.discard(record.id)
        await self.store.release_target(record)

    async def _adopt(self, record: OperationRecord) -> bool:
        """Take over an unfinished operation whose owner's lease ran out (one replica wins)."""
        if self.is_running(record.id):
            return False
        self._held.add(record.id)
        if await self.store.adopt(record, self.owner, self.lease_s):
            return True
        self._held.discard(record.id)
        return False

    async def save(self, record: OperationRecord) -> None:
        """Write the record (the store retries its own writes); raise when it cannot."""
        await self.store.save(record)
        self._unsaved.discard(record.id)

    async def save_running(self, record: OperationRecord) -> None:
        """Write a running operation's record; when the store fails, keep the operation going.

        An operation that is changing ECS must be watched to its end whatever the store does:
        the record is written again at the next lease renewal, and at the end.
        """
        try:
            await self.save(record)
        except Fenced as exc:
            raise LeaseLost(record.id) from exc
        except Exception as exc:
            self._unsaved.add(record.id)
            metrics.BACKGROUND_FAILURES.labels(what="save").inc()
            log.warning("record save failed; kept going", extra={"op": record.id, "error": repr(exc)})

    async def _opened(self, record: OperationRecord, open_thread: Awaitable[Reporter]) -> Reporter:
        """Await the thread's opening; if it cannot open, the operation ends here, released."""
        try:
            reporter = await open_thread
        except Exception:
            record.state, record.reason, record.ended_at = "failed", "could not post its thread", time.time()
            await self.save(record)
            await self._release(record)
            raise
        await self.save(record)
        return reporter

    # -- taking an operation on -------------------------------------------------------------

    async def claim_and_open(
        self, record: OperationRecord, open_thread: Opener
    ) -> Reporter | OperationRecord:
        """Claim the target and open the story; the holder instead, when someone has the target."""
        holder = await self._claim(record)
        if holder is not None:
            return holder
        return await self._opened(record, open_thread(record))

    async def lease_and_open(self, record: OperationRecord, open_thread: Opener) -> Reporter:
        """Record an operation that holds no claim yet (a one-off task, a queued auto-deploy), leased
        from the start so no replica takes it over, and open its story."""
        await self._lease(record)
        return await self._opened(record, open_thread(record))

    async def claim_in_turn(
        self, record: OperationRecord, *, unless: asyncio.Event, queued: Callable[[OperationRecord], None]
    ) -> bool:
        """Claim the target, waiting behind whoever holds it; False if `unless` is set first.

        `queued` hears of the first holder it waits behind. The claim itself is never
        interrupted, so a write cannot land after the waiter gave up.
        """
        told = False
        while True:
            holder = await self._claim(record)
            if unless.is_set():
                await self._release(record)
                return False
            if holder is None:
                return True
            if not told:
                queued(holder)
                told = True
            if not await first(self._released(holder), unless=unless):
                return False

    async def _released(self, holder: OperationRecord) -> None:
        """Poll until `holder` no longer runs on its target, with a bounded backoff.

        Gives up after a lease's worth of polling, so an expired claim is asked again.
        """
        delay, waited = TURN_POLL_S, 0.0
        while waited < self.lease_s:
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, TURN_POLL_MAX_S)
            running = await self.store.active_on(holder.app, holder.env)
            if running is None or running.id != holder.id:
                return

    async def adopt_unfinished(self) -> list[OperationRecord]:
        """Take over every unfinished operation whose owner's lease ran out (one replica wins each)."""
        return [record for record in await self.store.unfinished() if await self._adopt(record)]

    async def end_unopened(self, record: OperationRecord, reason: str) -> None:
        """An adopted operation that never had a story to tell ends failed, its target released."""
        record.state, record.reason, record.ended_at = "failed", reason, time.time()
        await self.save(record)
        await self._release(record)

    # -- running ----------------------------------------------------------------------------

    def emitter(
        self, record: OperationRecord, reporter: Reporter
    ) -> Callable[[ProgressEvent], Awaitable[None]]:
        """The emit an action gets: fold the event into the record, report it, save if needed."""

        async def emit(event: ProgressEvent) -> None:
            await self.still_ours(record)
            changed = fold(record, event)
            if changed:
                await self.save_running(record)  # fenced: a replica that lost it says nothing
            await reporter(event)
            if isinstance(event, GatePaused):
                await self.save_running(record)  # the pause's reply (its ts), for whoever adopts it

        return emit

    def launch(
        self, record: OperationRecord, reporter: Reporter, body: Body, origin: Origin
    ) -> asyncio.Task[Any]:
        """Run the operation in a tracked task (shutdown waits for it, resume can finish it)."""
        return self.tracker.spawn(self.run(record, reporter, body, origin), f"{record.action}-{record.id}")

    async def run(self, record: OperationRecord, reporter: Reporter, body: Body, origin: Origin) -> None:
        """Run `body` to the operation's final event, whatever happens; then release and audit."""
        self._running[record.id] = record
        self._lease_until[record.id] = time.monotonic() + self.lease_s  # claimed or adopted just now
        cancel = self._cancels.setdefault(record.id, asyncio.Event())
        metrics.IN_FLIGHT.set(len(self._running))
        started = time.monotonic()
        if self.observe is not None:
            reporter = self.observe(record, reporter)
        emit = self.emitter(record, reporter)
        work = asyncio.create_task(self._body(record, body, emit, cancel), name=f"body-{record.id}")
        keeper = asyncio.create_task(self._keep_lease(record, work), name=f"lease-{record.id}")
        lost = interrupted = False
        try:
            await work
        except LeaseLost:
            lost = True
        except asyncio.CancelledError:
            if keeper.done() and isinstance(keeper.exception(), LeaseLost):
                lost = True
            else:
                interrupted = True
                work.cancel()
                raise
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                await keeper
            await self._end(record, reporter, emit, origin, started, lost=lost, interrupted=interrupted)

    async def _body(
        self,
        record: OperationRecord,
        body: Body,
        emit: Callable[[ProgressEvent], Awaitable[None]],
        cancel: asyncio.Event,
    ) -> None:
        """The action itself; any error it raises becomes the operation's Failed event."""
        try:
            await body(emit, cancel)
        except (asyncio.CancelledError, LeaseLost):
            raise
        except AwsError as exc:
            await emit(Failed(f"AWS refused {exc.operation}: {exc.code}: {exc.aws_message}"))
        except Exception as exc:
            log.exception("operation crashed", extra={"op": record.id})
            changed = (
                " ECS may have been changed: check the service."
                if record.deployment_id
                else (" Nothing further was changed.")
            )
            await emit(Failed(f"Tugboat hit an internal error ({type(exc).__name__}).{changed}"))

    async def _renew(self, record: OperationRecord) -> bool | None:
        """One renewal: True while this replica owns the operation, None when the store failed."""
        asked = time.monotonic()
        try:
            held = await self.store.renew_claim(record, self.lease_s)
        except Exception as exc:
            metrics.BACKGROUND_FAILURES.labels(what="lease").inc()
            log.warning("lease renewal failed", extra={"op": record.id, "error": repr(exc)})
            return None
        if held:
            self._lease_until[record.id] = asked + self.lease_s
        return held

    def _expired(self, record: OperationRecord) -> bool:
        return time.monotonic() >= self._lease_until.get(record.id, 0.0)

    def _lost(self, record: OperationRecord) -> LeaseLost:
        metrics.BACKGROUND_FAILURES.labels(what="lease lost").inc()
        log.warning("lease lost; this replica stops acting on the operation", extra={"op": record.id})
        return LeaseLost(record.id)

    async def still_ours(self, record: OperationRecord) -> None:
        """Before acting: when the lease may be near its end (a pause, a slow store), renew first.

        Until the lease runs out no other replica can adopt the operation, so acting is safe;
        past that, only a successful renewal makes it safe again.
        """
        until = self._lease_until.get(record.id)
        if until is None or time.monotonic() < until - self.lease_s / 3:
            return
        held = await self._renew(record)
        if held is False or (held is None and self._expired(record)):
            raise self._lost(record)

    async def _keep_lease(self, record: OperationRecord, work: asyncio.Task[None]) -> None:
        """Renew the lease every third of it (sooner after a failure); when lost, stop the work."""
        held: bool | None = True
        while True:
            await asyncio.sleep(self.lease_s / 3 if held else self.lease_s / 10)
            held = await self._renew(record)
            if held is False or (held is None and self._expired(record)):
                work.cancel()
                raise self._lost(record)
            if held:
                if record.id in self._unsaved:
                    try:
                        await self.save_running(record)
                    except LeaseLost:
                        work.cancel()
                        raise
                await self.audit.flush()

    async def _end(
        self,
        record: OperationRecord,
        reporter: Reporter,
        emit: Callable[[ProgressEvent], Awaitable[None]],
        origin: Origin,
        started: float,
        *,
        lost: bool,
        interrupted: bool,
    ) -> None:
        """The final event, the release, the audit and the metrics: exactly once per operation.

        The bookkeeping comes before the thread's last flush, so a shutdown that lands while
        the thread is still sending cannot leave the target claimed or the result unlogged.
        """
        try:
            if lost:
                await reporter.hand_over(HANDED_OVER)
                return
            if not record.finished:
                if interrupted and self.interrupted is None:
                    await reporter.abandon()  # shutdown: the record stays running, for a resume
                    return
                reason = self.interrupted if interrupted else None
                await emit(Failed(reason or "The operation ended without a result."))
            if record.id in self._unsaved:
                await self.save_running(record)
            await self._release(record)
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
            await self.audit.write(origin, record.action, record.target, f"{record.state}: {record.subject}")
            if interrupted:
                await reporter.abandon()
            else:
                await reporter.close()
        finally:
            self._running.pop(record.id, None)
            self._cancels.pop(record.id, None)
            self._unsaved.discard(record.id)
            self._held.discard(record.id)
            self._lease_until.pop(record.id, None)
            metrics.IN_FLIGHT.set(len(self._running))

    async def stop(self, timeout: float = 5.0) -> None:
        """Interrupt running operations (their records stay running, for a resume); flush audit."""
        await self.tracker.cancel_all(timeout)
        await self.audit.flush()
        if self.audit.unwritten:
            log.error(
                "audit entries not stored at shutdown; they are in this log",
                extra={"count": self.audit.unwritten},
            )
