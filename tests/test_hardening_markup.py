"""Hardening end to end: run-task ARGS as typed, read rights on every overview, no echoed markup."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bot.domain.catalog import Catalog
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from tests.conftest import example_catalog, running
from tests.slackview import confirmation_in, ephemeral_to, final_parent, parent_where, parents

ADMIN = "U0ADMIN"
DEV = "U0DEV"
READER = "U0READER"

EVIL = "<!channel> <https://evil.example|Re-auth here>"
"""What Slack sends when someone picks @channel and pastes a formatted link: live markup."""
LIVE_MARKUP = ("<!channel>", "<https://evil.example")


# -- 14: run-task ARGS are parsed like a shell would, and reach ECS exactly ------------------------


def _one_off_commands(world: SandboxWorld, cluster: str) -> list[list[str]]:
    """The `command` override of each one-off task ECS ran in `cluster`, as ECS recorded it."""
    ecs = world.client("ecs")
    arns = [
        *ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"],
        *ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"],
    ]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return [
        list(override["command"])
        for task in tasks
        if task.get("startedBy") == "tugboat"
        for override in task.get("overrides", {}).get("containerOverrides", [])
        if override.get("command")
    ]


async def test_run_task_args_are_quoted_like_a_shell_and_unescaped_before_ecs(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    # Slack sends `>` and `&` typed by the user as entities.
    typed = "api staging console \"User.count &gt; 1\" 'a &amp; b' plain"
    fake.slash_command("/run-task", typed, user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat
    assert _one_off_commands(world, "staging") == [
        ["bin/rails", "runner", "User.count > 1", "a & b", "plain"]
    ]


async def test_run_task_with_an_unbalanced_quote_is_refused_and_runs_nothing(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/run-task", 'api staging console "Rails.cache.clear', user=DEV)
    refusal = await ephemeral_to(fake, DEV, containing="quote")
    assert (
        "ARGS have a quote with no closing quote" in refusal
        and "Usage: `/run-task APP ENV TASK [ARGS…]`" in refusal
    )
    assert world.calls()["ecs:RunTask"] == 0
    assert parents(fake, "C0STAGING") == []


# -- 5: the Home tab and the overview show only what the user may read ----------------------------


def _read_guarded(*envs: str) -> Catalog:
    """The example catalog where each of `envs` may be read only by U0READER and U0ADMIN.

    Production already has `allowed_users: [U0ADMIN]`; staging gets it (who may act may read)."""
    rules = {
        "staging": ("        channel: C0STAGING\n", f"        allowed_users: [{ADMIN}]\n"),
        "production": ("        channel: C0PROD\n", ""),
    }
    return example_catalog(
        *((rules[e][0], f"{rules[e][0]}{rules[e][1]}        read_users: [{READER}]\n") for e in envs)
    )


async def _home_of(fake: FakeSlack, user: str) -> str:
    before = len(fake.views(user))
    fake.app_home_opened(user)
    views = await wait_for(lambda: fake.views(user)[before:], what=f"the Home tab of {user}")
    assert views[-1].type == "home"
    return views[-1].flat


async def test_home_tab_and_overview_leave_out_what_the_user_may_not_read(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, _read_guarded("production"), tmp_path / "t.db"):
        home = await _home_of(fake, DEV)
        assert "api staging" in home
        assert "api production" not in home

        for user in (READER, ADMIN):
            home = await _home_of(fake, user)
            assert "api staging" in home and "api production" in home, user

        fake.slash_command("/ecs-status", "", user=DEV, channel="C0OPS")
        overview = await wait_for(lambda: next(iter(parents(fake, "C0OPS")), None), what="overview")
        assert "*api staging*" in overview.flat and "api production" not in overview.flat


async def test_home_tab_with_nothing_readable_says_so(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    async with running(fake, _read_guarded("staging", "production"), tmp_path / "t.db"):
        home = await _home_of(fake, DEV)
        assert "api staging" not in home and "api production" not in home
        assert "There is no service you may read." in home and "`read_users`" in home
        home = await _home_of(fake, READER)
        assert "api staging" in home and "api production" in home


# -- 6: what users type never becomes live markup in what Tugboat posts ---------------------------


def _sent(fake: FakeSlack) -> Iterator[tuple[str, str]]:
    """Everything Tugboat sent to Slack (posts, edits, ephemerals, views, response_url replies)."""
    for call in fake.calls:
        if call.method.startswith("chat.") or call.method.startswith("views.") or "response" in call.method:
            yield call.method, json.dumps(call.params, ensure_ascii=False)


def _assert_no_live_markup(fake: FakeSlack) -> None:
    sent = list(_sent(fake))
    assert sent
    for method, params in sent:
        for markup in LIVE_MARKUP:
            assert markup not in params, f"{method} sent live {markup!r}: {params}"


def _shows_escaped(message: Message) -> bool:
    """`<!channel>` as readers see it, literal text: in the fallback text and in the blocks."""
    return "&lt;!channel&gt;" in message.text and "&lt;!channel&gt;" in json.dumps(message.blocks or [])


async def lock_announcement(fake: FakeSlack) -> Message:
    """The line in staging's channel that says api staging was locked, and why."""
    return await parent_where(
        fake, "C0STAGING", lambda m: "locked api staging" in m.text, what="the lock announcement"
    )


async def test_lock_reason_with_markup_is_shown_as_text_everywhere(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.mention(f"lock api staging {EVIL}", user=DEV, channel="C0DEV")
    announcement = await lock_announcement(fake)
    assert "&lt;!channel&gt; &lt;https://evil.example|Re-auth here&gt;" in announcement.text
    await ephemeral_to(fake, DEV, containing="Locked api staging.")

    fake.slash_command("/ecs-status", "api staging", user=DEV, channel="C0DEV")
    card = await parent_where(fake, "C0DEV", lambda m: "locked by" in m.flat, what="the status card")
    assert "&lt;!channel&gt;" in card.flat

    fake.slash_command("/deploy", "api staging v2", user=DEV)
    refusal = await ephemeral_to(fake, DEV, containing="is locked by")
    assert "&lt;!channel&gt;" in refusal

    fake.mention(f"lock api staging for 1h {EVIL}", user=DEV, channel="C0DEV")
    again = await ephemeral_to(fake, DEV, containing="api staging is locked by <@U0DEV>")
    assert "&lt;!channel&gt;" in again

    await _home_of(fake, DEV)
    _assert_no_live_markup(fake)
    assert world.calls()["ecs:UpdateService"] == 0


async def test_what_slack_escaped_is_shown_as_typed_not_escaped_twice(bot: Tugboat, fake: FakeSlack) -> None:
    # The user typed `db <-> cache & queue`; Slack sends `<`, `>` and `&` as entities.
    fake.slash_command("/tugboat", "lock api staging db &lt;-&gt; cache &amp; queue", user=DEV)
    announcement = await lock_announcement(fake)
    # Slack shows `&lt;` as `<`: the reader sees `db <-> cache & queue`, not `db &lt;-&gt; …`.
    assert announcement.text.endswith(": db &lt;-&gt; cache &amp; queue")
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    refusal = await ephemeral_to(fake, DEV, containing="is locked by")
    assert refusal.endswith(': db &lt;-&gt; cache &amp; queue (`--force "REASON"` deploys anyway.)')


async def test_a_confirmation_card_shows_the_lock_reason_as_text(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.mention(f"lock api production {EVIL}", user=ADMIN, channel="C0DEV")
    await ephemeral_to(fake, ADMIN, containing="Locked api production.")
    fake.slash_command("/deploy", 'api production v2 --force "past the lock"', user=ADMIN, channel="C0DEPLOY")
    card = await confirmation_in(fake)
    assert "&lt;!channel&gt;" in card.flat
    _assert_no_live_markup(fake)


async def test_run_task_args_with_markup_are_shown_as_text_in_the_thread(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.mention('run-task api staging console "<!channel>" ok', user=DEV, channel="C0DEV")
    parent = await final_parent(fake, "C0STAGING")
    assert _shows_escaped(parent)
    assert _one_off_commands(world, "staging") == [["bin/rails", "runner", "<!channel>", "ok"]]
    _assert_no_live_markup(fake)


async def test_usage_errors_never_echo_markup(bot: Tugboat, fake: FakeSlack) -> None:
    fake.mention(f"deploy {EVIL}", user=DEV, channel="C0DEV")
    fake.mention(f"<!channel> {EVIL}", user=ADMIN, channel="C0DEV")
    await ephemeral_to(fake, DEV, containing="Unknown app")
    await ephemeral_to(fake, ADMIN, containing="Unknown command")
    _assert_no_live_markup(fake)
