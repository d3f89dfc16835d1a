"""Freeze windows end to end: deploys and auto-deploys refused, rollbacks allowed, `--force "REASON"`.

Staging here is frozen from an hour ago for two hours (a one-off window made at test time),
with its times shown in Europe/Berlin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.domain.catalog import Catalog
from bot.domain.freezes import when
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.confirm import APPROVE_ACTION
from tests.conftest import example_catalog, running
from tests.fixtures_github import SECRET, push_payload, sender
from tests.slackview import answer_to, ephemeral_to, final_parent, parents, service, thread_text

DEV, ADMIN, SRE = "U0DEV", "U0ADMIN", "U0SRE1"
ENDS = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
UNTIL = when(ENDS, "Europe/Berlin")
STAGING_TIMEOUT = "          image_wait: 900\n        timeout: 300\n"


def frozen(env_anchor: str = STAGING_TIMEOUT, extra: str = "") -> Catalog:
    starts = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    window = (
        f"        timezone: Europe/Berlin\n        freeze:\n"
        f'          - {{from: "{starts.isoformat()}", to: "{ENDS.isoformat()}", reason: release week}}\n'
        f'          - {{cron: "0 18 * * FRI", duration: 62h, reason: weekend}}\n'
    )
    return example_catalog((env_anchor, env_anchor + window + extra))


@pytest.fixture
async def bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    async with running(
        fake, frozen(), tmp_path / "freeze.db", github_webhook_secret=SecretStr(SECRET)
    ) as tugboat:
        yield tugboat


async def test_a_deploy_is_refused_during_a_window_and_a_rollback_is_allowed(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    state = tmp_path / "freeze.db"
    async with running(fake, example_catalog(), state):  # before the freeze: something to roll back
        fake.slash_command("/deploy", "api staging v2", user=DEV)
        await final_parent(fake, "C0STAGING")
    world.reset_calls()
    async with running(fake, frozen(), state):
        refusal = await answer_to(fake, "/deploy", "api staging v3", containing="is frozen", user=DEV)
        assert f"api staging is frozen until {UNTIL}: release week." in refusal
        assert '(`--force "REASON"` deploys anyway.)' in refusal
        assert world.calls()["ecs:RegisterTaskDefinition"] == 0
        assert world.calls()["ecs:UpdateService"] == 0

        fake.slash_command("/rollback", "api staging", user=DEV)
        rolled = await final_parent(fake, "C0STAGING", 1)
        assert "*Succeeded*" in rolled.flat
        assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")


async def test_force_with_a_reason_deploys_and_the_reason_is_in_the_thread_and_the_audit_trail(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", 'api staging v2 --force "INC-42: checkout &lt;down&gt;"', user=DEV)
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat
    thread = await thread_text(fake, parent, must_contain="Forced by")
    assert ":rotating_light: *Forced by <@U0DEV>: INC-42: checkout &lt;down&gt;*" in thread
    assert f"Forced through the freeze until {UNTIL}: release week" in thread
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    entries = await bot.store.audit_entries()  # type: ignore[attr-defined]
    forced = [e for e in entries if e["what"] == "force"]
    assert len(forced) == 1 and forced[0]["who"] == DEV
    assert forced[0]["outcome"] == "reason: INC-42: checkout <down> (passed: freeze)"


async def test_an_auto_deploy_during_a_freeze_does_not_deploy(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    sha = SandboxWorld.EXAMPLE_SHAS[0]
    async with aiohttp.ClientSession() as http:
        status, _ = await sender(http, bot)("push", push_payload(sha))
    assert status == 202
    line = await wait_for(
        lambda: next((m for m in parents(fake, "C0STAGING") if "Not auto-deploying" in m.flat), None),
        what="the skipped auto-deploy line",
    )
    assert f"api staging is frozen until {UNTIL}: release week." in line.flat
    await bot.idle()
    assert parents(fake, "C0STAGING") == [line]
    assert world.calls()["ecs:RegisterTaskDefinition"] == 0 and world.calls()["ecs:UpdateService"] == 0


async def test_status_cards_the_home_tab_and_freezes_show_the_window(bot: Tugboat, fake: FakeSlack) -> None:
    fake.slash_command("/ecs-status", "api staging", user=DEV, channel="C0DEV")
    card = await wait_for(
        lambda: next((m for m in fake.channel_messages("C0DEV") if "frozen until" in m.flat), None),
        what="a status card that says frozen",
    )
    assert f":snowflake: frozen until {UNTIL}: release week" in card.flat

    fake.slash_command("/ecs-status", "", user=DEV, channel="C0DEV")
    overview = await wait_for(
        lambda: next((m for m in fake.channel_messages("C0DEV") if "Service status" in m.text), None),
        what="the overview",
    )
    staging = next(line for line in overview.flat.splitlines() if "api staging" in line)
    production = next(line for line in overview.flat.splitlines() if "api production" in line)
    assert f":snowflake: frozen until {UNTIL}" in staging and "frozen" not in production

    listing = await answer_to(fake, "/tugboat", "freezes", containing="Freeze windows", user=DEV)
    assert "api staging* (Europe/Berlin)" in listing
    assert f":snowflake: frozen now, until {UNTIL}: release week" in listing
    assert "• next: Fri " in listing and "18:00 Europe/Berlin → Mon " in listing and "weekend" in listing
    assert "No freeze windows ahead for api production, shop production." in listing


async def test_a_forced_deploy_still_needs_approval_where_it_is_configured(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    fake.set_usergroup("S0SRE", [SRE])
    anchor = "        allowed_users: [U0ADMIN]\n"
    catalog = frozen(anchor, "        approval: {required: 1, groups: [S0SRE]}\n")
    async with running(fake, catalog, tmp_path / "both.db"):
        refusal = await answer_to(
            fake, "/deploy", "api production v2", containing="is frozen", user=ADMIN, channel="C0DEPLOY"
        )
        assert "api production is frozen" in refusal
        fake.slash_command(
            "/deploy", 'api production v2 --force "security fix"', user=ADMIN, channel="C0DEPLOY"
        )
        card = await wait_for(
            lambda: next((m for m in parents(fake, "C0PROD") if "Approval needed" in m.text), None),
            what="the approval card",
        )
        assert "Forced: security fix" in card.flat and f"Frozen until {UNTIL}: release week" in card.flat
        assert world.calls()["ecs:UpdateService"] == 0

        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        parent = await final_parent(fake, "C0PROD", timeout=40)
        assert "*Succeeded*" in parent.flat
        thread = await thread_text(fake, parent, must_contain="Forced by")
        assert "Forced by <@U0ADMIN>: security fix" in thread and "Approved by <@U0SRE1>." in thread
        await ephemeral_to(fake, SRE, containing="Deploying api production")
