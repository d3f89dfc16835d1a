"""The CLI twins of the slash commands, for CI jobs and terminals: `tugboat deploy api staging v2`.

Same grammar, same actions, same progress events as Slack; the terminal is the thread. No Slack
tokens are needed. With `TUGBOAT_STATE` set, a run shares the bot's state: it respects locks and
the one-deploy-per-target claim, and lands in history and the audit trail like any deploy.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from bot.aws.ecs import EcsGateway
from bot.aws.watcher import RolloutWatcher
from bot.domain.aws import AwsError
from bot.domain.catalog import Catalog, CatalogError, load_catalog
from bot.domain.events import Emit, Failed, Note, Started
from bot.domain.records import Lock, OperationRecord, Target
from bot.operations import keep_lease, record_keeping, view_of, write_audit
from bot.report.terminal import TerminalReporter, readable, status_lines, wants_color
from bot.settings import Settings, SettingsError, load_settings
from bot.state import SqliteStore, StateStore, store_from_url
from commands import deploy as deploy_action
from commands import rollback as rollback_action
from commands import run_task as run_task_action
from commands import status as status_action
from commands.grammar import (
    DeployRequest,
    Request,
    RollbackRequest,
    RunTaskRequest,
    StatusRequest,
    UsageError,
    parse_slash,
)

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TRIGGER = "cli"
TWINS = {
    "deploy": "/deploy",
    "rollback": "/rollback",
    "run-task": "/run-task",
    "status": "/ecs-status",
}
"""The CLI verb and the slash command whose grammar it shares."""

Body = Callable[[Emit], Awaitable[object]]


def actor_from_env() -> str:
    """Who runs this, as CI or the shell tells: $TUGBOAT_ACTOR, else $GITHUB_ACTOR, else $USER."""
    for name in ("TUGBOAT_ACTOR", "GITHUB_ACTOR", "USER"):
        value = os.environ.get(name, "").strip()
        if value:
            return value[:64]
    return "unknown"


def run_verb(verb: str, words: Sequence[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`tugboat VERB WORDS…`: 0 on success, 1 on failure or refusal, 2 on bad settings or input."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = load_settings()
        catalog = load_catalog(settings.tugboat_config)
    except (SettingsError, CatalogError) as exc:
        _say(err, f"tugboat: {exc}")
        return EXIT_USAGE
    try:
        request = parse_slash(TWINS[verb], " ".join(words), catalog)
    except UsageError as exc:
        _say(err, usage_text(exc))
        return EXIT_USAGE
    try:
        return asyncio.run(_run(request, settings, catalog, out, err))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def usage_text(exc: UsageError) -> str:
    """The grammar's own words, with its slash-command usage written as the CLI's."""
    text = f"tugboat: {readable(exc.problem)}"
    if exc.usage:
        text += "\nusage: tugboat " + exc.usage.removeprefix("/").replace("ecs-status", "status")
    return text


async def _run(request: Request, settings: Settings, catalog: Catalog, out: TextIO, err: TextIO) -> int:
    shared = "tugboat_state" in settings.model_fields_set
    ecs = EcsGateway()
    cli = Cli(
        catalog=catalog,
        # Without TUGBOAT_STATE there is no state to share: an empty in-memory store stands in.
        store=store_from_url(settings.tugboat_state) if shared else SqliteStore(":memory:"),
        shared_state=shared,
        ecs=ecs,
        watcher=RolloutWatcher(ecs),
        actor=actor_from_env(),
        lease_s=settings.tugboat_lease_seconds,
        out=out,
        err=err,
    )
    await cli.store.open()
    cli.watcher.start()
    try:
        match request:
            case DeployRequest():
                return await deploy(cli, request)
            case RollbackRequest():
                return await rollback(cli, request)
            case RunTaskRequest():
                return await run_task(cli, request)
            case StatusRequest():
                return await status(cli, request)
            case _:
                _say(err, f"tugboat: `{request.verb}` has no command-line twin.")
                return EXIT_USAGE
    except AwsError as exc:
        _say(err, f"tugboat: {exc}")
        return EXIT_FAILED
    finally:
        await cli.watcher.stop()
        await cli.store.close()
        ecs.close()


# -- the verbs ---------------------------------------------------------------------------


async def deploy(cli: Cli, request: DeployRequest) -> int:
    """Refuse when locked (unless --force) or busy; prepare; claim; ship, printing the thread."""
    target = request.target
    cli.warn_unshared("deploy")
    lock = await cli.store.get_lock(target.app, target.env)
    if lock is not None and not request.force:
        return await cli.refuse("deploy", target, lock_text(target, lock) + " (--force deploys anyway.)")
    running = await cli.store.active_on(target.app, target.env)
    if running is not None:
        return await cli.refuse("deploy", target, busy_text(target, running))
    try:
        plan = await deploy_action.prepare(request, cli.deploy_deps)
    except (deploy_action.DeployRefused, AwsError) as exc:
        return await cli.refuse("deploy", target, f"Not deploying {target}: {exc}")
    record = cli.record("deploy", target, plan.tag)
    record.previous_task_definition = plan.current_task_definition

    async def body(emit: Emit) -> None:
        if lock is not None:
            await emit(Note(f"Forced through the lock held by <@{lock.holder}>: {lock.reason}", loud=True))
        await deploy_action.execute(plan, cli.deploy_deps, emit, actor=cli.actor)

    return await cli.operate(record, body, claim=True)


async def rollback(cli: Cli, request: RollbackRequest) -> int:
    """Refuse when locked or busy; pick the revision from history; claim; roll back."""
    target = request.target
    cli.warn_unshared("rollback")
    lock = await cli.store.get_lock(target.app, target.env)
    if lock is not None:
        return await cli.refuse("rollback", target, lock_text(target, lock))
    running = await cli.store.active_on(target.app, target.env)
    if running is not None:
        return await cli.refuse("rollback", target, busy_text(target, running))
    history = await cli.store.history(target.app, target.env, 50)
    try:
        plan = await rollback_action.prepare(request, cli.ecs, cli.catalog, history)
    except (rollback_action.RollbackRefused, AwsError) as exc:
        return await cli.refuse("rollback", target, f"Not rolling back {target}: {exc}")
    record = cli.record("rollback", target, f"rev {plan.revision}")
    record.previous_task_definition = plan.current_task_definition

    async def body(emit: Emit) -> None:
        await rollback_action.execute(plan, cli.deploy_deps, emit)

    return await cli.operate(record, body, claim=True)


async def run_task(cli: Cli, request: RunTaskRequest) -> int:
    """Run a catalog task as a one-off ECS task; its exit code decides ours. Locks do not apply."""
    target = request.target
    try:
        plan = await run_task_action.prepare(request, cli.ecs, cli.catalog, cli.actor)
    except AwsError as exc:
        return await cli.refuse("run-task", target, f"Not running `{request.task}` on {target}: {exc}")
    record = cli.record("run-task", target, " ".join((request.task, *request.args)))
    record.task_definition = plan.task_definition

    async def body(emit: Emit) -> None:
        await run_task_action.execute(plan, cli.ecs, emit)

    return await cli.operate(record, body, claim=False)


async def status(cli: Cli, request: StatusRequest) -> int:
    """The status card for APP ENV, else one line per environment; 1 when a service is missing."""
    targets = status_action.targets_for(cli.catalog, request.app, request.env)
    detail = request.env is not None
    statuses = await status_action.describe(targets, cli.ecs, cli.catalog, cli.store, detail=detail)
    for text in status_lines(statuses, detail=detail, color=wants_color(cli.out)):
        _say(cli.out, text)
    return EXIT_OK if all(s.snapshot is not None for s in statuses) else EXIT_FAILED


# -- what the verbs share ----------------------------------------------------------------


def _owner() -> str:
    """Never a bot replica's id, so no replica resumes a CLI run while its lease is renewed."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


@dataclass
class Cli:
    """One command-line run: its catalog, state, AWS gateway and where it prints."""

    catalog: Catalog
    store: StateStore
    shared_state: bool
    ecs: EcsGateway
    watcher: RolloutWatcher
    actor: str
    lease_s: float
    out: TextIO
    err: TextIO
    owner: str = field(default_factory=_owner)

    @property
    def deploy_deps(self) -> deploy_action.DeployDeps:
        return deploy_action.DeployDeps(self.ecs, self.watcher, self.catalog)

    def record(self, action: str, target: Target, subject: str) -> OperationRecord:
        return OperationRecord(
            action=action,
            app=target.app,
            env=target.env,
            actor=self.actor,
            subject=subject,
            trigger=TRIGGER,
            owner=self.owner,
        )

    def warn_unshared(self, action: str) -> None:
        if not self.shared_state:
            _say(
                self.err,
                f"tugboat: TUGBOAT_STATE is not set: locks and running deploys are not checked,"
                f" and this {action} is not recorded.",
            )

    async def refuse(self, action: str, target: Target, why: str) -> int:
        """Nothing was changed: say why on stderr, audit it, exit 1."""
        _say(self.err, f"tugboat: {readable(why)}")
        await self.audit(action, target, f"refused: {why}")
        return EXIT_FAILED

    async def audit(self, what: str, target: Target, outcome: str) -> None:
        """The same audit entry a Slack command writes, with trigger `cli`."""
        await write_audit(self.store, self.actor, what, target, None, TRIGGER, outcome)

    async def operate(self, record: OperationRecord, body: Body, *, claim: bool) -> int:
        """Claim the target (deploy, rollback), print the thread as it happens; 0 only on success."""
        target = Target(record.app, record.env)
        if claim:
            holder = await self.store.claim_target(record, self.lease_s)
            if holder is not None:
                return await self.refuse(record.action, target, busy_text(target, holder))
        reporter = TerminalReporter(view_of(record), self.out)
        emit = record_keeping(self.store, record, reporter, persist=claim)
        heartbeat = (
            asyncio.create_task(keep_lease(self.store, record, self.lease_s), name=f"lease-{record.id}")
            if claim
            else None
        )
        await self.audit(record.action, target, f"started: {record.subject}")
        try:
            await emit(Started(record.action, record.app, record.env, record.actor, record.subject, TRIGGER))
            await body(emit)
        except AwsError as exc:
            await emit(Failed(f"AWS refused {exc.operation}: {exc.code}: {exc.aws_message}"))
        except asyncio.CancelledError:
            await emit(Failed("Interrupted from the terminal; ECS may still be rolling out."))
            raise
        except Exception as exc:
            log.exception("operation crashed", extra={"op": record.id})
            await emit(Failed(f"Tugboat hit an internal error ({type(exc).__name__})."))
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if not record.finished:
                await emit(Failed("The operation ended without a result."))
            if claim:
                await self.store.release_target(record)
            await self.audit(record.action, target, record.state)
        return EXIT_OK if reporter.succeeded else EXIT_FAILED


def lock_text(target: Target, lock: Lock) -> str:
    until = time.strftime(" until %H:%M UTC", time.gmtime(lock.expires_at)) if lock.expires_at else ""
    return f":lock: {target} is locked by <@{lock.holder}>{until}: {lock.reason}"


def busy_text(target: Target, running: OperationRecord) -> str:
    """Who holds the target, how, since when, and where to watch it."""
    since = int(time.time() - running.created_at)
    where = f" Thread: {running.permalink}" if running.permalink else ""
    return (
        f"{target} is busy: a {running.action} of `{running.subject}` by <@{running.actor}>"
        f" ({running.trigger}) has been in progress for {since}s.{where}"
    )


def _say(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()
