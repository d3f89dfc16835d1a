"""`/tugboat stats`: the four DORA figures of a seeded history, against sums done by hand.

The history (api production, `now` = the moment the figures are asked for):

| record | created      | took  | result                          | commit made      | reached ECS |
| ------ | ------------ | ----- | ------------------------------- | ---------------- | ----------- |
| old    | now - 40 d   | 600 s | succeeded (outside 30 days)     |                  | yes         |
| d1     | now - 20 d   | 600 s | succeeded                       | 2 h before start | yes         |
| d2     | now - 15 d   | 900 s | failed, rolled itself back      |                  | yes         |
| d3     | now - 10 d   | 300 s | succeeded, then rolled back     | 1 h before start | yes         |
| r1     | d3 + 1 h     | 200 s | rollback succeeded              |                  | yes         |
| d4     | now - 5 d    | 400 s | succeeded                       | 30 m before      | yes         |
| d5     | now - 2 d    | 100 s | failed in before_deploy         |                  | no          |
| d6     | now - 1 d    | 500 s | failed, not rolled back         |                  | yes         |
| d7     | d6 + 1 h     | 600 s | succeeded                       | unknown          | yes         |
| card   | now - 3 d    |       | an expired confirmation         |                  | no          |
| task   | now - 3 d    | 60 s  | a run-task                      |                  | no          |

By hand, over 30 days:
- deploy frequency: d1, d3, d4, d7 went live: 4 deploys, 4 / 30 = 0.13 a day;
- lead time: d1 600 + 7200 = 7800 s, d3 300 + 3600 = 3900 s, d4 400 + 1800 = 2200 s; median 3900 s;
- changes: d1, d2, d3, d4, d6, d7 (d5 never reached ECS) = 6; failed: d2, d3 (rolled back
  next), d6 = 3: 50 %;
- time to restore: d2 its own 900 s; d3 from its end to r1's end, 3600 + 200 - 300 = 3500 s;
  d6 from its start to d7's end, 3600 + 600 = 4200 s; median 3500 s.
Over 7 days: d4, d6, d7: 2 deploys (0.29 a day), lead 2200 s, 1 of 3 failed, restore 4200 s.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiohttp import ClientSession

from bot.domain.catalog import load_catalog
from bot.domain.records import OperationRecord, Phase, Target
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.state import SqliteStore
from commands import stats
from tests.conftest import EXAMPLE, running
from tests.slackview import answer_to

DAY, HOUR = 86_400.0, 3600.0


def op(
    name: str,
    action: str,
    created: float,
    took: float,
    state: str,
    *,
    ecs: bool = True,
    phase: Phase = Phase.DONE,
    committed: float | None = None,
) -> OperationRecord:
    record = OperationRecord(action, "api", "production", "U0DEV", name, state=state, phase=phase)
    record.created_at, record.ended_at = created, created + took
    record.deployment_id = f"ecs-svc/{name}" if ecs else None
    if committed is not None:
        record.extra["committed_at"] = committed
    return record


def seeded(now: float) -> list[OperationRecord]:
    d3, d6 = now - 10 * DAY, now - 1 * DAY
    return [
        op("old", "deploy", now - 40 * DAY, 600, "succeeded"),
        op("d1", "deploy", now - 20 * DAY, 600, "succeeded", committed=now - 20 * DAY - 2 * HOUR),
        op("d2", "deploy", now - 15 * DAY, 900, "failed", phase=Phase.ROLLED_BACK),
        op("d3", "deploy", d3, 300, "succeeded", committed=d3 - HOUR),
        op("r1", "rollback", d3 + HOUR, 200, "succeeded"),
        op("d4", "deploy", now - 5 * DAY, 400, "succeeded", committed=now - 5 * DAY - 1800),
        op("d5", "deploy", now - 2 * DAY, 100, "failed", ecs=False, phase=Phase.STOPPED),
        op("d6", "deploy", d6, 500, "failed", phase=Phase.STOPPED),
        op("d7", "deploy", d6 + HOUR, 600, "succeeded"),
        op("card", "deploy", now - 3 * DAY, 0, "expired", ecs=False, phase=Phase.AWAITING_CONFIRMATION),
        op("task", "run-task", now - 3 * DAY, 60, "succeeded", ecs=False),
    ]


def test_thirty_days_of_a_seeded_history_match_the_figures_done_by_hand() -> None:
    now = 1_700_000_000.0
    found = stats.figures(list(reversed(seeded(now))), now=now, days=30)

    assert (found.deploys, round(found.deploys_per_day, 2)) == (4, 0.13)
    assert (found.lead_time_s, found.lead_times) == (3900, 3)
    assert (found.failed_changes, found.changes, found.change_failure_rate) == (3, 6, 0.5)
    assert (found.time_to_restore_s, found.restores) == (3500, 3)


def test_a_shorter_window_counts_only_its_own_days() -> None:
    now = 1_700_000_000.0
    found = stats.figures(seeded(now), now=now, days=7)

    assert (found.deploys, round(found.deploys_per_day, 2)) == (2, 0.29)
    assert found.lead_time_s == 2200
    assert (found.failed_changes, found.changes) == (1, 3)
    assert found.time_to_restore_s == 4200


def test_an_empty_history_measures_nothing_and_says_so() -> None:
    found = stats.figures([], now=1_700_000_000.0, days=30)
    shown = "\n".join(str(line) for line in stats.lines(stats_target(), found))

    assert found.deploys == 0 and found.change_failure_rate is None
    assert found.lead_time_s is None and found.time_to_restore_s is None
    assert "0 deploys" in shown and "unknown (no changes)" in shown and "nothing to restore" in shown


def stats_target() -> Target:
    return Target("api", "production")


async def metric(port: int | None, name: str) -> float | None:
    """One gauge of api production as /metrics shows it now; None when it is not there."""
    async with ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as answer:
        body = await answer.text()
    prefix = f'{name}{{app="api",env="production"}} '
    line = next((line for line in body.splitlines() if line.startswith(prefix)), None)
    return float(line.removeprefix(prefix)) if line else None


async def test_tugboat_stats_shows_the_four_figures_and_metrics_export_them(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "stats.db"
    store = SqliteStore(state)
    await store.open()
    for record in seeded(time.time()):
        await store.save(record)
    await store.close()

    async with running(fake, load_catalog(EXAMPLE), state) as bot:
        answer = await answer_to(fake, "/tugboat", "stats api production", containing="DORA figures")
        week = await answer_to(fake, "/tugboat", "stats api production 7", containing="last 7 days")
        refused = await answer_to(fake, "/tugboat", "stats api production 9999", containing="number of days")

        async def exported() -> dict[str, float | None] | None:
            names = ("deploys_per_day", "lead_time_seconds", "change_failure_rate", "time_to_restore_seconds")
            values = {n: await metric(bot.metrics_port, f"tugboat_dora_{n}") for n in names}
            return values if values["change_failure_rate"] == 0.5 else None

        gauges = await wait_for(exported, what="the DORA gauges of api production")

    assert "DORA figures for api production, last 30 days" in answer
    assert "Deploy frequency: 4 deploys, 0.13 a day" in answer
    assert "Lead time for changes: 1h 05m (median of 3 deploys whose commit time is known)" in answer
    assert "Change failure rate: 50% (3 of 6 changes failed or were rolled back)" in answer
    assert "Time to restore: 58m (median of 3 restores)" in answer
    assert "2 deploys, 0.29 a day" in week and "Time to restore: 1h 10m" in week
    assert "expected 1 to 365" in refused
    assert gauges["lead_time_seconds"] == 3900 and gauges["time_to_restore_seconds"] == 3500
    assert gauges["deploys_per_day"] == 4 / 30
