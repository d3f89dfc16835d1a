"""Safety end to end: permissions, confirmations, locks, history and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain.catalog import Catalog
from bot.domain.records import OperationRecord
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.blocks import ROLLBACK_ACTION
from bot.slack.confirm import CONFIRM_ACTION, DECLINE_ACTION
from tests.conftest import example_catalog, running
from tests.slackview import (
    answer_to,
    confirmation_in,
    ephemeral_to,
    final_parent,
    parents,
    revisions,
    service,
)

ADMIN = "U0ADMIN"
DEV = "U0DEV"
OPS = "U0OPS"


def guarded_catalog() -> Catalog:
    """Production: allowed_users U0ADMIN, group S0OPS, only from #C0PROD or #C0DEPLOY; confirm."""
    return example_catalog(
        (
            "        allowed_users: [U0ADMIN]\n",
            "        allowed_users: [U0ADMIN]\n        allowed_channels: [C0PROD, C0DEPLOY]\n",
        ),
        ("allowed_groups: [S0ONCALL]", "allowed_groups: [S0OPS]"),
    )


@pytest.fixture
async def guarded(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    fake.set_usergroup("S0OPS", [OPS])
    async with running(fake, guarded_catalog(), tmp_path / "t.db") as tugboat:
        yield tugboat


async def refusal_of_a_production_deploy(fake: FakeSlack, user: str, channel: str, containing: str) -> str:
    """`/deploy api production v2` from `user` in `channel`: the ephemeral that refuses it."""
    return await answer_to(
        fake, "/deploy", "api production v2", containing=containing, user=user, channel=channel
    )


async def test_user_outside_allowed_users_is_refused_for_command_and_button(
    guarded: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    refusal = await refusal_of_a_production_deploy(fake, DEV, "C0DEPLOY", "You may not act on api production")
    assert "`allowed_users` or `allowed_groups`" in refusal

    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    fake.click("C0DEPLOY", (await confirmation_in(fake)).ts, CONFIRM_ACTION, user=ADMIN)
    deploy = await final_parent(fake, "C0PROD")
    fake.click("C0PROD", deploy.ts, ROLLBACK_ACTION, user=DEV)
    refusal = await wait_for(
        lambda: [m for m in fake.ephemerals(user=DEV) if "You may not act" in m.flat][1:],
        what="second refusal",
    )
    assert refusal
    assert len(parents(fake, "C0PROD")) == 1
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")
    entries = await guarded.store.audit_entries()  # type: ignore[attr-defined]
    assert sum(e["who"] == DEV and e["what"] == "refused" for e in entries) == 2


async def test_member_of_an_allowed_group_is_accepted(guarded: Tugboat, fake: FakeSlack) -> None:
    fake.slash_command("/deploy", "api production v2", user=OPS, channel="C0DEPLOY")
    confirmation = await confirmation_in(fake)
    assert "`api:v1` → `api:v2`" in confirmation.flat
    assert "github.com/acme/api/compare/v1...v2" in str(confirmation.blocks)


async def test_command_from_a_channel_outside_allowed_channels_is_refused(
    guarded: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    refusal = await refusal_of_a_production_deploy(fake, ADMIN, "C0RANDOM", "takes commands only in")
    assert "`allowed_channels`" in refusal
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0


async def test_nothing_changes_until_deploy_is_clicked(
    guarded: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    confirmation = await confirmation_in(fake)
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 1

    fake.click("C0DEPLOY", confirmation.ts, CONFIRM_ACTION, user=OPS)
    parent = await final_parent(fake, "C0PROD")
    assert "*Succeeded*" in parent.flat and "<@U0ADMIN>" in parent.flat
    settled = fake.message("C0DEPLOY", confirmation.ts)
    assert settled is not None and "confirmed by <@U0OPS>" in settled.flat
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")


async def test_cancel_leaves_ecs_unchanged(guarded: Tugboat, fake: FakeSlack, world: SandboxWorld) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    fake.click("C0DEPLOY", (await confirmation_in(fake)).ts, DECLINE_ACTION, user=ADMIN)
    await ephemeral_to(fake, ADMIN, containing="Cancelled the deploy")
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 1


async def test_another_users_click_is_refused(guarded: Tugboat, fake: FakeSlack, world: SandboxWorld) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    fake.click("C0DEPLOY", (await confirmation_in(fake)).ts, CONFIRM_ACTION, user=DEV)
    refusal = await ephemeral_to(fake, DEV, containing="can confirm")
    assert "Only <@U0ADMIN> or someone allowed on api production can confirm" in refusal
    assert parents(fake, "C0PROD") == []
    assert len(revisions(world, "api-production")) == 1


async def test_an_expired_confirmation_is_refused(
    guarded: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    pending = await confirmation_in(fake)
    pending_id = next(b for b in pending.blocks or [] if b["type"] == "actions")["elements"][0]["value"]
    # The request is saved again once its card is posted: edit it after that, or the bot's own
    # second save would put the real creation time back.
    record = await wait_for(
        lambda: _with_card(guarded, pending_id, pending.ts), what="the request saved with its card"
    )
    record.created_at -= 601
    await guarded.store.save(record)
    fake.click("C0DEPLOY", pending.ts, CONFIRM_ACTION, user=ADMIN)
    await ephemeral_to(fake, ADMIN, containing="expired after 10 minutes")
    assert len(revisions(world, "api-production")) == 1


async def test_locks_block_deploy_and_rollback_force_passes_unlock_restores(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    await final_parent(fake, "C0STAGING")
    fake.slash_command("/tugboat", "lock api staging db maintenance", user=OPS)
    await wait_for(
        lambda: any("locked api staging" in m.flat for m in parents(fake, "C0STAGING")), what="lock line"
    )

    fake.slash_command("/deploy", "api staging v3", user=DEV)
    text = await ephemeral_to(fake, DEV, containing="is locked by")
    assert "<@U0OPS>" in text and "db maintenance" in text
    fake.slash_command("/rollback", "api staging", user=DEV)
    await wait_for(lambda: len([m for m in fake.ephemerals(user=DEV) if "is locked by" in m.flat]) == 2)
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")

    fake.slash_command("/deploy", "api staging v3 --force", user=DEV)
    await ephemeral_to(fake, DEV, containing="`--force` needs a reason in quotes")
    fake.slash_command("/deploy", 'api staging v3 --force "hotfix for INC-7"', user=DEV)
    forced = await final_parent(fake, "C0STAGING", 2)
    assert "*Succeeded*" in forced.flat
    thread = "\n".join(m.flat for m in fake.thread("C0STAGING", forced.ts))
    assert "Forced through the lock held by <@U0OPS>" in thread
    assert "Forced by <@U0DEV>: hotfix for INC-7" in thread

    fake.slash_command("/tugboat", "unlock api staging", user=OPS)
    await wait_for(lambda: any("unlocked api staging" in m.flat for m in parents(fake, "C0STAGING")))
    fake.slash_command("/rollback", "api staging", user=DEV)
    rolled = await final_parent(fake, "C0STAGING", 4)
    assert "*Succeeded*" in rolled.flat


async def test_a_timed_lock_expires_on_its_own(bot: Tugboat, fake: FakeSlack) -> None:
    from bot.domain.records import Lock

    await bot.store.lock(Lock("api", "staging", OPS, "short hold", 0.0, expires_at=1.0))
    fake.slash_command("/deploy", "api staging v2", user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat


async def test_history_lists_the_runs_deploys_in_order(bot: Tugboat, fake: FakeSlack) -> None:
    for index, tag in enumerate(("v2", "broken", "v3")):
        fake.slash_command("/deploy", f"api staging {tag}", user=DEV)
        await final_parent(fake, "C0STAGING", index, timeout=40)
    fake.slash_command("/tugboat", "history api staging", user=DEV)
    text = await ephemeral_to(fake, DEV, containing="Last 3 deploys")
    lines = text.splitlines()[1:]
    assert "`v3`" in lines[0] and "succeeded" in lines[0]
    assert "`broken`" in lines[1] and "failed" in lines[1]
    assert "`v2`" in lines[2] and "rev 1→2" in lines[2]


BAD_INPUTS = [
    ("/deploy", "; rm -rf /", "Unknown option `-rf`"),
    ("/deploy", "$(id)", "Unknown app `$(id)`"),
    ("/deploy", "../../etc", "Unknown app `../../etc`"),
    ("/deploy", "api staging " + "x" * 5000, "limit is 4000"),
    ("/deploy", "\u0430pi staging v2", "Unknown app"),
    ("/deploy", "", "Which app?"),
    ("/deploy", "    ", "Which app?"),
    ("/deploy", "api staging v2 --now", "Unknown option `--now`"),
    ("/deploy", "api staging registry:v2", "has a colon"),
    ("/deploy", "api Staging v2", "Did you mean `staging`?"),
    ("/run-task", "api staging db/migrate", "is not a task of api"),
    ("/deploy", 'api production v2 --force "x"', "You may not act on api production"),
    ("/deploy", "api staging v2 --force", "`--force` needs a reason in quotes"),
    ("/deploy", "--force api staging v2", "`--force` needs a reason in quotes"),
]


async def test_bad_input_changes_nothing_and_says_what_was_wrong(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    for index, (command, text, _) in enumerate(BAD_INPUTS):
        fake.slash_command(command, text, user=f"U0NEW{index:02d}")
    for index, (_, _, expected) in enumerate(BAD_INPUTS):
        await ephemeral_to(fake, f"U0NEW{index:02d}", containing=expected)
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0
    assert world.calls()["ecs:UpdateService"] == 0
    assert world.calls()["ecs:RunTask"] == 0
    assert parents(fake, "C0STAGING") == [] and parents(fake, "C0PROD") == []


async def _with_card(bot: Tugboat, pending_id: str, ts: str) -> OperationRecord | None:
    record = await bot.store.get(pending_id)
    return record if record is not None and record.ts == ts else None
