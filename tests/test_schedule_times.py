"""When a schedule runs next, as the status card says it: AWS's cron dialect, `at` and `rate`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.schedules import next_run

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "zone", "expected"),
    [
        ("cron(0 3 * * ? *)", None, "2026-12-03T03:00:00+00:00"),
        # Weekdays count from Sunday = 1 in AWS: 2-6 is Monday to Friday.
        ("cron(0 9 ? * 2-6 *)", "Europe/Berlin", "2026-12-03T09:00:00+01:00"),
        ("cron(0 9 ? * MON *)", None, "2026-12-07T09:00:00+00:00"),
        ("cron(0 9 ? * 6#3 *)", None, "2026-12-18T09:00:00+00:00"),  # the third Friday
        ("cron(15 10 ? * 6L 2027)", None, "2027-01-29T10:15:00+00:00"),  # the last Friday, next year
        ("cron(0 0 L * ? *)", None, "2026-12-31T00:00:00+00:00"),
        ("at(2027-01-01T00:00:00)", "America/New_York", "2027-01-01T00:00:00-05:00"),
    ],
)
def test_next_run_reads_aws_expressions(expression: str, zone: str | None, expected: str) -> None:
    found = next_run(expression, zone, NOW)
    assert found is not None and found.isoformat() == expected


@pytest.mark.parametrize(
    "expression",
    ["rate(1 hour)", "at(2020-01-01T00:00:00)", "cron(0 3 * *)", "cron(nonsense here a b c d)", ""],
)
def test_next_run_is_none_when_it_cannot_be_told(expression: str) -> None:
    assert next_run(expression, None, NOW) is None


def test_an_unknown_time_zone_gives_no_next_run() -> None:
    assert next_run("cron(0 3 * * ? *)", "Mars/Olympus", NOW) is None
