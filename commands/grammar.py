"""The command grammar shared by slash commands, `@Tugboat …` mentions and the CLI.

Text becomes a typed request or a UsageError that names what was wrong and what would be
right. Nothing here touches ECS: a request exists only if every name in it is in the
catalog, so nothing downstream can act on something the bot did not fully understand.
"""

from __future__ import annotations

import io
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.domain.catalog import App, Catalog
from bot.domain.records import Target

MAX_TEXT = 4000
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DURATION = re.compile(r"^(\d{1,4})([mhd])$")
MENTION = re.compile(r"^\s*<@[A-Z0-9]+(?:\|[^>]*)?>\s*")
FIRST_WORD = re.compile(r"\s*(\S+)(.*)", re.DOTALL)
ARG = re.compile(r"^[\x20-\x7e]{0,256}$")
"""One run-task argument, after quoting: printable ASCII, spaces included; no control characters."""
SLACK_ENTITY = re.compile(r"&(amp|lt|gt);")
SLACK_LINK = re.compile(r"<((?:https?|mailto|ftp|tel):[^<>|]*)(?:\|([^<>]*))?>")
"""A link Slack made of what was typed (`example.com` → `<http://example.com|example.com>`)."""
CURLY_QUOTES = "\u201c\u201d\u201e\u2018\u2019\u201a"
FORCE = re.compile(r"(?<!\S)--force(?!\S)")
FORCE_REASON_MAX = 300
FORCE_NEEDS_REASON = (
    '`--force` needs a reason in quotes, like `--force "INC-42: checkout is down"`: '
    "it is shown in the thread and kept in the audit trail."
)

USAGE = {
    "deploy": '/deploy APP ENV [REF] [--force "REASON"]',
    "rollback": "/rollback APP ENV [REVISION]",
    "run-task": "/run-task APP ENV TASK [ARGS…]",
    "status": "/ecs-status [APP [ENV]]",
    "scale": "/ecs-scale APP ENV COUNT [SERVICE]",
    "restart": "/ecs-restart APP ENV [SERVICE]",
    "tugboat": "/tugboat help | lock APP ENV [for 2h] REASON… | unlock APP ENV | history APP ENV"
    " | freezes [APP [ENV]] | stats APP ENV [DAYS]",
}


class UsageError(Exception):
    """The text is not a command Tugboat understands; `str()` says why and what would work."""

    def __init__(self, problem: str, usage: str | None = None) -> None:
        self.problem = problem
        self.usage = usage
        super().__init__(f"{problem}\nUsage: `{usage}`" if usage else problem)


@dataclass(frozen=True)
class DeployRequest:
    target: Target
    ref: str | None = None
    force_reason: str | None = None
    """`--force "REASON"`: passes a lock, a freeze (and a red CI); never an approval."""
    verb: str = field(default="deploy", init=False)

    @property
    def force(self) -> bool:
        return self.force_reason is not None


@dataclass(frozen=True)
class RollbackRequest:
    target: Target
    revision: int | None = None
    verb: str = field(default="rollback", init=False)


@dataclass(frozen=True)
class RunTaskRequest:
    target: Target
    task: str
    args: tuple[str, ...] = ()
    schedule: bool = False
    """`task` names one of the environment's schedules: run its ECS target once."""
    verb: str = field(default="run-task", init=False)


@dataclass(frozen=True)
class ScaleRequest:
    """Set one service's desired count (0 to the environment's `max_tasks`)."""

    target: Target
    count: int
    service: str
    """Always named: the environment's only service, or the one the user typed."""
    verb: str = field(default="scale", init=False)


@dataclass(frozen=True)
class RestartRequest:
    """A new deployment of the same revision: one service, or (None) every one of the release."""

    target: Target
    service: str | None = None
    verb: str = field(default="restart", init=False)


@dataclass(frozen=True)
class StatusRequest:
    app: str | None = None
    env: str | None = None
    verb: str = field(default="status", init=False)


@dataclass(frozen=True)
class HelpRequest:
    verb: str = field(default="help", init=False)


@dataclass(frozen=True)
class LockRequest:
    target: Target
    reason: str
    seconds: int | None = None
    verb: str = field(default="lock", init=False)


@dataclass(frozen=True)
class UnlockRequest:
    target: Target
    verb: str = field(default="unlock", init=False)


@dataclass(frozen=True)
class HistoryRequest:
    target: Target
    verb: str = field(default="history", init=False)


@dataclass(frozen=True)
class StatsRequest:
    """`/tugboat stats APP ENV [DAYS]`: the DORA figures of a target over DAYS days (30)."""

    target: Target
    days: int = 30
    verb: str = field(default="stats", init=False)


@dataclass(frozen=True)
class FreezesRequest:
    """`/tugboat freezes [APP [ENV]]`: the freeze windows holding now and the next ones."""

    app: str | None = None
    env: str | None = None
    verb: str = field(default="freezes", init=False)


Request = (
    DeployRequest
    | RollbackRequest
    | RunTaskRequest
    | ScaleRequest
    | RestartRequest
    | StatusRequest
    | HelpRequest
    | LockRequest
    | UnlockRequest
    | HistoryRequest
    | FreezesRequest
    | StatsRequest
)

SLASH_VERBS = {
    "/deploy": "deploy",
    "/rollback": "rollback",
    "/run-task": "run-task",
    "/ecs-status": "status",
    "/ecs-scale": "scale",
    "/ecs-restart": "restart",
    "/tugboat": "tugboat",
}
MENTION_VERBS = {
    "deploy": "deploy",
    "rollback": "rollback",
    "run-task": "run-task",
    "status": "status",
    "ecs-status": "status",
    "scale": "scale",
    "ecs-scale": "scale",
    "restart": "restart",
    "ecs-restart": "restart",
    "help": "tugboat",
    "lock": "tugboat",
    "unlock": "tugboat",
    "history": "tugboat",
    "freezes": "tugboat",
    "stats": "tugboat",
}


def parse_slash(command: str, text: str, catalog: Catalog) -> Request:
    """Parse a slash command such as ("/deploy", "api production v2").

    `text` is as Slack sends it: `&`, `<` and `>` the user typed arrive as `&amp;`, `&lt;` and
    `&gt;`, and a request holds the user's own characters again (renderers escape them anew).
    """
    verb = SLASH_VERBS.get(command)
    if verb is None:
        raise UsageError(f"Unknown command `{_show(command)}`.", _all_usage())
    return _parse(verb, _checked(text), catalog)


def parse_mention(text: str, catalog: Catalog) -> Request:
    """Parse `@Tugboat deploy api production v2`: the slash grammar without the slash."""
    body = MENTION.sub("", _checked(text), count=1)
    found = FIRST_WORD.match(body)
    if found is None:
        raise UsageError("Tell me what to do.", _all_usage())
    first = unescape(found.group(1))
    verb = MENTION_VERBS.get(first.lower().lstrip("/"))
    if verb is None:
        raise UsageError(f"Unknown command `{_show(first)}`.", _all_usage())
    return _parse(verb, body if verb == "tugboat" else found.group(2), catalog)


def unescape(text: str) -> str:
    """Slack's three entities back to the characters the user typed (in one pass: `&amp;lt;` is `&lt;`)."""
    return SLACK_ENTITY.sub(lambda m: {"amp": "&", "lt": "<", "gt": ">"}[m.group(1)], text)


def _parse(verb: str, text: str, catalog: Catalog) -> Request:
    if verb == "run-task":
        return _run_task(text, catalog)
    if verb == "deploy":
        return _deploy(text, catalog)
    words = [unescape(word) for word in text.split()]
    if verb == "rollback":
        return _rollback(words, catalog)
    if verb == "status":
        return _status(words, catalog)
    if verb == "scale":
        return _scale(words, catalog)
    if verb == "restart":
        return _restart(words, catalog)
    return _tugboat(words, catalog)


def _checked(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise UsageError(f"That command is {len(text)} characters long; the limit is {MAX_TEXT}.")
    return text


def _deploy(text: str, catalog: Catalog) -> DeployRequest:
    usage = USAGE["deploy"]
    words, force_reason = _force_reason(text, usage)
    positional: list[str] = []
    for word in words:
        if word.startswith("-"):
            raise UsageError(f'Unknown option `{_show(word)}`; the only option is `--force "REASON"`.', usage)
        positional.append(word)
    target = _target(positional, catalog, usage)
    rest = positional[2:]
    if len(rest) > 1:
        raise UsageError(f"Too many words after `{target}`: expected at most one REF.", usage)
    ref = rest[0] if rest else None
    if ref is not None:
        _check_ref(ref, usage)
    elif catalog.apps[target.app].environments[target.env].promote_from is None:
        raise UsageError(
            f"`{target}` needs a REF (an image tag or git sha): it has no `promote_from`.", usage
        )
    return DeployRequest(target, ref, force_reason)


def _force_reason(text: str, usage: str) -> tuple[list[str], str | None]:
    """The words without `--force "REASON"`, and the reason (the characters typed, one line).

    The reason must be quoted (straight or curly double quotes, or single quotes), so a word
    after a bare `--force` is never mistaken for one: `--force api staging v2` is refused.
    """
    found = list(FORCE.finditer(text))
    if not found:
        return [unescape(word) for word in text.split()], None
    if len(found) > 1:
        raise UsageError("`--force` is given twice: give it once, with one reason.", usage)
    after = text[found[0].end() :].lstrip().replace("\u201c", '"').replace("\u201d", '"')
    if not after or after[0] not in "\"'":
        raise UsageError(FORCE_NEEDS_REASON, usage)
    stream = io.StringIO(after)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    try:
        quoted = lexer.get_token() or ""
    except ValueError:
        raise UsageError("The reason after `--force` has no closing quote.", usage) from None
    rest = stream.read()  # what follows the reason's closing quote
    reason = " ".join(unescape(quoted).split())
    if not reason:
        raise UsageError(FORCE_NEEDS_REASON, usage)
    if len(reason) > FORCE_REASON_MAX:
        raise UsageError(
            f"That reason is {len(reason)} characters long; keep it under {FORCE_REASON_MAX}.", usage
        )
    words = f"{text[: found[0].start()]} {rest}".split()
    return [unescape(word) for word in words], reason


def _rollback(words: list[str], catalog: Catalog) -> RollbackRequest:
    usage = USAGE["rollback"]
    _no_options(words, usage)
    target = _target(words, catalog, usage)
    rest = words[2:]
    if len(rest) > 1:
        raise UsageError(f"Too many words after `{target}`: expected at most a REVISION.", usage)
    if not rest:
        return RollbackRequest(target)
    if not rest[0].isascii() or not rest[0].isdigit() or int(rest[0]) < 1 or len(rest[0]) > 9:
        raise UsageError(
            f"`{_show(rest[0])}` is not a task definition revision: expected a number like 42.",
            usage,
        )
    return RollbackRequest(target, int(rest[0]))


def _run_task(text: str, catalog: Catalog) -> RunTaskRequest:
    """APP ENV TASK are words; the rest is ARGS, quoted like a shell's (no shell ever runs)."""
    usage = USAGE["run-task"]
    parts = text.split(maxsplit=3)
    words = [unescape(word) for word in parts[:3]]
    target = _target(words, catalog, usage)
    app = catalog.apps[target.app]
    schedules = {entry.name: entry for entry in app.environments[target.env].schedules}
    runnable = _known("tasks", app.tasks) + (f" {_known('schedules', schedules)}" if schedules else "")
    if len(words) < 3:
        raise UsageError(f"Which task? {runnable}", usage)
    task = words[2]
    if task.startswith("-"):
        raise UsageError(f"Unknown option `{_show(task)}`; /run-task takes no options.", usage)
    if task in schedules:
        if len(parts) > 3:
            raise UsageError(
                f"Schedule `{task}` takes no arguments: it runs exactly as its schedule would.", usage
            )
        return RunTaskRequest(target, task, schedule=True)
    if task not in app.tasks:
        hint = _case_hint(task, {**app.tasks, **schedules})
        raise UsageError(f"`{_show(task)}` is not a task of {target}.{hint} {runnable}")
    if len(parts) < 4:
        return RunTaskRequest(target, task)
    if not app.tasks[task].args:
        raise UsageError(
            f"Task `{task}` takes no arguments (its catalog entry does not say `args: true`).",
            usage,
        )
    return RunTaskRequest(target, task, split_args(parts[3], usage))


def split_args(text: str, usage: str = USAGE["run-task"]) -> tuple[str, ...]:
    """ARGS as Slack sends them, as the argv items they stand for; a UsageError if ambiguous.

    POSIX shell quoting (`shlex`): `"a b"` and `'a b'` are one argument, quotes are removed,
    `\\` escapes the next character. A link Slack made of a typed URL is the text it shows;
    Slack's entities are the characters typed. Nothing is expanded: no `$`, `*` or `~`.
    """
    curly = next((c for c in text if c in CURLY_QUOTES), None)
    if curly is not None:
        raise UsageError(
            f"ARGS contain the curly quote `{curly}` (smart punctuation): "
            "quote with straight quotes, `\"` or `'`.",
            usage,
        )
    typed = unescape(SLACK_LINK.sub(lambda m: m.group(2) or m.group(1), text))
    try:
        args = tuple(shlex.split(typed, posix=True))
    except ValueError as exc:
        if "quotation" in str(exc):
            problem = (
                "ARGS have a quote with no closing quote: close each `\"` or `'` you open. "
                'For a quote character itself, put it inside the other kind: `"it\'s"`.'
            )
        else:
            problem = (
                "ARGS end with a lone `\\`: it escapes the next character; write `\\\\` for a backslash."
            )
        raise UsageError(problem, usage) from None
    for arg in args:
        if not ARG.match(arg):
            raise UsageError(
                f"Argument `{_show(arg)}` is not allowed: one argument is printable ASCII (spaces "
                "inside quotes are fine, tabs and newlines are not), 256 characters at most.",
                usage,
            )
    return args


def _scale(words: list[str], catalog: Catalog) -> ScaleRequest:
    usage = USAGE["scale"]
    _no_options(words, usage)
    target = _target(words, catalog, usage)
    env = catalog.apps[target.app].environments[target.env]
    rest = words[2:]
    limit = f"a number from 0 to {env.max_tasks} (`max_tasks` of {target})"
    if not rest:
        raise UsageError(f"How many tasks? Give COUNT, {limit}.", usage)
    if len(rest) > 2:
        raise UsageError(f"Too many words after `{target}`: expected COUNT and at most a SERVICE.", usage)
    word = rest[0]
    if not word.isascii() or not word.isdigit() or len(word) > 6:
        raise UsageError(f"`{_show(word)}` is not a task count: expected {limit}.", usage)
    count = int(word)
    if count > env.max_tasks:
        raise UsageError(
            f"{count} tasks is more than {target} allows: expected {limit}. Nothing was changed.", usage
        )
    if len(rest) == 2:
        return ScaleRequest(target, count, _service(rest[1], env.service_names(), target, usage))
    if env.is_release:
        names = ", ".join(f"`{n}`" for n in env.service_names())
        raise UsageError(
            f"{target} has several services ({names}), and one count rarely fits them all:"
            f" name the SERVICE, like `/ecs-scale {target} {count} {env.service_names()[-1]}`.",
            usage,
        )
    return ScaleRequest(target, count, env.service)


def _restart(words: list[str], catalog: Catalog) -> RestartRequest:
    usage = USAGE["restart"]
    _no_options(words, usage)
    target = _target(words, catalog, usage)
    rest = words[2:]
    if len(rest) > 1:
        raise UsageError(f"Too many words after `{target}`: expected at most a SERVICE.", usage)
    if not rest:
        return RestartRequest(target)
    env = catalog.apps[target.app].environments[target.env]
    return RestartRequest(target, _service(rest[0], env.service_names(), target, usage))


def _service(word: str, names: list[str], target: Target, usage: str) -> str:
    if word in names:
        return word
    known = _known("services", dict.fromkeys(names))
    hint = _case_hint(word, dict.fromkeys(names))
    raise UsageError(f"`{_show(word)}` is not a service of {target}.{hint} {known}", usage)


def _status(words: list[str], catalog: Catalog) -> StatusRequest:
    usage = USAGE["status"]
    _no_options(words, usage)
    if not words:
        return StatusRequest()
    if len(words) > 2:
        raise UsageError("Too many words: expected at most APP and ENV.", usage)
    app = _app(words[0], catalog, usage)
    if len(words) == 1:
        return StatusRequest(app)
    return StatusRequest(app, _env(words[1], catalog.apps[app], app, usage))


def _tugboat(words: list[str], catalog: Catalog) -> Request:
    usage = USAGE["tugboat"]
    if not words or words[0].lower() == "help":
        return HelpRequest()
    sub, rest = words[0].lower(), words[1:]
    if sub == "lock":
        target = _target(rest, catalog, usage)
        tail = rest[2:]
        seconds = None
        if len(tail) >= 2 and tail[0].lower() == "for":
            seconds = _duration(tail[1], usage)
            tail = tail[2:]
        if not tail:
            raise UsageError("A lock needs a REASON, so others know why they are blocked.", usage)
        return LockRequest(target, " ".join(tail)[:500], seconds)
    if sub == "freezes":
        _no_options(rest, usage)
        if len(rest) > 2:
            raise UsageError("Too many words: expected at most APP and ENV.", usage)
        app = _app(rest[0], catalog, usage) if rest else None
        env = _env(rest[1], catalog.apps[app], app, usage) if app is not None and len(rest) > 1 else None
        return FreezesRequest(app, env)
    if sub == "stats":
        return _stats(rest, catalog, usage)
    if sub in ("unlock", "history"):
        _no_options(rest, usage)
        target = _target(rest, catalog, usage)
        if len(rest) > 2:
            raise UsageError(f"Too many words after `{target}`.", usage)
        return UnlockRequest(target) if sub == "unlock" else HistoryRequest(target)
    raise UsageError(f"Unknown /tugboat command `{_show(words[0])}`.", usage)


def _stats(words: list[str], catalog: Catalog, usage: str) -> StatsRequest:
    _no_options(words, usage)
    target = _target(words, catalog, usage)
    rest = words[2:]
    if len(rest) > 1:
        raise UsageError(f"Too many words after `{target}`: expected at most DAYS.", usage)
    if not rest:
        return StatsRequest(target)
    days = rest[0]
    if not (days.isascii() and days.isdigit() and len(days) <= 3 and 1 <= int(days) <= 365):
        raise UsageError(f"`{_show(days)}` is not a number of days: expected 1 to 365, like 30.", usage)
    return StatsRequest(target, int(days))


def _target(words: list[str], catalog: Catalog, usage: str) -> Target:
    if not words:
        raise UsageError(f"Which app? {_known('apps', catalog.apps)}", usage)
    app = _app(words[0], catalog, usage)
    if len(words) < 2:
        envs = catalog.apps[app].environments
        raise UsageError(f"Which environment of {app}? {_known('environments', envs)}", usage)
    return Target(app, _env(words[1], catalog.apps[app], app, usage))


def _app(word: str, catalog: Catalog, usage: str) -> str:
    if word in catalog.apps:
        return word
    if word.startswith("-"):
        raise UsageError(f"Unknown option `{_show(word)}` where an APP was expected.", usage)
    hint = _case_hint(word, catalog.apps)
    raise UsageError(f"Unknown app `{_show(word)}`.{hint} {_known('apps', catalog.apps)}", usage)


def _env(word: str, app: App, app_name: str, usage: str) -> str:
    if word in app.environments:
        return word
    hint = _case_hint(word, app.environments)
    envs = _known("environments", app.environments)
    raise UsageError(f"Unknown environment `{_show(word)}` for {app_name}.{hint} {envs}", usage)


def _check_ref(ref: str, usage: str) -> None:
    if TAG.match(ref):
        return
    if ":" in ref:
        problem = f"`{_show(ref)}` has a colon: give only the tag, like `v2` or a git sha"
    elif len(ref) > 128:
        problem = f"That REF is {len(ref)} characters long; an image tag has at most 128"
    else:
        problem = f"`{_show(ref)}` is not an image tag or git sha"
    raise UsageError(f"{problem} (letters, digits, `_`, `.`, `-`).", usage)


def _duration(word: str, usage: str) -> int:
    match = DURATION.match(word.lower())
    if not match or int(match.group(1)) == 0:
        raise UsageError(f"`{_show(word)}` is not a duration: expected e.g. `30m`, `2h`, `1d`.", usage)
    return int(match.group(1)) * {"m": 60, "h": 3600, "d": 86_400}[match.group(2)]


def _no_options(words: list[str], usage: str) -> None:
    for word in words:
        if word.startswith("-"):
            raise UsageError(f"Unknown option `{_show(word)}`.", usage)


def _case_hint(word: str, names: Mapping[str, object]) -> str:
    """` Did you mean `production`?` for a case slip, a prefix (`prod`) or a typo or two."""
    folded = word.lower()
    for name in names:
        if name.lower() == folded:
            return f" Did you mean `{name}`? Names are case-sensitive."
    close = [
        name
        for name in sorted(names)
        if (len(folded) >= 3 and name.lower().startswith(folded))
        or _edits(folded, name.lower()) <= max(1, len(name) // 4)
    ]
    return f" Did you mean `{close[0]}`?" if len(close) == 1 else ""


def _edits(a: str, b: str) -> int:
    """Levenshtein distance: how many letters to add, drop or change to turn `a` into `b`."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def _known(kind: str, names: Mapping[str, object]) -> str:
    listed = ", ".join(f"`{n}`" for n in sorted(names))
    return f"Known {kind}: {listed}." if names else f"No {kind} are defined."


def _show(word: str, limit: int = 40) -> str:
    """Echo user text back safely: bounded, no backticks or Slack control characters."""
    cleaned = "".join(c if c.isprintable() and c not in "`<>&" else "?" for c in word)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _all_usage() -> str:
    return " · ".join(USAGE.values())


def help_text() -> str:
    """The help reply: every command with its usage."""
    return "\n".join(
        [
            "*Tugboat* deploys and inspects ECS services.",
            "• `/deploy APP ENV [REF]` ship an image tag or git sha (no REF: promote)",
            "• `/rollback APP ENV [REVISION]` back to the last good deploy, or a revision",
            "• `/run-task APP ENV TASK [ARGS…]` run a catalog task as a one-off ECS task",
            "• `/ecs-status [APP [ENV]]` service status",
            "• `/ecs-scale APP ENV COUNT [SERVICE]` set how many tasks run",
            "• `/ecs-restart APP ENV [SERVICE]` fresh tasks of the same revision",
            "• `/tugboat lock APP ENV [for 2h] REASON…`, `/tugboat unlock APP ENV`",
            "• `/tugboat history APP ENV` recent deploys",
            "• `/tugboat freezes [APP [ENV]]` freeze windows now and next",
            "• `/tugboat stats APP ENV [DAYS]` DORA figures: deploy frequency, lead time,"
            " change failure rate, time to restore (30 days)",
            '• `--force "REASON"` on a deploy passes a lock or a freeze, and says why in the thread',
            "Mention me with the same words in a thread: `@Tugboat status api staging`.",
        ]
    )
