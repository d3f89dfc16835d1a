"""The CLI twins of the slash commands, for CI jobs and terminals: `tugboat deploy api staging v2`.

Same grammar, same operations, same lifecycle and progress events as Slack; the terminal is the
thread. No Slack tokens are needed. With `TUGBOAT_STATE` set, a run shares the bot's state: it
respects locks and the one-deploy-per-target claim, and lands in history and the audit trail
(which `tugboat stats` measures). With `GITHUB_TOKEN`, GitHub hears of it as of a Slack deploy:
a deployment with its statuses, and the CI gate.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Protocol, TextIO

from bot.aws.ecs import EcsGateway
from bot.aws.ecs_limits import ECS_LIMITS
from bot.aws.schedules import EventBridgeSchedules
from bot.aws.watcher import RolloutWatcher
from bot.catalog_source import read_catalog
from bot.domain.approvals import Approval
from bot.domain.catalog import Catalog, CatalogError
from bot.domain.code import CodeHost
from bot.domain.ports import Ecs
from bot.domain.records import GateEntry, Lock, OperationRecord, Target
from bot.domain.text import Text, escape, plain, text
from bot.lifecycle import Lifecycle, Origin, Reporter, TaskTracker
from bot.operations import Operations, Reply
from bot.report.terminal import TerminalReporter, status_lines, wants_color
from bot.report.view import ThreadView
from bot.settings import Settings, SettingsError, load_settings
from bot.state import SqliteStore, StateStore, store_from_url
from commands import stats as stats_action
from commands import status as status_action
from commands.deploy import DeployPlan
from commands.grammar import (
    DeployRequest,
    Request,
    RestartRequest,
    RollbackRequest,
    RunTaskRequest,
    ScaleRequest,
    StatsRequest,
    StatusRequest,
    UsageError,
    parse_slash,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WARNINGS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
TRIGGER = "cli"
TWINS = {
    "deploy": "/deploy",
    "rollback": "/rollback",
    "run-task": "/run-task",
    "status": "/ecs-status",
    "scale": "/ecs-scale",
    "restart": "/ecs-restart",
    "stats": "/tugboat stats",
}
"""The CLI verb and the slash command (with its first word, for a `/tugboat` one) whose grammar it shares."""
OWN_USAGE = {"stats": "/stats APP ENV [DAYS]"}
"""The usage of a twin of one `/tugboat` command (the grammar's names every one)."""


class CodeHostLink(Protocol):
    """What GITHUB_TOKEN adds to a run: the reads of the CI gate (`code`), and a GitHub
    deployment of what ships (`observe`, the lifecycle's hook). Built above the twins."""

    @property
    def code(self) -> CodeHost: ...

    def observe(self, record: OperationRecord, reporter: Reporter) -> Reporter: ...

    async def close(self) -> None: ...


LinkCodeHost = Callable[[Settings, Catalog, Ecs, StateStore, TaskTracker], CodeHostLink | None]
"""Makes a run's `CodeHostLink` from the settings (None without GITHUB_TOKEN)."""


def actor_from_env() -> str:
    """Who runs this, as CI or the shell tells: $TUGBOAT_ACTOR, else $GITHUB_ACTOR, else $USER."""
    for name in ("TUGBOAT_ACTOR", "GITHUB_ACTOR", "USER"):
        value = os.environ.get(name, "").strip()
        if value:
            return value[:64]
    return "unknown"


def run_verb(
    verb: str,
    words: Sequence[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    code_host: LinkCodeHost | None = None,
) -> int:
    """`tugboat VERB WORDS…`: 0 on success, 1 on failure or refusal, 2 on bad settings or input."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        settings = load_settings()
        catalog = read_catalog(settings.tugboat_config)
    except (SettingsError, CatalogError) as exc:
        _say(err, f"tugboat: {exc}")
        return EXIT_USAGE
    command, _, first = TWINS[verb].partition(" ")
    try:
        # The grammar reads text as Slack sends it: quoted like a shell, with &, < and > escaped.
        request = parse_slash(command, " ".join(filter(None, (first, escape(shell_words(words))))), catalog)
    except UsageError as exc:
        _say(err, usage_text(exc, verb))
        return EXIT_USAGE
    try:
        return asyncio.run(_run(request, settings, catalog, out, err, code_host))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def shell_words(words: Sequence[str]) -> str:
    """The words as one command line, quoted like a shell's; the word after `--force` always
    quoted, since the grammar takes only a quoted reason (the shell took the user's quotes off)."""
    quoted = [
        "'" + word.replace("'", "'\"'\"'") + "'"
        if index and words[index - 1] == "--force"
        else shlex.quote(word)
        for index, word in enumerate(words)
    ]
    return " ".join(quoted)


def usage_text(exc: UsageError, verb: str = "") -> str:
    """The grammar's own words, with its slash-command usage written as the CLI's."""
    line = f"tugboat: {exc.problem}"
    usage = OWN_USAGE.get(verb, exc.usage)
    if usage:
        line += "\nusage: tugboat " + usage.removeprefix("/").removeprefix("ecs-")
    return line


class TerminalFront:
    """The `Front` of a CLI run: the story is printed; nobody is asked to confirm."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    async def open(self, record: OperationRecord) -> Reporter:
        return TerminalReporter(ThreadView(record), self.out)

    async def reopen(self, record: OperationRecord) -> Reporter:
        return await self.open(record)

    async def announce(self, channel: str, line: Text) -> None:
        _say(self.out, plain(line, color=wants_color(self.out)))

    async def ask_to_confirm(
        self, pending: OperationRecord, plan: DeployPlan, lock: Lock | None, reply: Reply
    ) -> str | None:
        return None

    async def settle_confirmation(self, pending: OperationRecord, outcome: Text) -> None:
        return None

    async def ask_to_approve(self, approval: Approval, lines: list[Text], reply: Reply) -> str | None:
        return None  # nobody here to approve: the request is refused

    async def show_approval(self, approval: Approval, lines: list[Text], outcome: Text | None) -> None:
        return None

    async def settle_pause(self, record: OperationRecord, gate: GateEntry, outcome: Text) -> None:
        return None  # a pause's buttons live in Slack


class TrustTheShell:
    """The CLI's rights are the AWS credentials it runs with; Slack's allow-lists do not apply."""

    async def check(self, target: Target, actor: str, channel: str | None, *, write: bool) -> Text | None:
        return None

    async def may_approve(
        self, target: Target, actor: str, channel: str | None, groups: list[str]
    ) -> Text | None:
        return text("Approvals are given in Slack, by someone other than the requester.")


def _owner() -> str:
    """Never a bot replica's id, so no replica resumes a CLI run while its lease is renewed."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


async def _run(
    request: Request,
    settings: Settings,
    catalog: Catalog,
    out: TextIO,
    err: TextIO,
    code_host: LinkCodeHost | None,
) -> int:
    shared = "tugboat_state" in settings.model_fields_set
    # Without TUGBOAT_STATE there is no state to share: an empty in-memory store stands in.
    store = store_from_url(settings.tugboat_state) if shared else SqliteStore(":memory:")
    ecs = EcsGateway(
        ecs_calls_per_s=settings.tugboat_ecs_calls_per_second,
        limits=ECS_LIMITS,
        share=settings.tugboat_aws_share,
    )
    watcher = RolloutWatcher(ecs)
    tracker = TaskTracker()
    github = code_host(settings, catalog, ecs, store, tracker) if code_host else None
    lifecycle = Lifecycle(
        store=store,
        owner=_owner(),
        lease_s=settings.tugboat_lease_seconds,
        tracker=tracker,
        interrupted="Interrupted from the terminal; ECS may still be rolling out.",
        observe=github.observe if github else None,
    )
    ops = Operations(
        catalog=catalog,
        ecs=ecs,
        watcher=watcher,
        schedules=EventBridgeSchedules(ecs),
        lifecycle=lifecycle,
        authorizer=TrustTheShell(),
        code=github.code if github else None,
    )
    origin = Origin(actor=actor_from_env(), channel="", trigger=TRIGGER)
    front = TerminalFront(out)

    async def reply(line: Text) -> None:
        _say(err, "tugboat: " + plain(line))

    if not shared and isinstance(request, DeployRequest | RollbackRequest):
        verb = "deploy" if isinstance(request, DeployRequest) else "rollback"
        _say(
            err,
            f"tugboat: TUGBOAT_STATE is not set: locks and running deploys are not checked,"
            f" and this {verb} is not recorded.",
        )
    if not shared and isinstance(request, StatsRequest):
        _say(err, "tugboat: TUGBOAT_STATE is not set: there is no recorded history to measure.")
    await store.open()
    watcher.start()
    try:
        match request:
            case DeployRequest():
                record = await ops.deploy(request, origin, reply, front, ask_to_confirm=False)
            case RollbackRequest():
                record = await ops.rollback(request, origin, reply, front)
            case RunTaskRequest():
                record = await ops.run_task(request, origin, reply, front)
            case ScaleRequest():
                record = await ops.scale(request, origin, reply, front)
            case RestartRequest():
                record = await ops.restart(request, origin, reply, front)
            case StatusRequest():
                return await status(ops, request, out)
            case StatsRequest():
                return await stats(ops, request, out)
            case _:
                _say(err, f"tugboat: `{request.verb}` has no command-line twin.")
                return EXIT_USAGE
        if record is None:
            return EXIT_FAILED
        await lifecycle.tracker.idle()
        if record.state != "succeeded":
            return EXIT_FAILED
        return EXIT_WARNINGS if record.warnings else EXIT_OK
    finally:
        await lifecycle.stop(timeout=5)
        await watcher.stop()
        await store.close()
        if github is not None:
            await github.close()
        ecs.close()


async def status(ops: Operations, request: StatusRequest, out: TextIO) -> int:
    """The status card for APP ENV, else one line per environment; 1 when a service is missing."""
    targets = status_action.targets_for(ops.catalog, request.app, request.env)
    detail = request.env is not None
    statuses = await status_action.describe(
        targets, ops.ecs, ops.catalog, ops.lifecycle.store, detail=detail, schedules=ops.schedules
    )
    for line in status_lines(statuses, detail=detail, color=wants_color(out)):
        _say(out, line)
    return EXIT_OK if all(s.snapshot is not None for s in statuses) else EXIT_FAILED


async def stats(ops: Operations, request: StatsRequest, out: TextIO) -> int:
    """`/tugboat stats`'s four DORA figures, from the shared store's history; always 0."""
    target = request.target
    history = await ops.lifecycle.store.history(target.app, target.env, stats_action.HISTORY_LIMIT)
    found = stats_action.figures(history, now=time.time(), days=request.days)
    for line in stats_action.lines(target, found):
        _say(out, plain(line, color=wants_color(out)))
    return EXIT_OK


def _say(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()
