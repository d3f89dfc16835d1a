"""Freeze windows and approval counting as values, and approvals in both state stores.

The store tests run against SQLite and against DynamoDB on a moto server, with two handles
on one table standing for two replicas (the `replicas` fixture of tests/test_store.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.change_control import ApprovalDesk
from bot.domain.approvals import Approval, ApprovalRule, press
from bot.domain.catalog import CatalogError
from bot.domain.freezes import FreezeEntry, active, parse_duration, when, windows
from bot.domain.records import Target
from bot.domain.text import Text
from bot.lifecycle import AuditTrail, Origin
from bot.state import StateStore
from tests import test_store
from tests.conftest import example_catalog

# The two-replica store fixtures of tests/test_store.py (SQLite, and DynamoDB on moto).
moto_endpoint, replicas = test_store.moto_endpoint, test_store.replicas

BERLIN = ZoneInfo("Europe/Berlin")
WEEKEND = FreezeEntry.model_validate({"cron": "0 18 * * FRI", "duration": "62h", "reason": "weekend"})


def test_a_weekly_window_holds_from_friday_evening_to_monday_morning_in_its_timezone() -> None:
    saturday = datetime(2026, 3, 21, 12, 0, tzinfo=BERLIN)
    window = active([WEEKEND], "Europe/Berlin", saturday)
    assert window is not None and window.reason == "weekend"
    assert window.starts == datetime(2026, 3, 20, 18, 0, tzinfo=BERLIN)
    assert when(window.ends, "Europe/Berlin") == "Mon 23 Mar 2026 08:00 Europe/Berlin"
    assert active([WEEKEND], "Europe/Berlin", datetime(2026, 3, 23, 8, 0, tzinfo=BERLIN)) is None
    assert active([WEEKEND], "Europe/Berlin", datetime(2026, 3, 20, 17, 59, tzinfo=BERLIN)) is None
    # The same cron read in UTC starts an hour later than in Berlin (CET is UTC+1).
    assert active([WEEKEND], "UTC", datetime(2026, 3, 20, 17, 30, tzinfo=UTC)) is None
    assert active([WEEKEND], "Europe/Berlin", datetime(2026, 3, 20, 17, 30, tzinfo=UTC)) is not None


def test_a_window_across_the_clock_change_ends_at_the_wall_clock_time() -> None:
    window = active([WEEKEND], "Europe/Berlin", datetime(2026, 3, 28, 12, 0, tzinfo=BERLIN))
    assert window is not None
    assert when(window.ends, "Europe/Berlin") == "Mon 30 Mar 2026 08:00 Europe/Berlin"  # CEST by then


def test_windows_lists_the_current_and_next_ones_and_one_offs_in_order() -> None:
    holidays = FreezeEntry.model_validate(
        {"from": "2026-12-23T00:00:00Z", "to": "2027-01-04T08:00:00Z", "reason": "holidays"}
    )
    found = windows([holidays, WEEKEND], "Europe/Berlin", datetime(2026, 12, 19, 12, 0, tzinfo=UTC))
    assert [w.reason for w in found] == ["weekend", "holidays", "weekend"]
    assert found[0].holds(datetime(2026, 12, 19, 12, 0, tzinfo=UTC))
    assert windows([holidays], "UTC", datetime(2027, 1, 5, tzinfo=UTC)) == []


def test_overlapping_recurring_windows_are_one_window_and_a_gapless_cron_never_ends() -> None:
    hourly = FreezeEntry.model_validate({"cron": "0 * * * *", "duration": "90m", "reason": "busy"})
    window = active([hourly], "UTC", datetime(2026, 1, 1, 12, 30, tzinfo=UTC))
    assert window is not None and window.ends is None
    assert when(window.ends, "UTC") == "further notice"


@pytest.mark.parametrize(
    ("value", "seconds"), [("30m", 1800), ("62h", 223_200), ("3d", 259_200), (" 1h ", 3600)]
)
def test_durations(value: str, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('{cron: "0 18 * *", duration: 2h, reason: x}', "not a 5-field cron expression"),
        ('{cron: "0 18 * * * *", duration: 2h, reason: x}', "not a 5-field cron expression"),
        ('{cron: "0 25 * * *", duration: 2h, reason: x}', "not a valid cron expression"),
        ('{cron: "0 18 * * FRI", duration: 62, reason: x}', "expected text"),
        (
            '{cron: "0 18 * * FRI", duration: 2w, reason: x}',
            "is not a duration: expected a number and m, h or d",
        ),
        ('{cron: "0 18 * * FRI", duration: 40d, reason: x}', "longer than 31 days"),
        ('{cron: "0 18 * * FRI", reason: x}', "needs both `cron` (when it starts) and `duration`"),
        ('{from: "2026-12-23T00:00:00", to: "2027-01-04T08:00:00Z", reason: x}', "need a timezone"),
        (
            '{from: "2027-01-04T08:00:00Z", to: "2026-12-23T00:00:00Z", reason: x}',
            "`to` must be after `from`",
        ),
        ('{cron: "0 18 * * FRI", duration: 2h, to: "2027-01-04T08:00:00Z", reason: x}', "give either"),
        ('{cron: "0 18 * * FRI", duration: 2h}', "freeze.0.reason: required key is missing"),
    ],
)
def test_bad_freeze_entries_name_the_key_and_what_is_expected(entry: str, problem: str) -> None:
    anchor = "        timeout: 600\n        schedules:"
    with pytest.raises(CatalogError, match=r"apps\.api\.environments\.production\.freeze\.0") as raised:
        example_catalog((anchor, f"        timeout: 600\n        freeze: [{entry}]\n        schedules:"))
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            "        timezone: Mars/Olympus\n",
            "timezone: unknown timezone 'Mars/Olympus': expected an IANA name",
        ),
        ("        approval: {required: 0}\n", "approval.required: expected a number at least 1"),
        (
            "        approval: {for: [deploy, dance]}\n",
            "unknown action 'dance': expected some of deploy, rollback",
        ),
        ("        approval: {groups: [sre]}\n", "'sre' is not a Slack user group id"),
        ("        approval: {timeout: 0}\n", "approval.timeout: expected a number more than 0"),
        ("        approval: {who: me}\n", "approval.who: unknown key"),
    ],
)
def test_bad_approval_and_timezone_settings_are_catalog_errors(lines: str, problem: str) -> None:
    anchor = "        timeout: 600\n        schedules:"
    with pytest.raises(CatalogError) as raised:
        example_catalog((anchor, f"        timeout: 600\n{lines}        schedules:"))
    assert problem in str(raised.value)


def test_approval_defaults_follow_the_spec() -> None:
    catalog = example_catalog(
        (
            "        timeout: 600\n        schedules:",
            "        timeout: 600\n        approval: {}\n        schedules:",
        )
    )
    rule = catalog.apps["api"].environments["production"].approval
    assert rule == ApprovalRule(required=1, groups=[], actions=["deploy"], timeout=1800)
    assert rule.covers("deploy") and not rule.covers("rollback")


def request(required: int = 1, expires_in: float = 600) -> Approval:
    now = datetime.now(UTC).timestamp()
    return Approval("deploy", "api", "prod", "U0REQ", "v2", required, [], now + expires_in, "C0PROD")


def test_a_press_counts_once_per_distinct_user_never_the_requesters() -> None:
    approval = request(required=2)
    assert press(approval, "U0REQ") == "own"
    assert press(approval, "U0A") == "counted" and approval.awaiting == 1
    assert press(approval, "U0A") == "twice"
    assert press(approval, "U0B") == "approved" and approval.state == "approved"
    assert press(approval, "U0C") == "closed" and approval.approvers == ["U0A", "U0B"]
    late = request(expires_in=-1)
    assert press(late, "U0A") == "expired" and late.state == "expired" and late.approvers == []


# -- both stores --------------------------------------------------------------------------


class Everyone:
    async def may_approve(
        self, target: Target, actor: str, channel: str | None, groups: list[str]
    ) -> Text | None:
        return None


def desk(store: StateStore) -> ApprovalDesk:
    catalog = example_catalog()
    return ApprovalDesk(catalog=catalog, store=store, audit=AuditTrail(store), approvers=Everyone())


async def test_an_approval_is_written_only_from_the_version_read(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    approval = request()
    await one.create_approval(approval)
    first, second = await one.get_approval(approval.id), await two.get_approval(approval.id)
    assert first is not None and second is not None and first == approval
    first.approvers.append("U0A")
    second.approvers.append("U0B")
    assert await one.update_approval(first) and first.version == 1
    assert not await two.update_approval(second)  # read before the first write: refused
    stored = await two.get_approval(approval.id)
    assert stored is not None and stored.approvers == ["U0A"] and stored.version == 1
    assert await one.get_approval("nope") is None


@pytest.mark.parametrize("required", [1, 2])
async def test_presses_on_two_replicas_at_once_count_each_user_once(
    replicas: tuple[StateStore, StateStore], required: int
) -> None:
    one, two = replicas
    approval = request(required=required)
    await one.create_approval(approval)
    origins = [Origin(user, "C0PROD", "button") for user in ("U0A", "U0B")]
    results = await asyncio.gather(
        desk(one).press(approval.id, origins[0]), desk(two).press(approval.id, origins[1])
    )
    verdicts = sorted(r.verdict for r in results)
    stored = await one.get_approval(approval.id)
    assert stored is not None and stored.state == "approved"
    if required == 1:
        assert verdicts == ["approved", "closed"] and len(stored.approvers) == 1
    else:
        assert verdicts == ["approved", "counted"] and sorted(stored.approvers) == ["U0A", "U0B"]
    assert stored.version == required


async def test_a_late_timer_does_not_expire_an_approved_request(
    replicas: tuple[StateStore, StateStore],
) -> None:
    one, two = replicas
    approval = request()
    await one.create_approval(approval)
    assert (await desk(one).press(approval.id, Origin("U0A", "C0PROD"))).verdict == "approved"
    stale = request()
    stale.id, stale.version = approval.id, 0
    assert not await desk(two).settle(stale, "expired", "expired")
    stored = await two.get_approval(approval.id)
    assert stored is not None and stored.state == "approved"
    assert timedelta(seconds=stored.expires_at - stored.created_at) > timedelta(0)
