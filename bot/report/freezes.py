"""`/tugboat freezes`: the freeze windows holding now and the next ones, per environment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.domain.catalog import Catalog
from bot.domain.freezes import when, windows
from bot.domain.records import Target
from bot.domain.text import Text, bold, emoji, text

UPCOMING = 3
"""Windows listed per environment after those holding now."""


def freeze_lines(catalog: Catalog, targets: Sequence[Target], now: datetime | None = None) -> list[Text]:
    """Per environment with windows: those holding now, then the next few, in its timezone."""
    at = now or datetime.now(UTC)
    lines: list[Text] = []
    calm: list[str] = []
    for target in targets:
        _, env = catalog.target(target.app, target.env)
        found = windows(env.freeze, env.timezone, at) if env.freeze else []
        if not found:
            calm.append(str(target))
            continue
        lines.append(bold(f"{target}") + text(f" ({env.timezone})"))
        holding = [w for w in found if w.holds(at)]
        for window in holding:
            until = when(window.ends, env.timezone)
            lines.append(text("  ", emoji("snowflake"), f" frozen now, until {until}: ", window.reason))
        for window in [w for w in found if not w.holds(at)][:UPCOMING]:
            span = f"{when(window.starts, env.timezone)} → {when(window.ends, env.timezone)}"
            lines.append(text(f"  • next: {span}: ", window.reason))
    if calm:
        lines.append(text("No freeze windows ahead for ", ", ".join(calm), "."))
    return lines
