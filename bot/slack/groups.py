"""Members of Slack user groups, for the permission rules that name groups."""

from __future__ import annotations

import logging
import time

from bot.slack.api import SlackApi

log = logging.getLogger(__name__)


class GroupDirectory:
    """Members of Slack user groups, cached for a few minutes (usergroups.users.list)."""

    def __init__(self, slack: SlackApi, ttl_s: float = 300.0) -> None:
        self._slack = slack
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def members(self, group: str) -> frozenset[str]:
        cached = self._cache.get(group)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            answer = await self._slack.call("usergroups.users.list", deadline_s=10, usergroup=group)
            users = frozenset(str(u) for u in answer.get("users", []))
        except Exception:
            log.warning("could not list user group members", extra={"group": group})
            users = cached[1] if cached is not None else frozenset()
        self._cache[group] = (time.monotonic() + self._ttl_s, users)
        return users
