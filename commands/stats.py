"""Stats: the four DORA figures of one target, from the operations Tugboat already recorded.

Pure: records in, figures out, so a seeded history can be checked against sums done by hand.
The definitions (docs/commands.md, `/tugboat stats`):
- a *change* is a deploy that reached ECS (it updated the service), succeeded or failed;
- *deploy frequency*: successful deploys in the window, per day;
- *lead time*: from commit to live (the deploy's end), median, over successful deploys whose
  commit time is known (a push's, or GitHub's);
- *change failure rate*: changes that failed, or that the next change on the target rolled
  back, over all changes;
- *time to restore*: from a failed change reaching production (the start of a rollout that
  failed, the end of one later rolled back) to a good revision running again (the end of its
  own completed rollback, else of the next successful deploy or rollback), median.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.records import OperationRecord, Phase, Target
from bot.domain.text import Text, bold, text

DAY_S = 86_400.0
DEFAULT_DAYS = 30
HISTORY_LIMIT = 2000
"""Records read per target: far more deploys than a year holds at any sane pace."""
CHANGES = ("deploy", "rollback")
ENDED = ("succeeded", "failed")


@dataclass(frozen=True)
class Figures:
    """The four figures over `days` days, with the counts behind each (None: nothing to measure)."""

    days: int
    deploys: int
    lead_time_s: float | None
    lead_times: int
    changes: int
    failed_changes: int
    time_to_restore_s: float | None
    restores: int

    @property
    def deploys_per_day(self) -> float:
        return self.deploys / self.days

    @property
    def change_failure_rate(self) -> float | None:
        return self.failed_changes / self.changes if self.changes else None


def _reached_ecs(record: OperationRecord) -> bool:
    return record.action in CHANGES and record.state in ENDED and record.deployment_id is not None


def _committed_at(record: OperationRecord) -> float | None:
    value = record.extra.get("committed_at")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def figures(history: Sequence[OperationRecord], *, now: float, days: int = DEFAULT_DAYS) -> Figures:
    """The figures of one target's `history` (any order) for the `days` days up to `now`."""
    since = now - days * DAY_S
    ended = sorted(
        (r for r in history if _reached_ecs(r) and r.ended_at is not None and r.created_at <= now),
        key=lambda r: r.created_at,
    )
    window = [r for r in ended if r.created_at >= since]
    deploys = [r for r in window if r.action == "deploy"]
    live = [r for r in deploys if r.state == "succeeded"]
    leads = [
        r.ended_at - committed
        for r in live
        if r.ended_at is not None and (committed := _committed_at(r)) is not None and committed <= r.ended_at
    ]
    failed = [r for r in deploys if _failed_change(r, ended)]
    restores = [t for r in failed if (t := _time_to_restore(r, ended)) is not None]
    return Figures(
        days=days,
        deploys=len(live),
        lead_time_s=statistics.median(leads) if leads else None,
        lead_times=len(leads),
        changes=len(deploys),
        failed_changes=len(failed),
        time_to_restore_s=statistics.median(restores) if restores else None,
        restores=len(restores),
    )


def _after(record: OperationRecord, ended: Sequence[OperationRecord]) -> list[OperationRecord]:
    return [r for r in ended if r.created_at > record.created_at]


def _failed_change(deploy: OperationRecord, ended: Sequence[OperationRecord]) -> bool:
    """It failed, or the next change on the target was a rollback."""
    if deploy.state == "failed":
        return True
    later = _after(deploy, ended)
    return bool(later) and later[0].action == "rollback"


def _time_to_restore(deploy: OperationRecord, ended: Sequence[OperationRecord]) -> float | None:
    """From the failure reaching production to a good revision running again; None: not yet."""
    assert deploy.ended_at is not None
    if deploy.state == "failed":
        if deploy.phase == Phase.ROLLED_BACK:  # its own rollback completed
            return deploy.ended_at - deploy.created_at
        start = deploy.created_at
    else:
        start = deploy.ended_at
    good = next((r for r in _after(deploy, ended) if r.state == "succeeded"), None)
    return None if good is None or good.ended_at is None else good.ended_at - start


# -- the reply -----------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """`45s`, `12m`, `3h 20m`, `2d 4h`: as exact as a glance needs."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < DAY_S:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86_400}d {s % 86_400 // 3600}h"


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def lines(target: Target, found: Figures) -> list[Text]:
    """The four figures, each with what it was measured on."""
    per_day = found.deploys_per_day
    rate = found.change_failure_rate
    lead = (
        f"{duration(found.lead_time_s)} (median of {_n(found.lead_times, 'deploy')}"
        " whose commit time is known)"
        if found.lead_time_s is not None
        else "unknown (no deploy with a known commit time)"
    )
    failure = (
        f"{rate * 100:.0f}% ({found.failed_changes} of {_n(found.changes, 'change')}"
        " failed or were rolled back)"
        if rate is not None
        else "unknown (no changes)"
    )
    restore = (
        f"{duration(found.time_to_restore_s)} (median of {_n(found.restores, 'restore')})"
        if found.time_to_restore_s is not None
        else "nothing to restore"
        if not found.failed_changes
        else "not restored yet"
    )
    return [
        bold(f"DORA figures for {target}, last {found.days} days"),
        text(f"• Deploy frequency: {_n(found.deploys, 'deploy')}, {per_day:.2f} a day"),
        text(f"• Lead time for changes: {lead}"),
        text(f"• Change failure rate: {failure}"),
        text(f"• Time to restore: {restore}"),
    ]
