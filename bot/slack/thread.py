"""ThreadReporter: turns progress events into one Slack thread, gently.

Events arrive fast; Slack allows about one post per second per channel and a few dozen
edits a minute. The record is already folded when an event arrives, so an event only queues
the view's detail lines for it and marks the parent stale; one flusher per thread sends at
most one reply and one parent edit every `min_interval_s` (growing as a long rollout goes
on), and always sends the final state, retrying through 429s until it lands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import KW_ONLY, dataclass
from typing import TypeVar

from bot.domain.events import GateAnswered, GatePaused, ImageVerified, ProgressEvent
from bot.domain.text import Text, text
from bot.report.view import Detail, ThreadView
from bot.slack.api import SlackApi
from bot.slack.blocks import detail_blocks, detail_text, parent_blocks, parent_text
from bot.slack.gates import gate_blocks

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_FAILURES = 5
MAX_INTERVAL_S = 60.0
"""Edits start ~3 s apart and double to a minute as a long rollout goes on; the final state is
immediate. An uneventful deploy then costs about a dozen Slack calls however long it queues."""


@dataclass(eq=False)
class ThreadReporter:
    """Owns one thread: its parent message and its replies."""

    slack: SlackApi
    channel: str
    view: ThreadView
    _: KW_ONLY
    ts: str | None = None
    min_interval_s: float = 3.0

    def __post_init__(self) -> None:
        self._interval_s = self.min_interval_s
        self._max_interval_s = max(self.min_interval_s, MAX_INTERVAL_S)
        self._pending: list[Detail] = []
        self._parent_dirty = False
        self._wake = asyncio.Event()
        self._last_flush = 0.0
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0
        self._sending = asyncio.Lock()
        """One flush at a time: a pause's reply flushes what came before it, beside the flusher."""

    @property
    def permalink(self) -> str | None:
        return self.slack.permalink(self.channel, self.ts) if self.ts else None

    async def open(self) -> str:
        """Post the parent message now (the requester gets its link) and start flushing."""
        if self.ts is None:
            self.ts = await self.slack.post(self.channel, parent_text(self.view), parent_blocks(self.view))
            self._last_flush = time.monotonic()
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"thread-{self.ts}")
        return self.ts

    async def __call__(self, event: ProgressEvent) -> None:
        """Report one event (already folded into the record): queue its lines, wake the flusher."""
        if isinstance(event, ImageVerified):
            # The rollout starts now, however long the image took to appear: edit briskly again.
            self._interval_s = self.min_interval_s
        if isinstance(event, GatePaused | GateAnswered):
            await self._show_gate(event)
            return
        self._pending.extend(self.view.details(event))
        self._parent_dirty = True
        self._wake.set()

    async def _show_gate(self, event: GatePaused | GateAnswered) -> None:
        """A pause gets its own reply with buttons, at once; its end disables them.

        The reply's ts goes into the record (the lifecycle saves it after this), so a replica
        that adopts the operation edits the same message. A person's press edits the reply
        itself (who pressed, what ECS did): only a timeout or the deployment's end is shown here.
        """
        record = self.view.record
        gate = record.gate(event.hook_id)
        if gate is None or self.ts is None:
            return
        if isinstance(event, GateAnswered):
            if gate.ts is not None and not event.answered:
                summary, blocks = gate_blocks(record, gate, text(f"Ended: {event.outcome}."))
                await self._safely(self.slack.update(self.channel, gate.ts, summary, blocks))
            self._pending.extend(self.view.details(event))
            self._parent_dirty = True
            self._wake.set()
            return
        await self._flush()  # what came before the pause reaches the thread first
        summary, blocks = gate_blocks(record, gate)
        if gate.ts is not None:
            await self._safely(self.slack.update(self.channel, gate.ts, summary, blocks))
        else:
            gate.ts = await self._safely(self.slack.post(self.channel, summary, blocks, self.ts))
        self._parent_dirty = True
        self._wake.set()

    async def _safely(self, call: Awaitable[T]) -> T | None:
        try:
            return await call
        except Exception:
            log.exception("could not show a pause", extra={"channel": self.channel, "ts": self.ts})
            return None

    def say(self, line: Text | str) -> None:
        """Queue a line that is not an action event (a skipped auto-deploy, a takeover).

        A `str` is plain words, escaped like any other; build markup with `bot.domain.text`."""
        self._pending.append(Detail(line if isinstance(line, Text) else text(line)))
        self._wake.set()

    async def close(self) -> None:
        """Wait until everything, the final state included, has reached Slack."""
        self._closed = True
        self._wake.set()
        if self._flusher is not None:
            await self._flusher

    async def hand_over(self, line: Text) -> None:
        """Another replica owns this thread now: post `line`, drop the rest, never edit the parent.

        The parent shows the new owner's state; an edit from here would write a stale one over it.
        """
        await self.abandon()
        self._pending.clear()
        self._parent_dirty = False
        assert self.ts is not None
        detail = [Detail(line)]
        try:
            await self.slack.post(self.channel, detail_text(detail), detail_blocks(detail), self.ts)
        except Exception:
            log.exception("could not post the hand-over line", extra={"channel": self.channel, "ts": self.ts})

    async def abandon(self) -> None:
        """Stop flushing without waiting (shutdown); unsent lines are lost, the record is not."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            urgent = self._closed or self.view.finished
            wait = self._last_flush + self._interval_s - time.monotonic()
            if wait > 0 and not urgent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._sleep_unless_closed(), wait)
            await self._flush()
            if self._closed and not self._pending and not self._parent_dirty:
                return

    async def _sleep_unless_closed(self) -> None:
        while not self._closed and not self.view.finished:
            self._wake.clear()
            await self._wake.wait()

    async def _flush(self) -> None:
        async with self._sending:
            await self._flush_now()

    async def _flush_now(self) -> None:
        assert self.ts is not None
        self._last_flush = time.monotonic()
        self._interval_s = min(self._max_interval_s, self._interval_s * 2)
        try:
            while self._pending:  # replies first: the parent never runs ahead of its thread
                details = list(self._pending)
                await self.slack.post(self.channel, detail_text(details), detail_blocks(details), self.ts)
                del self._pending[: len(details)]
            if self._parent_dirty:
                self._parent_dirty = False
                await self.slack.update(
                    self.channel, self.ts, parent_text(self.view), parent_blocks(self.view)
                )
            self._failures = 0
        except Exception:
            self._failures += 1
            log.exception("thread update failed", extra={"channel": self.channel, "ts": self.ts})
            if self._failures >= MAX_FAILURES:
                self._pending.clear()
                return
            self._parent_dirty = True
            await asyncio.sleep(min(30.0, 2.0**self._failures))
            self._wake.set()
