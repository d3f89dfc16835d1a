"""The commits a deploy ships, as `Text` lines for any card (confirmation, approval) or terminal."""

from __future__ import annotations

from bot.domain.commits import CommitList
from bot.domain.text import Text, bold, code, italic, text

TITLE_CHARS = 72


def commit_lines(commits: CommitList | None) -> list[Text]:
    """The listed commits (short sha, title, author), then how many more; none when unknown.

    Titles and authors are someone's words: plain strings, escaped by each renderer.
    """
    if commits is None:
        return []
    if commits.total == 0:
        return [text("Commits: none new (the same commit, or an older one).")]
    noun = "commit" if commits.total == 1 else "commits"
    lines = [bold(f"{commits.total} {noun}:")]
    for commit in commits.shown:
        title = commit.title if len(commit.title) <= TITLE_CHARS else commit.title[: TITLE_CHARS - 1] + "…"
        lines.append(text("• ", code(commit.short_sha), " ", title, " — ", commit.author))
    if commits.more:
        lines.append(italic(f"…and {commits.more} more"))
    return lines
