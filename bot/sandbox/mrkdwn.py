"""Slack mrkdwn as a Slack client shows it, for the sandbox's terminal stand-in for Slack.

The sandbox prints what the fake Slack holds, which is markup, so interpreting it here is the
point. Nothing outside bot.sandbox may use this: Tugboat's own renderers write `Text` with
`bot.domain.text.plain` and never parse markup back.
"""

from __future__ import annotations

import re

from bot.domain.text import EMOJI, paint

EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")
USER = re.compile(r"<@([^>|]+)(?:\|([^>]*))?>")
CHANNEL = re.compile(r"<#([^>|]+)(?:\|([^>]*))?>")
GROUP = re.compile(r"<!subteam\^([^>|]+)(?:\|([^>]*))?>")
SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
DATE = re.compile(r"<!date\^[^|>]*\|([^>]*)>")
LABELLED_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)\|([^>]+)>")
BARE_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)>")
BOLD = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*?\S)?)\*(?![\w*])")


def readable(markup: str, *, color: bool = False) -> str:
    """Emoji, @mentions, link labels, bold only in colour, and Slack's escapes undone."""
    markup = EMOJI_CODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), markup)
    markup = DATE.sub(r"\1", markup)
    markup = LABELLED_LINK.sub(r"\2 (\1)", markup)
    markup = BARE_LINK.sub(r"\1", markup)
    markup = USER.sub(lambda m: "@" + (m.group(2) or m.group(1)), markup)
    markup = CHANNEL.sub(lambda m: "#" + (m.group(2) or m.group(1)), markup)
    markup = GROUP.sub(lambda m: m.group(2) or "@" + m.group(1), markup)
    markup = SPECIAL.sub(r"@\1", markup)
    markup = BOLD.sub(lambda m: paint(m.group(1), "bold", color), markup)
    return markup.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
