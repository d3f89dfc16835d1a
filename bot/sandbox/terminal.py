"""`tugboat sandbox`: the whole bot against a simulated ECS and a terminal standing in for Slack.

Typed (or piped) lines go to the bot as slash commands or mentions over the fake Slack's
Socket Mode, so the real bot handles them exactly as in production. Every message it posts
is printed as the thread changes. At end of input it waits for the work, then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bot.aws.watcher import PollTiming
from bot.domain.catalog import Catalog, load_catalog
from bot.runtime import Tugboat, Tuning
from bot.sandbox.fake_slack import Change, FakeSlack, Message
from bot.sandbox.mrkdwn import readable
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings

EXAMPLE_CATALOG = Path(__file__).with_name("example.yml")
USER = "U0DEV"
CHANNEL = "C0DEV"
BANNER = """\
Tugboat sandbox: a simulated ECS (moto) and this terminal as Slack. No accounts needed.
You are <@U0DEV> in #dev. Try:
  /deploy api staging v2        /deploy api staging broken     /ecs-status api staging
  /tugboat help                 (end with Ctrl-D)
"""
COLORS = {
    "posted": "\033[1;36m",
    "updated": "\033[36m",
    "ephemeral": "\033[33m",
    "reply": "\033[0m",
}
RESET = "\033[0m"


class ThreadPrinter:
    """Prints what a Slack user would see, as it changes: parents, replies and ephemerals."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self._out = out
        self._color = color
        self._lock = threading.Lock()
        self._last_parent: dict[str, str] = {}

    def __call__(self, change: Change) -> None:
        message = change.message
        if not isinstance(message, Message) or message.user == USER:
            return
        with self._lock:
            self._print(change.kind, message)

    def _print(self, kind: str, message: Message) -> None:
        text = readable(message.flat.strip())
        if kind == "ephemeral":
            self._write("ephemeral", f"(only you) {text}")
        elif message.thread_ts and message.thread_ts != message.ts:
            self._write("reply", _indent(text, "   │ "))
        elif kind in ("posted", "updated"):
            key = f"{message.channel}:{message.ts}"
            if self._last_parent.get(key) == text:
                return
            self._last_parent[key] = text
            marker = "●" if kind == "posted" else "↻"
            self._write(kind, f"{marker} #{message.channel}  " + text.replace("\n", "\n   "))

    def _write(self, style: str, text: str) -> None:
        if self._color:
            text = f"{COLORS.get(style, '')}{text}{RESET}"
        self._out.write(text + "\n")
        self._out.flush()


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


@contextlib.contextmanager
def sandbox_world(rollout_seconds: float) -> Iterator[tuple[SandboxWorld, FakeSlack]]:
    """The simulated ECS and the fake Slack, seeded with the example catalog's world."""
    world = SandboxWorld(rollout_seconds=rollout_seconds)
    fake = FakeSlack()
    world.start()
    try:
        world.seed_example()
        fake.start()
        try:
            yield world, fake
        finally:
            fake.stop()
    finally:
        world.stop()


def sandbox_settings(fake: FakeSlack, state: Path, events_queue: str | None = None) -> Settings:
    """Settings that point the bot at the fake Slack, with its state in the SQLite file `state`.

    `events_queue`: the world's ECS events queue (`SandboxWorld.enable_events()`); None polls only.
    """
    return Settings(
        slack_bot_token=fake.bot_token,
        slack_app_token=fake.app_token,
        slack_api_url=fake.api_url,
        tugboat_state=f"sqlite:///{state}",
        tugboat_events_queue=events_queue,
        port=0,
        metrics_port=0,
    )


def run_sandbox(
    rollout_seconds: float = 4.0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    catalog_path: Path = EXAMPLE_CATALOG,
    *,
    events: bool = True,
) -> int:
    source = stdin or sys.stdin
    out = stdout or sys.stdout
    catalog = load_catalog(catalog_path)
    with sandbox_world(rollout_seconds) as (world, fake), tempfile.TemporaryDirectory() as state:
        os.environ.update(world.env())
        queue = world.enable_events() if events else None
        settings = sandbox_settings(fake, Path(state) / "tugboat.db", queue)
        return asyncio.run(_converse(settings, catalog, fake, source, out))


async def _converse(
    settings: Settings, catalog: Catalog, fake: FakeSlack, source: TextIO, out: TextIO
) -> int:
    interactive = source.isatty()
    tuning = Tuning(
        poll=PollTiming.brisk(0.5),
        thread_interval_s=1.0,
        http_host="127.0.0.1",
        events_wait_s=1,
    )
    bot = Tugboat(settings, catalog, tuning=tuning)
    await bot.start()
    unsubscribe = fake.subscribe(ThreadPrinter(out, color=out.isatty()))
    out.write(BANNER if interactive else "")
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        while True:
            if interactive:
                out.write("> ")
                out.flush()
            line = await loop.run_in_executor(None, source.readline)
            if not line:
                break
            if _send(fake, line.strip(), out) is not None:
                sent += 1
        await _received(bot, sent)
        await bot.idle()
        await fake.settled()  # the final edits are printed before the printer goes
    finally:
        unsubscribe()
        await bot.stop()
    return 0


def _send(fake: FakeSlack, line: str, out: TextIO) -> str | None:
    if not line or line.startswith("#"):
        return None
    if line.startswith("/"):
        command, _, text = line.partition(" ")
        out.write(f"$ {line}\n")
        return fake.slash_command(command, text.strip(), user=USER, channel=CHANNEL)
    if line.lower().startswith(("@tugboat", "tugboat")):
        text = line.split(" ", 1)[1] if " " in line else ""
        out.write(f"$ {line}\n")
        return fake.mention(text, user=USER, channel=CHANNEL)
    out.write("Type a slash command such as /deploy api staging v2, or @tugboat status.\n")
    return None


async def _received(bot: Tugboat, sent: int, timeout: float = 10.0) -> None:
    """Wait until the bot has taken every command sent, so its work is tracked before we wait."""
    deadline = asyncio.get_running_loop().time() + timeout
    while bot.dispatcher.received < sent and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - bounded poll of another component's counter
        await asyncio.sleep(0.02)
