"""The `tugboat` command: serve, check, sandbox, and the CLI twins of the slash commands.

A bad setting or catalog stops the process at start with one line naming the problem.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from bot import logs
from bot.cli.check import run_check
from bot.cli.twins import TWINS, run_verb
from bot.domain.catalog import CatalogError, load_catalog
from bot.settings import Settings, SettingsError, load_settings


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
        "--no-events", action="store_true", help="watch by polling only, without ECS events (SQS)"
    )
    check = sub.add_parser(
        "check", help="say whether settings, catalog and each service's AWS parts are right"
    )
    check.add_argument("--slack", action="store_true", help="also try the Slack tokens")
    _add_twins(sub)
    args = parser.parse_args(argv)
    verb = args.verb or "serve"
    if verb == "check":
        return run_check(slack=args.slack)
    if verb in TWINS:
        return run_verb(verb, [*args.words, *(["--force"] if getattr(args, "force", False) else [])])
    if verb == "init-state":
        return init_state()
    if verb == "sandbox":
        from bot.sandbox.terminal import run_sandbox

        return run_sandbox(rollout_seconds=args.rollout_seconds, events=not args.no_events)
    return serve()


def _add_twins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """deploy, rollback, run-task, status: the slash commands' words, parsed by their grammar."""
    twins = {
        "deploy": ("APP ENV [REF] [--force]", "deploy an image tag or git sha, printing the thread"),
        "rollback": ("APP ENV [REVISION]", "roll back to the last good deploy, or to a revision"),
        "run-task": ("APP ENV TASK [ARGS...]", "run a catalog task as a one-off ECS task"),
        "status": ("[APP [ENV]]", "service status: one line per environment, or one card"),
    }
    for verb, (words, summary) in twins.items():
        twin = sub.add_parser(verb, help=summary, usage=f"tugboat {verb} {words}")
        if verb == "deploy":
            twin.add_argument("--force", action="store_true", help="deploy through a lock")
        twin.add_argument("words", nargs=argparse.REMAINDER, metavar=words)


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
        catalog = load_catalog(settings.tugboat_config)
    except (SettingsError, CatalogError) as exc:
        print(f"tugboat: {exc}", file=sys.stderr)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (
            settings.slack_bot_token,
            settings.slack_app_token,
            settings.github_webhook_secret,
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await bot.start()
    except (TokenRejected, SettingsError) as exc:
        # A token Slack refuses, or a port that is taken: one line, no traceback, exit 2.
        await bot.stop()
        print(f"tugboat: {exc}", file=sys.stderr)
        return 2
    await stop.wait()
    await bot.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
