"""Freeze windows: when deploys of an environment are refused (SPEC part two, "Freezes").

The catalog's `freeze:` entries as values, and the one computation of which window holds at a
given time and which come next. Recurring windows start at each time of a 5-field cron
expression, read in the environment's timezone; one-off windows have a start and an end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DURATION = re.compile(r"^(\d{1,5})([mhd])$")
"""A window's length: `30m`, `62h`, `3d`."""
UNIT_S = {"m": 60, "h": 3600, "d": 86_400}
MAX_DURATION_S = 31 * 86_400
MAX_MERGED = 500
"""Overlapping recurring windows merge into one; past this many, the window is taken as endless."""


def parse_duration(value: str) -> int:
    """Seconds in `30m`, `62h` or `3d`; ValueError naming what would be right."""
    match = DURATION.match(value.strip())
    seconds = int(match.group(1)) * UNIT_S[match.group(2)] if match else 0
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a duration: expected a number and m, h or d, like 30m or 62h")
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{value!r} is longer than 31 days: use a one-off window with `from` and `to`")
    return seconds


def zone(name: str) -> ZoneInfo:
    """The IANA timezone `name`; ValueError when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r}: expected an IANA name like Europe/Berlin or UTC"
        ) from None


class FreezeEntry(BaseModel):
    """One `freeze:` entry: `{cron, duration, reason}` or `{from, to, reason}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    reason: str = Field(min_length=1, max_length=200)
    cron: str | None = None
    duration: str | None = None
    starts: datetime | None = Field(default=None, alias="from")
    ends: datetime | None = Field(default=None, alias="to")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if len(value.split()) != 5:
            raise ValueError(
                f"{value!r} is not a 5-field cron expression"
                " (minute hour day month weekday), like '0 18 * * FRI'"
            )
        try:
            CronSim(value, datetime(2000, 1, 1))
        except CronSimError as exc:
            raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from None
        return value

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeEntry:
        recurring = self.cron is not None or self.duration is not None
        one_off = self.starts is not None or self.ends is not None
        if recurring == one_off:
            raise ValueError(
                "give either `cron` and `duration` (a recurring window) or `from` and `to` (a one-off)"
            )
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError(
                "a recurring window needs both `cron` (when it starts) and `duration` (like 62h)"
            )
        if one_off:
            if self.starts is None or self.ends is None:
                raise ValueError("a one-off window needs both `from` and `to`, like 2026-12-23T00:00:00Z")
            if self.starts.tzinfo is None or self.ends.tzinfo is None:
                raise ValueError("`from` and `to` need a timezone, like 2026-12-23T00:00:00Z or …+01:00")
            if self.ends <= self.starts:
                raise ValueError("`to` must be after `from`")
        return self

    @property
    def seconds(self) -> int:
        return parse_duration(self.duration) if self.duration else 0


@dataclass(frozen=True)
class FreezeWindow:
    """One stretch of time in which deploys are refused, and why."""

    starts: datetime
    ends: datetime | None
    """None: recurring windows that overlap without end."""
    reason: str

    def holds(self, now: datetime) -> bool:
        return self.starts <= now and (self.ends is None or now < self.ends)


def _recurring_from(entry: FreezeEntry, tz: ZoneInfo, after: datetime) -> list[FreezeWindow]:
    """The windows of a recurring entry that end after `after`: the one holding then, and the next.

    Windows that overlap (a duration longer than the gap between starts) are one window.
    """
    assert entry.cron is not None
    length = timedelta(seconds=entry.seconds)
    starts = CronSim(entry.cron, (after - length).astimezone(tz).replace(second=0, microsecond=0))
    found: list[FreezeWindow] = []
    for count, start in enumerate(starts):
        end = start + length
        if end <= after:
            continue
        last = found[-1] if found else None
        if last is not None and last.ends is not None and start <= last.ends:
            found[-1] = FreezeWindow(last.starts, end, entry.reason)
        elif len(found) == 2:
            break
        else:
            found.append(FreezeWindow(start, end, entry.reason))
        if count >= MAX_MERGED:  # a cron that never leaves a gap: frozen for good
            found[-1] = FreezeWindow(found[-1].starts, None, entry.reason)
            break
    return found


def windows(entries: Sequence[FreezeEntry], timezone: str, now: datetime) -> list[FreezeWindow]:
    """The window holding at `now` (if any) and the next ones, soonest first, one or two per entry."""
    tz = zone(timezone)
    found: list[FreezeWindow] = []
    for entry in entries:
        if entry.cron is not None:
            found.extend(_recurring_from(entry, tz, now))
        elif entry.ends is not None and entry.starts is not None and entry.ends > now:
            found.append(FreezeWindow(entry.starts.astimezone(tz), entry.ends.astimezone(tz), entry.reason))
    return sorted(found, key=lambda w: w.starts)


def active(entries: Sequence[FreezeEntry], timezone: str, now: datetime | None = None) -> FreezeWindow | None:
    """The window that holds now; of several, the one that ends last (deploys wait for all)."""
    at = now or datetime.now(UTC)
    holding = [w for w in windows(entries, timezone, at) if w.holds(at)]
    if not holding:
        return None
    return max(holding, key=lambda w: w.ends or datetime.max.replace(tzinfo=UTC))


def when(at: datetime | None, timezone: str) -> str:
    """A time as people of the environment read it: `Mon 5 Jan 2027 09:00 Europe/Berlin`."""
    if at is None:
        return "further notice"
    local = at.astimezone(zone(timezone))
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {timezone}"
