"""TerminalReporter: a progress thread printed to a terminal or a CI log.

The renderer of progress events beside the Slack thread: it reads the same ThreadView (over the
record the lifecycle has already folded each event into) and writes its `Text` with
`text.plain`, so a CI log says what the Slack thread says, minus Slack's markup.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from bot.domain.events import ProgressEvent, RolloutProgress, Started
from bot.domain.text import Text, paint, plain, text
from bot.report.status import card_lines, overview_line
from bot.report.view import Detail, ThreadView
from commands.status import ServiceStatus

STATE_STYLE = {"succeeded": "green", "failed": "red"}


def wants_color(stream: TextIO) -> bool:
    """Colour only on a terminal, never in a CI log or file, and never with NO_COLOR set."""
    isatty = getattr(stream, "isatty", None)
    return callable(isatty) and bool(isatty()) and not os.environ.get("NO_COLOR")


class TerminalReporter:
    """The reporter of a CLI run: prints each event's detail lines, then one final status line."""

    def __init__(self, view: ThreadView, out: TextIO | None = None, *, color: bool | None = None) -> None:
        self.view = view
        self.out = out or sys.stdout
        self.color = wants_color(self.out) if color is None else color
        self._counts: tuple[int | None, int | None, int | None] | None = None
        self._ended = False

    @property
    def succeeded(self) -> bool:
        return self.view.record.state == "succeeded"

    async def __call__(self, event: ProgressEvent) -> None:
        if isinstance(event, Started):
            self._write(plain(self.view.headline(), color=self.color), "bold")
        for detail in self.view.details(event):
            self._detail(detail)
        if isinstance(event, RolloutProgress):
            self._progress()
        self._end()

    def say(self, line: Text | str) -> None:
        """A line that is not an action event (a takeover, a note from the front)."""
        self._detail(Detail(line if isinstance(line, Text) else text(line)))

    async def close(self) -> None:
        """Everything is written as it happens; the final status line, if not yet."""
        self._end()

    async def hand_over(self, line: Text) -> None:
        """The operation is someone else's now: say so, and write no final status line."""
        self._ended = True
        self.say(line)

    async def abandon(self) -> None:
        """Nothing is buffered, so nothing is lost."""

    def _end(self) -> None:
        if self.view.finished and not self._ended:
            self._ended = True
            style = STATE_STYLE.get(self.view.record.state)
            self._write(plain(self.view.status_line(), color=self.color), style)

    def _progress(self) -> None:
        """A line when the task counts move: the parent message's counts, for a log."""
        record = self.view.record
        counts = (record.running, record.desired, record.pending)
        if counts == self._counts or self.view.finished or record.running is None:
            return
        self._counts = counts
        self._write(
            f"{self._stamp()}{record.running}/{record.desired} running, {record.pending} pending", "dim"
        )

    def _detail(self, detail: Detail) -> None:
        first, *rest = plain(detail.text, color=self.color).splitlines() or [""]
        indent = " " * len(self._stamp())
        lines = [self._stamp() + first, *(indent + line for line in rest)]
        if detail.code:
            lines.extend(f"{indent}│ {line}" for line in detail.code.splitlines())
        self._write("\n".join(lines))

    def _stamp(self) -> str:
        return f"{self.view.elapsed():>7}  "

    def _write(self, line: str, style: str | None = None) -> None:
        self.out.write(paint(line, style, self.color) + "\n")
        self.out.flush()


def status_lines(statuses: list[ServiceStatus], *, detail: bool, color: bool = False) -> list[str]:
    """`tugboat status`: the card of one environment, else one overview line each."""
    if detail:
        return ["\n".join(plain(line, color=color) for line in card_lines(s)) for s in statuses]
    return [plain(overview_line(s), color=color) for s in statuses]
