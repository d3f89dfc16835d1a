"""The grammar turns text into requests whose every name is in the catalog, or a usage error."""

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.catalog import load_catalog
from bot.domain.records import Target
from commands.grammar import (
    DeployRequest,
    HelpRequest,
    LockRequest,
    Request,
    RollbackRequest,
    RunTaskRequest,
    StatusRequest,
    UsageError,
    parse_mention,
    parse_slash,
    split_args,
)
from tests.conftest import EXAMPLE

CATALOG = load_catalog(EXAMPLE)


def test_deploy_with_ref_and_force() -> None:
    assert parse_slash("/deploy", "api staging v2", CATALOG) == DeployRequest(Target("api", "staging"), "v2")
    forced = parse_slash("/deploy", '--force "db &amp; cache down" api staging v2', CATALOG)
    assert isinstance(forced, DeployRequest) and forced.force
    assert forced == DeployRequest(Target("api", "staging"), "v2", "db & cache down")
    quoted = parse_slash("/deploy", "api staging v2 --force \u201cit's on fire\u201d", CATALOG)
    assert isinstance(quoted, DeployRequest) and quoted.force_reason == "it's on fire"
    mentioned = parse_mention("<@U0TUGBOAT> deploy api staging --force 'INC-42' v2", CATALOG)
    assert isinstance(mentioned, DeployRequest) and mentioned.force_reason == "INC-42"


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("api staging v2 --force", "needs a reason in quotes"),
        ("--force api staging v2", "needs a reason in quotes"),  # never `api` as the reason
        ('api staging v2 --force ""', "needs a reason in quotes"),
        ('api staging v2 --force "unclosed', "no closing quote"),
        ('api staging v2 --force "a" --force "b"', "given twice"),
        ("api staging v2 --force " + '"' + "x" * 301 + '"', "keep it under 300"),
    ],
)
def test_force_needs_one_quoted_reason(typed: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_slash("/deploy", typed, CATALOG)


def test_deploy_without_ref_promotes_only_where_promote_from_is_set() -> None:
    assert parse_slash("/deploy", "api production", CATALOG) == DeployRequest(Target("api", "production"))
    with pytest.raises(UsageError, match="needs a REF"):
        parse_slash("/deploy", "api staging", CATALOG)


def test_other_verbs() -> None:
    assert parse_slash("/rollback", "api production 7", CATALOG) == RollbackRequest(
        Target("api", "production"), 7
    )
    assert parse_slash("/run-task", "api staging migrate", CATALOG) == RunTaskRequest(
        Target("api", "staging"), "migrate"
    )
    assert parse_slash("/ecs-status", "", CATALOG) == StatusRequest()
    assert parse_slash("/ecs-status", "api", CATALOG) == StatusRequest("api")
    assert parse_slash("/tugboat", "", CATALOG) == HelpRequest()
    lock = parse_slash("/tugboat", "lock api production for 2h db maintenance", CATALOG)
    assert lock == LockRequest(Target("api", "production"), "db maintenance", 7200)


def test_run_task_names_a_schedule_of_that_environment_only() -> None:
    production = Target("api", "production")
    assert parse_slash("/run-task", "api production nightly-report", CATALOG) == RunTaskRequest(
        production, "nightly-report", schedule=True
    )
    with pytest.raises(UsageError, match="Schedule `hourly-cleanup` takes no arguments"):
        parse_slash("/run-task", "api production hourly-cleanup now", CATALOG)
    with pytest.raises(UsageError) as refused:
        parse_slash("/run-task", "api staging hourly-cleanup", CATALOG)
    assert "is not a task of api staging" in str(refused.value)
    assert "Known schedules: `nightly-report`." in str(refused.value)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("api prod v2", "Did you mean `production`?"),
        ("api stagin v2", "Did you mean `staging`?"),
        ("api Staging v2", "Did you mean `staging`? Names are case-sensitive."),
        ("apo staging v2", "Did you mean `api`?"),
    ],
)
def test_a_near_miss_gets_a_did_you_mean(text: str, suggestion: str) -> None:
    with pytest.raises(UsageError, match=suggestion.replace("?", r"\?")):
        parse_slash("/deploy", text, CATALOG)


def test_a_far_miss_gets_no_guess() -> None:
    with pytest.raises(UsageError) as refused:
        parse_slash("/deploy", "api qa v2", CATALOG)
    assert "Did you mean" not in str(refused.value)


def test_mentions_share_the_grammar() -> None:
    assert parse_mention("<@U0TUGBOAT> deploy api staging v2", CATALOG) == DeployRequest(
        Target("api", "staging"), "v2"
    )
    assert parse_mention("<@U0TUGBOAT> status api staging", CATALOG) == StatusRequest("api", "staging")
    assert parse_mention("<@U0TUGBOAT> ecs-status", CATALOG) == StatusRequest()


@pytest.mark.parametrize(
    ("command", "text", "expected"),
    [
        ("/deploy", "; rm -rf /", "Unknown option `-rf`"),
        ("/deploy", "$(id)", "Unknown app `$(id)`"),
        ("/deploy", "../../etc", "Unknown app `../../etc`"),
        ("/deploy", "api staging " + "a" * 5000, "limit is 4000"),
        ("/deploy", "api staging " + "a" * 200, "an image tag has at most 128"),
        ("/deploy", "\u0430pi staging v2", "Unknown app"),  # Cyrillic a
        ("/deploy", "", "Which app?"),
        ("/deploy", "     ", "Which app?"),
        ("/deploy", "api staging v2 --yolo", "Unknown option `--yolo`"),
        ("/deploy", "api staging repo:v2", "has a colon"),
        ("/deploy", "api Production v2", "Did you mean `production`?"),
        ("/run-task", "api staging ../migrate", "is not a task of api"),
        ("/run-task", "api staging migrate --drop", "takes no arguments"),
        ("/run-task", 'api staging migrate "unbalanced', "takes no arguments"),
        ("/run-task", 'api staging console "User.count', "a quote with no closing quote"),
        ("/run-task", "api staging console it's", "a quote with no closing quote"),
        ("/run-task", "api staging console trailing\\", "end with a lone `\\`"),
        ("/run-task", "api staging console \u201cUser.count\u201d", "curly quote `\u201c`"),
        ("/run-task", 'api staging console "a\tb"', "tabs and newlines are not"),
        ("/run-task", 'api staging console "two\nlines"', "tabs and newlines are not"),
        ("/run-task", "api staging console caf\u00e9", "printable ASCII"),
        ("/run-task", "api staging console " + "x" * 257, "256 characters at most"),
        ("/rollback", "api staging seven", "not a task definition revision"),
        ("/tugboat", "lock api staging", "needs a REASON"),
        ("/tugboat", "frobnicate", "Unknown /tugboat command"),
    ],
)
def test_bad_input_gets_a_usage_message(command: str, text: str, expected: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_slash(command, text, CATALOG)
    assert expected in str(caught.value)


def _names(request: Request) -> set[str]:
    target = getattr(request, "target", None)
    names = {target.app, target.env} if isinstance(target, Target) else set()
    if isinstance(request, StatusRequest):
        names |= {n for n in (request.app, request.env) if n is not None}
    if isinstance(request, RunTaskRequest):
        names.add(request.task)
    return names


CATALOG_NAMES = set(CATALOG.apps) | {
    n for app in CATALOG.apps.values() for n in (*app.environments, *app.tasks)
}
WORDS = st.sampled_from(
    [
        "api",
        "staging",
        "production",
        "migrate",
        "console",
        "v2",
        "--force",
        '"hot fix"',
        "for",
        "2h",
        "lock",
        "Api",
        "",
        " ",
    ]
)
TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=8).map(" ".join),
)


@settings(max_examples=600, deadline=None)
@given(
    command=st.sampled_from(["/deploy", "/rollback", "/run-task", "/ecs-status", "/tugboat", "/x"]),
    text=TEXT,
)
def test_parser_never_raises_anything_but_usage_and_never_invents_names(command: str, text: str) -> None:
    try:
        request = parse_slash(command, text, CATALOG)
    except UsageError as exc:
        assert str(exc)
        return
    assert _names(request) <= CATALOG_NAMES


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_mentions_never_raise_anything_but_usage(text: str) -> None:
    try:
        request = parse_mention("<@U0TUGBOAT> " + text, CATALOG)
    except UsageError:
        return
    assert _names(request) <= CATALOG_NAMES


# -- run-task ARGS: shell-like quoting of Slack's text, checked per argument ------------------------


def _args(text: str) -> tuple[str, ...]:
    request = parse_slash("/run-task", f"api staging console {text}", CATALOG)
    assert isinstance(request, RunTaskRequest)
    return request.args


@pytest.mark.parametrize(
    ("typed", "args"),
    [
        ('"Rails.cache.clear"', ("Rails.cache.clear",)),
        ('"User.count &gt; 1"', ("User.count > 1",)),
        ("'a &amp; b' &lt;c&gt;", ("a & b", "<c>")),
        ("&amp;lt;", ("&lt;",)),  # the user typed `&lt;`: one pass of unescaping, not two
        ('"it\'s" \'say "hi"\'', ("it's", 'say "hi"')),
        ("a\\ b \\\\", ("a b", "\\")),
        ("  spaced    out  ", ("spaced", "out")),
        ('"" x', ("", "x")),
        ("$HOME *.rb ~ `id` ; | #1", ("$HOME", "*.rb", "~", "`id`", ";", "|", "#1")),
        # What Slack sends for a mention: a typed URL or domain becomes a link; it is what was typed.
        (
            "\"Net::HTTP.get('<https://x.example/a?b=1&amp;c=2>')\"",
            ("Net::HTTP.get('https://x.example/a?b=1&c=2')",),
        ),
        ("<http://x.example|x.example>", ("x.example",)),
        ("<!channel> <@U0DEV>", ("<!channel>", "<@U0DEV>")),
    ],
)
def test_run_task_args_are_quoted_like_a_shell(typed: str, args: tuple[str, ...]) -> None:
    assert _args(typed) == args


def test_mentions_and_slash_commands_split_args_alike() -> None:
    request = parse_mention('<@U0TUGBOAT> run-task api staging console "a b"  c', CATALOG)
    assert request == RunTaskRequest(Target("api", "staging"), "console", ("a b", "c"))
    assert parse_slash("/run-task", "api staging console", CATALOG) == RunTaskRequest(
        Target("api", "staging"), "console"
    )


def test_lock_reasons_are_the_characters_typed() -> None:
    lock = parse_slash("/tugboat", "lock api staging db &lt;-&gt; cache &amp; queue, don't", CATALOG)
    assert isinstance(lock, LockRequest) and lock.reason == "db <-> cache & queue, don't"
    lock = parse_mention("<@U0TUGBOAT> lock api staging <!channel> <https://evil.example|x>", CATALOG)
    assert isinstance(lock, LockRequest) and lock.reason == "<!channel> <https://evil.example|x>"


def _slack_escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


PRINTABLE_ARG = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@settings(max_examples=400, deadline=None)
@given(args=st.lists(PRINTABLE_ARG, max_size=8))
def test_any_printable_args_survive_shell_quoting_and_slack_escaping(args: list[str]) -> None:
    typed = _slack_escaped(shlex.join(args))
    assert split_args(typed) == tuple(args)
    assert _args(typed) == tuple(args)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_args_are_argv_items_or_a_usage_error_never_anything_else(text: str) -> None:
    try:
        args = split_args(text)
    except UsageError as exc:
        assert "Usage: `/run-task APP ENV TASK [ARGS…]`" in str(exc)
        return
    assert all(len(arg) <= 256 and arg.isascii() and arg.isprintable() for arg in args)
