"""Commits a deploy ships, as cards show them (SPEC part two, "Commits on the card").

Filled by whatever knows the repository (the GitHub client, when a token is set); a plan
without them shows none.
"""

from __future__ import annotations

from dataclasses import dataclass

SHOWN = 10
"""Commits listed on a card; the rest are counted."""


@dataclass(frozen=True)
class Commit:
    sha: str
    title: str
    """The first line of the commit message: someone's words, escaped where shown."""
    author: str

    @property
    def short_sha(self) -> str:
        return self.sha[:7]


@dataclass(frozen=True)
class CommitList:
    """The commits between what runs and what ships, oldest first, and how many there are."""

    commits: tuple[Commit, ...]
    total: int

    @property
    def shown(self) -> tuple[Commit, ...]:
        return self.commits[:SHOWN]

    @property
    def more(self) -> int:
        """How many are not listed."""
        return max(0, self.total - len(self.shown))
