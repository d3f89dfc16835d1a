"""`tugboat sandbox`: the whole bot against a simulated ECS and a terminal standing in for Slack.

Typed (or piped) lines go to the bot as slash commands or mentions over the fake Slack's
Socket Mode, so the real bot handles them exactly as in production. Every message it posts
is printed as the thread changes, each thread line labelled with its thread, and its buttons
numbered so `/press 2` (or `/press Rollback`) presses them; `/as U0ADMIN` changes who you are.
Piped input and `--script FILE` run one command at a time, each once its work has ended;
typed input stays concurrent, as in Slack. At end of input it waits for the work, exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from bot.aws.watcher import PollTiming
from bot.domain.catalog import USER_ID, Catalog, load_catalog
from bot.runtime import Tugboat, Tuning
from bot.sandbox.fake_github import FakeGitHub
from bot.sandbox.fake_slack import Change, FakeSlack, Message
from bot.sandbox.mrkdwn import readable
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings
from bot.slack.app import SLASH_COMMANDS

EXAMPLE_CATALOG = Path(__file__).with_name("example.yml")
RELEASE_BLOCK = re.compile(r"^        services:.*\n(?:          .*\n)+", re.MULTILINE)
"""An environment's `services:` list in example.yml (the lines indented under it)."""
USER = "U0DEV"
CHANNEL = "C0DEV"
LABEL_WIDTH = 28
BANNER = """\
Tugboat sandbox: a simulated ECS (moto) and this terminal as Slack. No accounts needed.
The example app `api` is a release: services `api` and `api-worker` ship together.
You are <@U0DEV> in #dev. Try:
  /deploy api staging v2        /deploy api staging broken     /ecs-status api staging
  /as U0ADMIN                   (U0ADMIN and U0LEAD may act on production)
  /deploy api production v2     /as U0LEAD   /press Deploy   (buttons are numbered: /press 1)
  /tugboat help                 (end with Ctrl-D)
"""
NOT_A_COMMAND = (
    '{command} is not a valid command. In Slack, all messages that start with the "/" character'
    ' are interpreted as commands. If you are trying to send a message that starts with a "/"'
    ' character, try adding a space before the "/".'
)
"""What Slack itself answers to a slash command no installed app registered."""
COLORS = {
    "posted": "\033[1;36m",
    "updated": "\033[36m",
    "ephemeral": "\033[33m",
    "reply": "\033[0m",
}
RESET = "\033[0m"


@dataclass(frozen=True)
class Button:
    """A numbered button the terminal printed: enough to press it as Slack would."""

    number: int
    label: str
    channel: str
    ts: str
    action_id: str
    value: str | None
    ephemeral: bool


class ThreadPrinter:
    """Prints what a Slack user would see, as it changes: parents, replies and ephemerals."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self._out = out
        self._color = color
        self._lock = threading.Lock()
        self._last_parent: dict[str, str] = {}
        self._labels: dict[str, str] = {}
        self.buttons: dict[int, Button] = {}

    def __call__(self, change: Change) -> None:
        message = change.message
        if not isinstance(message, Message) or message.user != FakeSlack.bot_user_id:
            return
        with self._lock:
            self._print(change.kind, message)

    def press(self, which: str) -> Button | None:
        """The button numbered `which`, or the latest one labelled so (case aside)."""
        with self._lock:
            if which.isdigit():
                return self.buttons.get(int(which))
            named = [b for b in self.buttons.values() if b.label.lower() == which.lower()]
            return named[-1] if named else None

    def _print(self, kind: str, message: Message) -> None:
        seen = readable(message.flat.strip())
        if kind in ("posted", "updated") and not message.thread_ts:
            key = f"{message.channel}:{message.ts}"
            if self._last_parent.get(key) == seen:
                return  # an edit that changed nothing a reader sees (its buttons keep their numbers)
            self._last_parent[key] = seen
        text = self._numbered(message, seen)
        if kind == "ephemeral":
            self._write("ephemeral", f"(only you) {text}")
        elif message.thread_ts and message.thread_ts != message.ts:
            label = self._labels.get(f"{message.channel}:{message.thread_ts}", "thread")
            self._write("reply", _indent(text, f"   │ {label:<{LABEL_WIDTH}} │ "))
        elif kind in ("posted", "updated"):
            self._labels[f"{message.channel}:{message.ts}"] = _label(text)
            marker = "●" if kind == "posted" else "↻"
            self._write(kind, f"{marker} #{message.channel}  " + text.replace("\n", "\n   "))

    def _numbered(self, message: Message, text: str) -> str:
        """`[Rollback]` becomes `[3 Rollback]`, and button 3 is remembered for `/press 3`."""
        for action_id, label, value in _buttons(message):
            number = len(self.buttons) + 1
            self.buttons[number] = Button(
                number, label, message.channel, message.ts, action_id, value, message.is_ephemeral
            )
            text = text.replace(f"[{label}]", f"[{number} {label}]", 1)
        return text

    def _write(self, style: str, text: str) -> None:
        if self._color:
            text = f"{COLORS.get(style, '')}{text}{RESET}"
        self._out.write(text + "\n")
        self._out.flush()


def _buttons(message: Message) -> list[tuple[str, str, str | None]]:
    """(action_id, label, value) of each button in the message's blocks, in order."""
    found = []
    for block in message.blocks or []:
        elements = block.get("elements") if block.get("type") == "actions" else [block.get("accessory")]
        for element in elements or []:
            if isinstance(element, dict) and element.get("type") == "button":
                label = str((element.get("text") or {}).get("text", ""))
                found.append((str(element.get("action_id")), label, element.get("value")))
    return found


def _label(parent_text: str) -> str:
    """A thread's short label: the first words of its parent (`Deploy api staging: v2`)."""
    first = parent_text.splitlines()[0].strip("*_ ") if parent_text else "thread"
    return first if len(first) <= LABEL_WIDTH else first[: LABEL_WIDTH - 1] + "…"


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def one_service_example() -> str:
    """example.yml with each environment deploying `api` alone: for tests and benchmarks about
    one service (the world's `api-worker` stays, untouched)."""
    text, count = RELEASE_BLOCK.subn("        service: api\n", EXAMPLE_CATALOG.read_text(encoding="utf-8"))
    assert count == 2, "example.yml's staging and production are each a release"
    return text


EXAMPLE_GROUPS = {"S0ONCALL": ["U0ADMIN", "U0LEAD"]}
"""The example catalog's people: production's `allowed_groups` names this on-call group."""


def seed_example_people(fake: FakeSlack) -> None:
    """The Slack side of the example: its user groups, as the catalog names them."""
    for group, members in EXAMPLE_GROUPS.items():
        fake.set_usergroup(group, members)


@contextlib.contextmanager
def sandbox_world(
    rollout_seconds: float, minute_seconds: float = 6.0
) -> Iterator[tuple[SandboxWorld, FakeSlack]]:
    """The simulated ECS and the fake Slack, seeded with the example catalog's world."""
    world = SandboxWorld(rollout_seconds=rollout_seconds, minute_seconds=minute_seconds)
    fake = FakeSlack()
    world.start()
    try:
        world.seed_example()
        fake.start()
        seed_example_people(fake)
        try:
            yield world, fake
        finally:
            fake.stop()
    finally:
        world.stop()


def in_sandbox_world(run: Callable[[], int]) -> int:
    """`run` with AWS pointed at a freshly seeded sandbox world: `check --sandbox`, `init --sandbox`.

    The catalog is TUGBOAT_CONFIG when set (say, one `tugboat init` wrote), else the example's.
    """
    saved = dict(os.environ)
    world = SandboxWorld()
    world.start()
    try:
        world.seed_example()
        os.environ.update(world.env())
        os.environ.setdefault("TUGBOAT_CONFIG", str(EXAMPLE_CATALOG))
        return run()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        world.stop()


def sandbox_settings(
    fake: FakeSlack, state: Path, events_queue: str | None = None, github: FakeGitHub | None = None
) -> Settings:
    """Settings that point the bot at the fake Slack, with its state in the SQLite file `state`.

    `events_queue`: the world's ECS events queue (`SandboxWorld.enable_events()`); None polls only.
    `github`: the fake GitHub API, for Deployments, commits on cards and the CI gate.
    """
    return Settings(
        github_token=SecretStr(github.token) if github else None,
        github_api_url=github.api_url if github else "https://api.github.com/",
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
    minute_seconds: float = 6.0,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    catalog_path: Path = EXAMPLE_CATALOG,
    *,
    events: bool = True,
    script: Path | None = None,
) -> int:
    out = stdout or sys.stdout
    catalog = load_catalog(catalog_path)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(script.open(encoding="utf-8")) if script else (stdin or sys.stdin)
        world, fake = stack.enter_context(sandbox_world(rollout_seconds, minute_seconds))
        github = stack.enter_context(FakeGitHub())
        state = stack.enter_context(tempfile.TemporaryDirectory())
        os.environ.update(world.env())
        queue = world.enable_events() if events else None
        settings = sandbox_settings(fake, Path(state) / "tugboat.db", queue, github)
        return asyncio.run(_converse(settings, catalog, fake, source, out, scripted=script is not None))


@dataclass
class Session:
    """Who the terminal's user is now, and what they can press."""

    fake: FakeSlack
    printer: ThreadPrinter
    out: TextIO
    echo: bool
    user: str = USER
    sent: int = 0

    def handle(self, line: str) -> None:
        """One typed line: a sandbox verb, a slash command or a mention."""
        if not line:
            return
        if line.startswith("#"):
            if self.echo:
                self.out.write(f"{line}\n")
            return
        if self.echo:
            self.out.write(f"$ {line}\n")
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        if command == "/as":
            self._become(rest)
        elif command == "/press":
            self._press(rest)
        elif line.startswith("/"):
            self._slash(command, rest)
        elif line.lower().startswith(("@tugboat", "tugboat")):
            self.sent += 1
            self.fake.mention(rest, user=self.user, channel=CHANNEL)
        else:
            self.out.write("Type a slash command such as /deploy api staging v2, or @tugboat status.\n")

    def _become(self, who: str) -> None:
        user = who.strip("<@>")
        if not USER_ID.match(user):
            self.out.write("Usage: /as USER_ID, e.g. /as U0ADMIN\n")
            return
        self.user = user
        self.out.write(f"You are now <@{user}>.\n")

    def _press(self, which: str) -> None:
        button = self.printer.press(which) if which else None
        if button is None:
            self.out.write(f"No button {which!r} to press: say its number or its label.\n")
            return
        self.sent += 1
        if button.ephemeral:
            self.fake.click_ephemeral(button.ts, button.action_id, value=button.value)
        else:
            self.fake.click(button.channel, button.ts, button.action_id, user=self.user, value=button.value)

    def _slash(self, command: str, text: str) -> None:
        if command not in SLASH_COMMANDS:
            self.out.write("(only you, from Slackbot) " + NOT_A_COMMAND.format(command=command) + "\n")
            return
        self.sent += 1
        self.fake.slash_command(command, text, user=self.user, channel=CHANNEL)


async def _converse(
    settings: Settings,
    catalog: Catalog,
    fake: FakeSlack,
    source: TextIO,
    out: TextIO,
    *,
    scripted: bool = False,
) -> int:
    interactive = source.isatty() and not scripted
    tuning = Tuning(
        poll=PollTiming.brisk(0.5),
        thread_interval_s=1.0,
        http_host="127.0.0.1",
        events_wait_s=1,
    )
    bot = Tugboat(settings, catalog, tuning=tuning)
    await bot.start()
    printer = ThreadPrinter(out, color=out.isatty())
    unsubscribe = fake.subscribe(printer)
    session = Session(fake, printer, out, echo=not interactive)
    out.write(BANNER if interactive else "")
    loop = asyncio.get_running_loop()
    try:
        while True:
            if interactive:
                out.write("> ")
                out.flush()
            line = await loop.run_in_executor(None, source.readline)
            if not line:
                break
            session.handle(line.strip())
            if not interactive:  # one command at a time: each sees the end of the one before
                await _settled(bot, fake, session.sent)
        await _settled(bot, fake, session.sent)
    finally:
        unsubscribe()
        await bot.stop()
    return 0


async def _settled(bot: Tugboat, fake: FakeSlack, sent: int) -> None:
    """Every command sent is taken, its work has ended (or waits for a press), and Slack shows
    the last edits."""
    await _received(bot, sent)
    await bot.idle_or_waiting_on_people()
    await fake.settled()


async def _received(bot: Tugboat, sent: int, timeout: float = 10.0) -> None:
    """Wait until the bot has taken every command sent, so its work is tracked before we wait."""
    deadline = asyncio.get_running_loop().time() + timeout
    while bot.dispatcher.received < sent and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - bounded poll of another component's counter
        await asyncio.sleep(0.02)
