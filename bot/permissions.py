"""Who may do what where: the catalog's allowed_* and read_* rules, checked on every action.

Slash commands, mentions and button clicks all come through `Permissions.check`, so a click
on someone else's button is judged exactly like the command it stands for.
"""

from __future__ import annotations

import logging
import time

from bot.domain.catalog import Catalog, Environment
from bot.domain.records import Target
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


class Permissions:
    """Decides whether a user, in a channel, may act on (or read) a target."""

    def __init__(self, catalog: Catalog, groups: GroupDirectory) -> None:
        self._catalog = catalog
        self._groups = groups

    async def check(self, target: Target, actor: str, channel: str | None, *, write: bool) -> str | None:
        """Why the request is refused, naming the rule, or None when it is allowed."""
        _, env = self._catalog.target(target.app, target.env)
        if env.allowed_channels and channel is not None and channel not in env.allowed_channels:
            places = ", ".join(f"<#{c}>" for c in env.allowed_channels)
            return f"{target} takes commands only in {places} (`allowed_channels`)."
        if write:
            if await self._may_act(env, actor):
                return None
            return f"You may not act on {target}: you are not in its `allowed_users` or `allowed_groups`."
        if not (env.read_users or env.read_groups):
            return None
        if (
            actor in env.read_users
            or await self._in_groups(actor, env.read_groups)
            or await self._may_act(env, actor)
        ):
            return None
        return f"You may not read {target}: you are not in its `read_users` or `read_groups`."

    async def _may_act(self, env: Environment, actor: str) -> bool:
        if not env.allowed_users and not env.allowed_groups:
            return True
        return actor in env.allowed_users or await self._in_groups(actor, env.allowed_groups)

    async def _in_groups(self, actor: str, groups: list[str]) -> bool:
        for group in groups:
            if actor in await self._groups.members(group):
                return True
        return False
