"""Who may do what where: the catalog's allowed_* and read_* rules, checked on every action.

Slash commands, mentions and button clicks all come through `Permissions.check`, so a click
on someone else's button is judged exactly like the command it stands for.
"""

from __future__ import annotations

from typing import Protocol

from bot.domain.catalog import Catalog, Environment
from bot.domain.records import Target
from bot.domain.text import Text, channel, code, text


class Members(Protocol):
    """Who is in a user group (Slack's user groups, in production)."""

    async def members(self, group: str) -> frozenset[str]: ...


class Permissions:
    """Decides whether a user, in a channel, may act on (or read) a target."""

    def __init__(self, catalog: Catalog, groups: Members) -> None:
        self._catalog = catalog
        self._groups = groups

    async def check(self, target: Target, actor: str, channel: str | None, *, write: bool) -> Text | None:
        """Why the request is refused, naming the rule, or None when it is allowed.

        `allowed_channels` says where commands are taken; a place that is no channel (the
        Home tab) is judged by the user rules alone.
        """
        _, env = self._catalog.target(target.app, target.env)
        if env.allowed_channels and channel and channel not in env.allowed_channels:
            places = join_channels(env.allowed_channels)
            return text(f"{target} takes commands only in ", places, " (", code("allowed_channels"), ").")
        if write:
            if await self._may_act(env, actor):
                return None
            return text(
                f"You may not act on {target}: you are not in its ",
                code("allowed_users"),
                " or ",
                code("allowed_groups"),
                ".",
            )
        if not (env.read_users or env.read_groups):
            return None
        if (
            actor in env.read_users
            or await self._in_groups(actor, env.read_groups)
            or await self._may_act(env, actor)
        ):
            return None
        return text(
            f"You may not read {target}: you are not in its ",
            code("read_users"),
            " or ",
            code("read_groups"),
            ".",
        )

    async def may_approve(
        self, target: Target, actor: str, channel: str | None, groups: list[str]
    ) -> Text | None:
        """Why `actor` may not approve a request on `target`, or None: a member of one of the
        approval `groups`, or, when it names none, anyone who may act on the target."""
        if not groups:
            return await self.check(target, actor, channel, write=True)
        if await self._in_groups(actor, groups):
            return None
        return text(
            f"You may not approve changes to {target}: you are in none of its approval groups (",
            join_codes(groups),
            ").",
        )

    async def _may_act(self, env: Environment, actor: str) -> bool:
        if not env.allowed_users and not env.allowed_groups:
            return True
        return actor in env.allowed_users or await self._in_groups(actor, env.allowed_groups)

    async def _in_groups(self, actor: str, groups: list[str]) -> bool:
        for group in groups:
            if actor in await self._groups.members(group):
                return True
        return False


def join_channels(channels: list[str]) -> Text:
    out = text()
    for index, channel_id in enumerate(channels):
        out = out + text(", " if index else "", channel(channel_id))
    return out


def join_codes(names: list[str]) -> Text:
    out = text()
    for index, name in enumerate(names):
        out = out + text(", " if index else "", code(name))
    return out
