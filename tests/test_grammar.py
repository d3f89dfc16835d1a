"""The grammar turns text into requests whose every name is in the catalog, or a usage error."""

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
)
from tests.conftest import EXAMPLE

CATALOG = load_catalog(EXAMPLE)


def test_deploy_with_ref_and_force() -> None:
    assert parse_slash("/deploy", "api staging v2", CATALOG) == DeployRequest(Target("api", "staging"), "v2")
    forced = parse_slash("/deploy", "--force api staging v2", CATALOG)
    assert isinstance(forced, DeployRequest) and forced.force


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
