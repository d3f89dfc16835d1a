"""What GitHub knows about the code a deploy ships (CI verdicts, commit times), and the port that asks.

Values only, so the actions can decide on them (`commands/code.py`); the commits a card lists
are `bot.domain.commits.CommitList`. `bot/github/client.py` implements the port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from bot.domain.commits import CommitList

SHA = re.compile(r"^[0-9a-f]{7,40}$")
"""A git commit id as an image tag carries it: `tag_format` is `{sha}` or `{short_sha}`."""
PASSING = ("success", "neutral", "skipped")
"""Check-run conclusions and status states that count as green."""


def commit_of(tag: str | None) -> str | None:
    """The commit an image tag stands for (the catalog's `tag_format` maps sha → tag), or None
    when the tag is not a commit id (`v2`, `broken`)."""
    return tag if tag is not None and SHA.match(tag) else None


class CodeHostError(Exception):
    """GitHub did not answer usefully; never a reason to fail or hold up a deploy by itself."""

    def __init__(self, call: str, status: int | None, detail: str = "") -> None:
        self.call = call
        self.status = status
        self.detail = detail
        said = f"answered HTTP {status}" if status is not None else f"did not answer ({detail or 'no reply'})"
        super().__init__(f"GitHub {said} to {call}")

    @property
    def unknown_ref(self) -> bool:
        """GitHub answered that it does not know the commit (404, 422): an answer, not an outage."""
        return self.status in (404, 422)


@dataclass(frozen=True)
class Resolved:
    """A ref as GitHub knows it: the full commit id, and when it was committed (lead time)."""

    sha: str
    committed_at: float | None = None


@dataclass(frozen=True)
class CiCheck:
    """One check run (`conclusion`, or its `status` while it runs) or one commit status."""

    name: str
    state: str

    @property
    def passed(self) -> bool:
        return self.state in PASSING


@dataclass(frozen=True)
class CiReport:
    checks: tuple[CiCheck, ...]

    @property
    def failing(self) -> tuple[CiCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)


class CodeHost(Protocol):
    """The reads a deploy may ask of GitHub; each raises CodeHostError, quickly."""

    async def resolve(self, repo: str, ref: str) -> Resolved: ...

    async def compare(self, repo: str, base: str, head: str) -> CommitList:
        """The commits after `base` up to `head`, oldest first (GitHub lists at most 250)."""
        ...

    async def ci(self, repo: str, ref: str) -> CiReport:
        """Every check run and commit status of `ref` (a combined status with none is no verdict)."""
        ...
