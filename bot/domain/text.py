"""Rich text for every message Tugboat writes, rendered per medium and escaped in one place.

Messages are built from spans (`text("Locked by ", mention(user), ": ", reason)`), never from
Slack markup. A bare string is always someone's words: `mrkdwn()` escapes it, so nothing a
user typed can become a link or an `@channel`. Terminals get `plain()`; nothing parses
markup back into text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["plain", "code", "bold", "italic", "mention", "channel", "link", "emoji", "date", "raw"]

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")

EMOJI = {
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "white_check_mark": "✅",
    "x": "❌",
    "rewind": "⏪",
    "warning": "⚠️",
    "lock": "🔒",
    "unlock": "🔓",
    "rotating_light": "🚨",
    "large_green_circle": "🟢",
    "large_blue_circle": "🔵",
    "large_orange_circle": "🟠",
    "red_circle": "🔴",
    "black_circle": "⚫",
    "pause_button": "⏸",
    "snowflake": "❄",
}
STYLES = {"bold": "\033[1m", "dim": "\033[2m", "green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m"}
RESET = "\033[0m"


@dataclass(frozen=True)
class Span:
    """One run of text and what it is; `extra` is a link's URL or a date's fallback."""

    kind: Kind
    value: str
    extra: str = ""


@dataclass(frozen=True)
class Text:
    """A sequence of spans. `+` joins texts; a `str` joins as someone's (escaped) words."""

    spans: tuple[Span, ...] = ()

    def __add__(self, other: Text | str) -> Text:
        return Text(self.spans + _spans(other))

    def __radd__(self, other: str) -> Text:
        return Text(_spans(other) + self.spans)

    def __bool__(self) -> bool:
        return any(span.value for span in self.spans)

    def __str__(self) -> str:
        return plain(self)


Part = Text | str


def _spans(part: Part) -> tuple[Span, ...]:
    if isinstance(part, Text):
        return part.spans
    return (Span("plain", part),) if part else ()


def text(*parts: Part) -> Text:
    """Join parts; strings are plain words, escaped wherever markup could bite."""
    spans: tuple[Span, ...] = ()
    for part in parts:
        spans += _spans(part)
    return Text(spans)


def join(parts: Iterable[Part], separator: Part = "") -> Text:
    out = Text()
    for index, part in enumerate(parts):
        out = out + (text(separator, part) if index else text(part))
    return out


def _styled(kind: Kind, parts: tuple[Part, ...]) -> Text:
    return Text(
        tuple(Span(kind, s.value, s.extra) if s.kind == "plain" else s for p in parts for s in _spans(p))
    )


def code(value: str) -> Text:
    return Text((Span("code", value),))


def bold(*parts: Part) -> Text:
    return _styled("bold", parts)


def italic(*parts: Part) -> Text:
    return _styled("italic", parts)


def mention(actor: str) -> Text:
    """A Slack user id as a mention; anyone else (a GitHub login, a CI job) as plain words."""
    return Text((Span("mention", actor),)) if USER_ID.match(actor) else text(actor)


def channel(channel_id: str) -> Text:
    return Text((Span("channel", channel_id),))


def link(url: str, label: Part) -> Text:
    return Text((Span("link", plain(text(label)), url),))


def emoji(name: str) -> Text:
    return Text((Span("emoji", name),))


def date(at: float, fallback: str | None = None) -> Text:
    """A time each reader sees in their own zone; `fallback` (UTC) where that cannot be done."""
    return Text((Span("date", str(int(at)), fallback or time.strftime("%H:%M UTC", time.gmtime(at))),))


def raw_mrkdwn(value: str) -> Text:
    """Markup Tugboat wrote itself and trusts, such as a line already rendered for Slack."""
    return Text((Span("raw", value),))


def escape(value: str) -> str:
    """Slack's three escapes: user text can then never open a link, a mention or `@channel`."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _merged(spans: tuple[Span, ...]) -> list[Span]:
    """Neighbouring bold (or italic) spans as one, so `*a**b*` never happens."""
    out: list[Span] = []
    for span in spans:
        if out and span.kind in ("bold", "italic") and out[-1].kind == span.kind:
            out[-1] = Span(span.kind, out[-1].value + span.value)
        else:
            out.append(span)
    return out


def mrkdwn(value: Part) -> str:
    """Slack mrkdwn; every plain word escaped."""
    out: list[str] = []
    for span in _merged(_spans(value)):
        match span.kind:
            case "plain":
                out.append(escape(span.value))
            case "code":
                out.append("`" + escape(span.value.replace("`", "'")) + "`")
            case "bold":
                out.append(f"*{escape(span.value)}*")
            case "italic":
                out.append(f"_{escape(span.value)}_")
            case "mention":
                out.append(f"<@{span.value}>")
            case "channel":
                out.append(f"<#{span.value}>")
            case "link":
                label = escape(span.value).replace("|", "¦")
                out.append(f"<{span.extra}|{label}>" if label else f"<{span.extra}>")
            case "emoji":
                out.append(f":{span.value}:")
            case "date":
                out.append(f"<!date^{span.value}^{{time}}|{escape(span.extra)}>")
            case "raw":
                out.append(span.value)
    return "".join(out)


def paint(value: str, style: str | None, color: bool) -> str:
    """ANSI styling for a terminal; nothing when `color` is off (CI logs, files, NO_COLOR)."""
    if not color or style is None:
        return value
    return f"{STYLES[style]}{value}{RESET}"


def plain(value: Part, *, color: bool = False) -> str:
    """What a terminal or a CI log shows: emoji, @mentions, `label (url)`; bold only in colour."""
    out: list[str] = []
    for span in _merged(_spans(value)):
        match span.kind:
            case "plain" | "raw":
                out.append(span.value)
            case "code":
                out.append(f"`{span.value}`")
            case "italic":
                out.append(f"_{span.value}_")
            case "bold":
                out.append(paint(span.value, "bold", color))
            case "mention":
                out.append(f"@{span.value}")
            case "channel":
                out.append(f"#{span.value}")
            case "link":
                out.append(f"{span.value} ({span.extra})" if span.value else span.extra)
            case "emoji":
                out.append(EMOJI.get(span.value, f":{span.value}:"))
            case "date":
                out.append(span.extra)
    return "".join(out)
