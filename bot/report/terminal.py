"""TerminalReporter: a progress thread printed to a terminal or a CI log.

The third renderer of progress events, after Slack threads and the sandbox: it folds them into
the same ThreadView, so a CI log says what the Slack thread says, minus Slack's markup.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, TextIO

from bot.domain.events import ProgressEvent, RolloutProgress, Started
from bot.report.view import Detail, ThreadView
from bot.slack.status_cards import card_blocks, overview_line
from commands.status import ServiceStatus

EMOJI = {
    ":hourglass_flowing_sand:": "⏳",
    ":hourglass:": "⌛",
    ":white_check_mark:": "✅",
    ":x:": "❌",
    ":rewind:": "⏪",
    ":warning:": "⚠️",
    ":lock:": "🔒",
    ":unlock:": "🔓",
    ":rotating_light:": "🚨",
    ":large_green_circle:": "🟢",
    ":large_blue_circle:": "🔵",
    ":large_orange_circle:": "🟠",
    ":red_circle:": "🔴",
    ":black_circle:": "⚫",
}
STYLES = {
    "bold": "\033[1m",
    "dim": "\033[2m",
    "green": "\033[32m",
    "red": "\033[31m",
    "yellow": "\033[33m",
}
RESET = "\033[0m"
STATE_STYLE = {"succeeded": "green", "failed": "red"}

USER = re.compile(r"<@([^>|]+)(?:\|([^>]*))?>")
CHANNEL = re.compile(r"<#([^>|]+)(?:\|([^>]*))?>")
GROUP = re.compile(r"<!subteam\^([^>|]+)(?:\|([^>]*))?>")
SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>")
BARE_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)>")
BOLD = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*?\S)?)\*(?![\w*])")


def wants_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never in a CI log or file, and never with NO_COLOR set."""
    isatty = getattr(stream, "isatty", None)
    return callable(isatty) and bool(isatty()) and not os.environ.get("NO_COLOR")


def paint(text: str, style: str | None, color: bool) -> str:
    if not color or style is None:
        return text
    return f"{STYLES[style]}{text}{RESET}"


def readable(text: str, *, color: bool = False) -> str:
    """Slack mrkdwn as a terminal shows it: emoji, @mentions, link labels, bold only in colour."""
    for code, emoji in EMOJI.items():
        text = text.replace(code, emoji)
    text = DATE.sub(r"\1", text)
    text = LABELLED_LINK.sub(r"\2 (\1)", text)
    text = BARE_LINK.sub(r"\1", text)
    text = USER.sub(lambda m: "@" + (m.group(2) or m.group(1)), text)
    text = CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), text)
    text = GROUP.sub(lambda m: m.group(2) or "@" + m.group(1), text)
    text = SPECIAL.sub(r"@\1", text)
    return BOLD.sub(lambda m: paint(m.group(1), "bold", color), text)


class TerminalReporter:
    """The `emit` of a CLI run: prints each event's detail lines, then one final status line."""

    def __init__(self, view: ThreadView, out: TextIO | None = None, *, color: bool | None = None) -> None:
        self.view = view
        self.out = out or sys.stdout
        self.color = wants_color(self.out) if color is None else color
        self._counts: tuple[int | None, int | None, int | None] | None = None
        self._ended = False

    @property
    def succeeded(self) -> bool:
        return self.view.state == "succeeded"

    async def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, Started):
            self._write(readable(self.view.headline(), color=self.color), "bold")
        for detail in self.view.apply(event):
            self._detail(detail)
        if isinstance(event, RolloutProgress):
            self._progress()
        if self.view.finished and not self._ended:
            self._ended = True
            style = STATE_STYLE.get(self.view.state)
            self._write(readable(self.view.status_line(), color=self.color), style)

    def _progress(self) -> None:
        """A line when the task counts move: the parent message's counts, for a log."""
        view = self.view
        counts = (view.running, view.desired, view.pending)
        if counts == self._counts or view.finished or view.running is None:
            return
        self._counts = counts
        self._write(f"{self._stamp()}{view.running}/{view.desired} running, {view.pending} pending", "dim")

    def _detail(self, detail: Detail) -> None:
        first, *rest = readable(detail.text, color=self.color).splitlines() or [""]
        indent = " " * len(self._stamp())
        lines = [self._stamp() + first, *(indent + line for line in rest)]
        if detail.code:
            lines.extend(f"{indent}│ {line}" for line in detail.code.splitlines())
        self._write("\n".join(lines))

    def _stamp(self) -> str:
        return f"{self.view.elapsed():>7}  "

    def _write(self, text: str, style: str | None = None) -> None:
        self.out.write(paint(text, style, self.color) + "\n")
        self.out.flush()


def status_lines(statuses: list[ServiceStatus], *, detail: bool, color: bool = False) -> list[str]:
    """`tugboat status`: the Slack card for one environment, else one overview line each."""
    if detail:
        return [readable(_section_text(card_blocks(s)), color=color) for s in statuses]
    return [readable(overview_line(s), color=color) for s in statuses]


def _section_text(blocks: list[dict[str, Any]]) -> str:
    """The text of a card's sections; its buttons mean nothing in a terminal."""
    texts = [b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b]
    return "\n".join(str(t) for t in texts)
