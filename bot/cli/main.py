"""The `tugboat` command: serve, check, sandbox, and the CLI twins of the slash commands.

A bad setting or catalog stops the process at start with one line naming the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import logs
from bot.aws.ecs import EcsGateway
from bot.catalog_source import fetch_catalog, read_catalog
from bot.catalog_source import region as aws_region
from bot.cli.check import run_check
from bot.cli.twins import TWINS, run_verb
from bot.domain.catalog import CatalogError
from bot.settings import Settings, SettingsError, load_settings

log = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tugboat", description="Slack ChatOps for Amazon ECS.")
    sub = parser.add_subparsers(dest="verb")
    sub.add_parser("serve", help="run the bot: Socket Mode, HTTP on $PORT, /metrics on $METRICS_PORT")
    sub.add_parser("init-state", help="create the DynamoDB state table (TUGBOAT_STATE=dynamodb://TABLE)")
    sandbox = sub.add_parser("sandbox", help="the whole bot against a simulated ECS and a terminal Slack")
    sandbox.add_argument(
        "--rollout-seconds", type=float, default=4.0, help="how long a simulated rollout takes"
    )
    sandbox.add_argument(
        "--minute-seconds",
        type=float,
        default=6.0,
        help="how long a simulated ECS minute lasts (pause timeouts, bake and canary times)",
    )
    sandbox.add_argument(
        "--no-events", action="store_true", help="watch by polling only, without ECS events (SQS)"
    )
    sandbox.add_argument(
        "--script", type=Path, metavar="FILE", help="replay the commands in FILE, one after another"
    )
    check = sub.add_parser(
        "check", help="say whether settings, catalog and each service's AWS parts are right"
    )
    check.add_argument("--slack", action="store_true", help="also try the Slack tokens")
    check.add_argument("--sandbox", action="store_true", help="check against the sandbox's simulated world")
    init = sub.add_parser("init", help="write a starting tugboat.yml from the services a cluster runs")
    init.add_argument("--cluster", action="append", required=True, help="a cluster to read (repeatable)")
    init.add_argument("--service", action="append", default=[], help="only this service (repeatable)")
    init.add_argument("--region", default=None, help="AWS region (default: AWS_REGION, else us-east-1)")
    init.add_argument("--output", type=Path, default=Path("tugboat.yml"), help="where to write; - for stdout")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument("--sandbox", action="store_true", help="read the sandbox's simulated world")
    _add_twins(sub)
    args = parser.parse_args(argv)
    verb = args.verb or "serve"
    if verb == "check":
        if args.sandbox:
            from bot.sandbox.terminal import in_sandbox_world

            return in_sandbox_world(lambda: run_check(slack=args.slack))
        return run_check(slack=args.slack)
    if verb == "init":
        return _init(args)
    if verb in TWINS:
        force = getattr(args, "force", None)
        from bot.github.deployments import GitHubDeployments

        words = [*args.words, *(["--force", force] if force is not None else [])]
        return run_verb(verb, words, code_host=GitHubDeployments.from_settings)
    if verb == "init-state":
        return init_state()
    if verb == "sandbox":
        from bot.sandbox.terminal import run_sandbox

        return run_sandbox(
            rollout_seconds=args.rollout_seconds,
            minute_seconds=args.minute_seconds,
            events=not args.no_events,
            script=args.script,
        )
    return serve()


def _add_twins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """deploy, rollback, run-task, status, scale, restart, stats: the slash commands' words,
    parsed by their grammar."""
    twins = {
        "deploy": ('APP ENV [REF] [--force "REASON"]', "deploy an image tag or git sha, printing the thread"),
        "rollback": ("APP ENV [REVISION]", "roll back to the last good deploy, or to a revision"),
        "run-task": ("APP ENV TASK [ARGS...]", "run a catalog task as a one-off ECS task"),
        "status": ("[APP [ENV]]", "service status: one line per environment, or one card"),
        "scale": ("APP ENV COUNT [SERVICE]", "set a service's desired count, watched until that many run"),
        "restart": ("APP ENV [SERVICE]", "fresh tasks of the running revision, watched like a rollout"),
        "stats": ("APP ENV [DAYS]", "DORA figures over DAYS (30) from the recorded history (TUGBOAT_STATE)"),
    }
    for verb, (words, summary) in twins.items():
        twin = sub.add_parser(verb, help=summary, usage=f"tugboat {verb} {words}")
        if verb == "deploy":
            twin.add_argument(
                "--force", metavar="REASON", help="deploy through a lock or a freeze, saying why (required)"
            )
        twin.add_argument("words", nargs=argparse.REMAINDER, metavar=words)


def _init(args: argparse.Namespace) -> int:
    from bot.cli.init import run_init

    def run() -> int:
        where = args.region or aws_region()
        return run_init(args.cluster, args.service, where, args.output, force=args.force)

    if args.sandbox:
        from bot.sandbox.terminal import in_sandbox_world

        return in_sandbox_world(run)
    return run()


def init_state() -> int:
    """Create the state table once, before the first `serve` of a multi-replica setup."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"tugboat: {exc}", file=sys.stderr)
        return 2
    if not settings.tugboat_state.startswith("dynamodb://"):
        print("tugboat: TUGBOAT_STATE is SQLite; its schema is created on first start.")
        return 0
    from bot.state.dynamodb import DynamoStore

    table = settings.tugboat_state.removeprefix("dynamodb://")

    async def create() -> None:
        store = DynamoStore(table)
        try:
            await store.create_table()
        finally:
            await store.close()

    asyncio.run(create())
    print(f"tugboat: state table {table} is ready.")
    return 0


def serve() -> int:
    try:
        settings = load_settings()
        settings.require_slack()
        catalog = read_catalog(settings.tugboat_config)
    except (SettingsError, CatalogError) as exc:
        print(f"tugboat: {exc}", file=sys.stderr)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.github_webhook_secret,
            settings.github_token,
        )
        if s is not None
    ]
    logs.configure(settings.log_level, settings.log_format, secrets)
    return asyncio.run(_serve(settings, catalog))


async def _serve(settings: Settings, catalog: object) -> int:
    from bot.domain.catalog import Catalog
    from bot.runtime import Tugboat, Tuning
    from bot.slack.api import TokenRejected

    assert isinstance(catalog, Catalog)
    tuning = Tuning(
        lease_s=settings.tugboat_lease_seconds, ecs_calls_per_s=settings.tugboat_ecs_calls_per_second
    )
    bot = Tugboat(settings, catalog, tuning=tuning)
    stop, reload = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload.set)
    try:
        await bot.start()
    except (TokenRejected, SettingsError) as exc:
        # A token Slack refuses, or a port that is taken: one line, no traceback, exit 2.
        await bot.stop()
        print(f"tugboat: {exc}", file=sys.stderr)
        return 2
    while not stop.is_set():
        await first_of(stop, reload)
        if reload.is_set() and not stop.is_set():
            reload.clear()
            if await catalog_changed(settings.tugboat_config, catalog, bot):
                await bot.stop()
                restart_in_place()
    await bot.stop()
    return 0


async def first_of(*events: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


async def catalog_changed(source: str, running: object, bot: object) -> bool:
    """SIGHUP: read the catalog again. A catalog that does not load changes nothing (logged)."""
    gateway = EcsGateway(budget_s=10.0)
    try:
        fresh = await fetch_catalog(source, gateway)
    except CatalogError as exc:
        log.error("catalog reload refused; the running catalog stays", extra={"reason": str(exc)})
        return False
    finally:
        gateway.close()
    if fresh == running:
        log.info("catalog reload: nothing changed")
        return False
    log.info("catalog changed: handing over and restarting to apply it", extra={"source": source})
    return True


def restart_in_place() -> None:
    """The same command again, in this process: it reads the new catalog and resumes what ran."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # noqa: S606 - our own command line


if __name__ == "__main__":
    raise SystemExit(main())
