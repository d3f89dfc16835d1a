"""Rich text for every message Tugboat writes, rendered per medium and escaped in one place.

Messages are built from spans (`text("Locked by ", mention(user), ": ", reason)`), never from
Slack markup. A bare string is always someone's words: `mrkdwn()` escapes it, so nothing a
user typed can become a link or an `@channel`. Terminals get `plain()`; nothing parses
markup back into text.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["plain", "code", "bold", "italic", "mention", "channel", "link", "emoji", "date", "raw"]
Style = Literal["", "bold", "italic"]

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
    "double_vertical_bar": "⏸",
    "fast_forward": "⏩",
    "arrow_forward": "▶",
    "leftwards_arrow_with_hook": "↩",
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
    style: Style = ""
    """The bold or italic run a span that is not words (a mention, a code…) sits in, if any."""


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


def _styled(kind: Literal["bold", "italic"], parts: tuple[Part, ...]) -> Text:
    """Words become `kind`; anything else joins the run, so `bold("by ", mention(u))` is one."""
    out: list[Span] = []
    for part in parts:
        for s in _spans(part):
            if s.kind == "plain":
                out.append(Span(kind, s.value, s.extra))
            elif s.kind in ("bold", "italic") or s.style:
                out.append(s)
            else:
                out.append(replace(s, style=kind))
    return Text(tuple(out))


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


def _style_of(span: Span) -> Style:
    if span.kind == "bold":
        return "bold"
    if span.kind == "italic":
        return "italic"
    return span.style


def _url(url: str) -> str:
    """A link's address, unable to close its `<…>` or start a label."""
    return url.replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _mrkdwn_span(span: Span) -> str:
    match span.kind:
        case "plain" | "bold" | "italic":
            return escape(span.value)
        case "code":
            return "`" + escape(span.value.replace("`", "'")) + "`"
        case "mention":
            return f"<@{span.value}>"
        case "channel":
            return f"<#{span.value}>"
        case "link":
            label = escape(span.value).replace("|", "¦")
            return f"<{_url(span.extra)}|{label}>" if label else f"<{_url(span.extra)}>"
        case "emoji":
            return f":{span.value}:"
        case "date":
            return f"<!date^{span.value}^{{time}}|{escape(span.extra)}>"
        case "raw":
            return span.value
    return ""


def mrkdwn(value: Part) -> str:
    """Slack mrkdwn; every plain word escaped. A bold (italic) run is one `*…*` (`_…_`), whatever
    it holds, with its outer spaces outside the marks (Slack ignores `* x*`)."""
    out: list[str] = []
    for style, run in itertools.groupby(_spans(value), key=_style_of):
        rendered = "".join(_mrkdwn_span(span) for span in run)
        mark = {"bold": "*", "italic": "_"}.get(style)
        core = rendered.strip()
        if mark is None or not core:
            out.append(rendered)
            continue
        start = rendered.index(core)
        out.append(f"{rendered[:start]}{mark}{core}{mark}{rendered[start + len(core) :]}")
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
