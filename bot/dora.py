"""The DORA figures of every catalog target, exported as gauges on /metrics (30 days).

Recomputed from the state store's history at start and every few minutes; `/tugboat stats`
computes the same figures (`commands/stats.py`) for any window on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from bot import metrics
from bot.domain.catalog import Catalog
from bot.state import StateStore
from commands import stats as stats_action

log = logging.getLogger(__name__)


async def export(store: StateStore, catalog: Catalog, *, now: float | None = None) -> None:
    """Set the four gauges of each target; a figure that cannot be measured is left out."""
    at = time.time() if now is None else now
    for app, env in catalog.targets():
        found = stats_action.figures(
            await store.history(app, env, stats_action.HISTORY_LIMIT), now=at, days=stats_action.DEFAULT_DAYS
        )
        values = {
            metrics.DORA_DEPLOYS_PER_DAY: found.deploys_per_day,
            metrics.DORA_LEAD_TIME: found.lead_time_s,
            metrics.DORA_CHANGE_FAILURE_RATE: found.change_failure_rate,
            metrics.DORA_TIME_TO_RESTORE: found.time_to_restore_s,
        }
        for gauge, value in values.items():
            if value is not None:
                gauge.labels(app=app, env=env).set(value)
            else:
                with contextlib.suppress(KeyError):
                    gauge.remove(app, env)


async def export_forever(store: StateStore, catalog: Catalog, interval_s: float) -> None:
    """`export` now and every `interval_s`; a failed pass is logged and counted, then retried."""
    while True:
        try:
            await export(store, catalog)
        except Exception:
            metrics.BACKGROUND_FAILURES.labels(what="dora").inc()
            log.exception("DORA figures not exported; trying again next round")
        await asyncio.sleep(interval_s)
