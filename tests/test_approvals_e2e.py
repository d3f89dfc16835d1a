"""Four-eyes approvals end to end: the real bot, the fake Slack, moto and the simulator.

Production here needs one approval from the `S0SRE` group for deploys and rollbacks
(SPEC part two, "Change control"); U0ADMIN may act on production, the SREs approve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from pydantic import SecretStr

from bot.domain.approvals import Approval
from bot.domain.catalog import Catalog
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, Message, wait_for
from bot.sandbox.world import SandboxWorld
from bot.slack.confirm import APPROVE_ACTION, CONFIRM_ACTION, WITHDRAW_ACTION
from tests.conftest import example_catalog, running
from tests.fixtures_github import SECRET, push_payload, sender
from tests.slackview import confirmation_in, ephemeral_to, final_parent, parents, revisions, service

ADMIN, SRE, SRE2, OPS = "U0ADMIN", "U0SRE1", "U0SRE2", "U0OPS"
PRODUCTION_RULES = "        allowed_users: [U0ADMIN]\n"


def approval_catalog(rule: str = "{required: 1, groups: [S0SRE], for: [deploy, rollback]}") -> Catalog:
    return example_catalog((PRODUCTION_RULES, f"{PRODUCTION_RULES}        approval: {rule}\n"))


@pytest.fixture
async def bot(world: SandboxWorld, fake: FakeSlack, tmp_path: Path) -> AsyncIterator[Tugboat]:
    fake.set_usergroup("S0SRE", [SRE, SRE2])
    async with running(fake, approval_catalog(), tmp_path / "approvals.db") as tugboat:
        yield tugboat


def cards(fake: FakeSlack, channel: str) -> list[Message]:
    return [m for m in parents(fake, channel) if "Approval needed" in m.text]


async def card_in(fake: FakeSlack, channel: str = "C0PROD", index: int = -1) -> Message:
    return await wait_for(
        lambda: len(found := cards(fake, channel)) > (index if index >= 0 else -index - 1) and found[index],
        what=f"an approval card in {channel}",
    )


async def card_saying(fake: FakeSlack, card: Message, words: str) -> Message:
    return await wait_for(
        lambda: (m := fake.message(card.channel, card.ts)) and words in m.flat and m,
        what=f"the approval card saying {words!r}",
    )


def threads(fake: FakeSlack, channel: str = "C0PROD") -> list[Message]:
    return [m for m in parents(fake, channel) if "Approval needed" not in m.text]


async def audit(bot: Tugboat) -> list[dict[str, str]]:
    return list(reversed(await bot.store.audit_entries()))  # type: ignore[attr-defined]


async def test_the_requesters_own_approval_does_nothing_a_second_users_deploys_and_the_card_names_them(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    for shown in (
        "Deploy api production `v2`",
        "`api:v1` → `api:v2`",
        "Exactly this image: `sha256:",
        "rev 1 → new revision",
        "Runs first: `migrate`",
        "Asked by <@U0ADMIN>",
        "May approve: members of `S0SRE`, except <@U0ADMIN>",
        "Approved by (0/1): nobody yet · 1 more needed",
    ):
        assert shown in card.flat, shown
    await ephemeral_to(fake, ADMIN, containing="awaits 1 approval")

    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=ADMIN)
    await ephemeral_to(fake, ADMIN, containing="someone else has to approve it")
    assert threads(fake) == [] and len(revisions(world, "api-production")) == 1

    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
    deployed = await final_parent(fake, "C0PROD", timeout=40)
    assert "*Succeeded*" in deployed.flat and "<@U0ADMIN>" in deployed.flat
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")
    settled = await card_saying(fake, card, "Approved by <@U0SRE1>")
    assert "Approved by (1/1): <@U0SRE1>" in settled.flat
    assert not any(b["type"] == "actions" for b in settled.blocks or [])
    thread = "\n".join(m.flat for m in fake.thread("C0PROD", deployed.ts))
    assert "Approved by <@U0SRE1>." in thread
    entries = await audit(bot)
    assert any(
        e["who"] == ADMIN and e["what"] == "approve refused" and "requester" in e["outcome"] for e in entries
    )
    assert any(
        e["who"] == SRE and e["what"] == "approve" and "approved by U0SRE1" in e["outcome"] for e in entries
    )


async def test_a_user_outside_the_approval_groups_cannot_approve(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=OPS)
    refusal = await ephemeral_to(fake, OPS, containing="You may not approve")
    assert "none of its approval groups (`S0SRE`)" in refusal
    current = fake.message("C0PROD", card.ts)
    assert current is not None and "nobody yet" in current.flat
    assert threads(fake) == [] and len(revisions(world, "api-production")) == 1
    assert any(e["who"] == OPS and e["what"] == "approve refused" for e in await audit(bot))


async def test_an_expired_request_cannot_be_approved(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    approval_id = next(b for b in card.blocks or [] if b["type"] == "actions")["elements"][0]["value"]
    # As a replica that restarted would find it: past its time, still open in the store.
    stored = await wait_for(
        lambda: _placed(bot, approval_id, card.ts), what="the request saved with its card"
    )
    stored.expires_at = stored.created_at - 1
    assert await bot.store.update_approval(stored)

    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)

    await ephemeral_to(fake, SRE, containing="That request expired; nothing changed.")
    expired = await card_saying(fake, card, "Expired")
    assert not any(b["type"] == "actions" for b in expired.blocks or [])
    assert threads(fake) == [] and len(revisions(world, "api-production")) == 1
    assert any(e["who"] == SRE and "expired" in e["outcome"] for e in await audit(bot))


async def test_a_request_expires_by_itself_after_its_timeout_and_the_card_says_so(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = approval_catalog("{required: 1, groups: [S0SRE], timeout: 1}")
    async with running(fake, catalog, tmp_path / "expiry.db") as tugboat:
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        card = await card_in(fake)
        expired = await card_saying(fake, card, "Expired: not approved within 1 second. Nothing ran.")
        assert not any(b["type"] == "actions" for b in expired.blocks or [])
        assert threads(fake) == [] and len(revisions(world, "api-production")) == 1
        assert any(e["what"] == "approval expired" for e in await audit(tugboat))


async def test_a_changed_target_refuses_the_approval_and_nothing_runs(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    world.push_image(SandboxWorld.EXAMPLE_REPOSITORY, "v2", built_from="v2-rebuilt")

    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)

    refusal = await ephemeral_to(fake, SRE, containing="changed since the card was posted")
    assert "tag `v2` now points at image sha256:" in refusal and "Nothing ran" in refusal
    settled = await card_saying(fake, card, "not run:")
    assert "tag `v2` now points at image" in settled.flat
    assert threads(fake) == []
    assert len(revisions(world, "api-production")) == 1
    assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")


async def test_a_rollback_needs_approval_when_for_names_it(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    fake.set_usergroup("S0SRE", [SRE])
    catalog = approval_catalog("{required: 1, groups: [S0SRE], for: [rollback]}")
    async with running(fake, catalog, tmp_path / "rollback.db"):
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        fake.click("C0DEPLOY", (await confirmation_in(fake)).ts, CONFIRM_ACTION, user=ADMIN)  # confirm only
        await final_parent(fake, "C0PROD", timeout=40)
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")

        fake.slash_command("/rollback", "api production", user=ADMIN, channel="C0DEPLOY")
        card = await card_in(fake)
        assert "Rollback api production `rev 1`" in card.flat and "rev 2 → rev 1" in card.flat
        assert len(threads(fake)) == 1  # the deploy's only: nothing rolled back yet
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:2")

        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        rolled = await final_parent(fake, "C0PROD", timeout=40)
        assert "rollback" in rolled.flat.lower() and "*Succeeded*" in rolled.flat
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")
        await card_saying(fake, card, "Approved by <@U0SRE1>")


async def test_the_requester_can_withdraw_and_nothing_runs(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    fake.click("C0PROD", card.ts, WITHDRAW_ACTION, user=ADMIN)
    settled = await card_saying(fake, card, "Cancelled by <@U0ADMIN>; nothing ran.")
    assert not any(b["type"] == "actions" for b in settled.blocks or [])
    await ephemeral_to(fake, ADMIN, containing="Cancelled the deploy of api production")
    assert threads(fake) == [] and len(revisions(world, "api-production")) == 1


async def test_two_presses_at_once_on_a_one_approval_request_run_it_once(
    bot: Tugboat, fake: FakeSlack, world: SandboxWorld
) -> None:
    fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
    card = await card_in(fake)
    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
    fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE2)
    deployed = await final_parent(fake, "C0PROD", timeout=40)
    assert "*Succeeded*" in deployed.flat
    await bot.idle()
    assert len(threads(fake)) == 1 and len(revisions(world, "api-production")) == 2
    settled = fake.message("C0PROD", card.ts)
    assert settled is not None and "Approved by (1/1)" in settled.flat
    late = [e for e in await audit(bot) if e["what"] == "approve refused"]
    assert len(late) == 1 and "the request is approved" in late[0]["outcome"]


async def test_two_approvals_needed_count_distinct_users_once_each(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    fake.set_usergroup("S0SRE", [SRE, SRE2])
    async with running(fake, approval_catalog("{required: 2, groups: [S0SRE]}"), tmp_path / "two.db"):
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        card = await card_in(fake)
        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        await card_saying(fake, card, "Approved by (1/2): <@U0SRE1> · 1 more needed")
        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        await ephemeral_to(fake, SRE, containing="You already approved this; it awaits 1 more.")
        assert threads(fake) == []
        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE2)
        deployed = await final_parent(fake, "C0PROD", timeout=40)
        assert "*Succeeded*" in deployed.flat
        await card_saying(fake, card, "Approved by <@U0SRE1>, <@U0SRE2>")


async def test_an_auto_deploy_to_an_environment_with_approval_posts_a_card_instead(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = example_catalog(
        ("          image_wait: 900\n", "          image_wait: 900\n        approval: {required: 1}\n")
    )
    sha = SandboxWorld.EXAMPLE_SHAS[0]
    settings = {"github_webhook_secret": SecretStr(SECRET)}
    async with (
        running(fake, catalog, tmp_path / "auto.db", **settings) as tugboat,
        aiohttp.ClientSession() as http,
    ):
        status, _ = await sender(http, tugboat)("push", push_payload(sha))
        assert status == 202
        card = await card_in(fake, "C0STAGING")
        assert f"Deploy api staging `{sha}`" in card.flat and "Asked by octocat (push)" in card.flat
        assert threads(fake, "C0STAGING") == []
        assert world.calls()["ecs:UpdateService"] == 0

        fake.click("C0STAGING", card.ts, APPROVE_ACTION, user="U0DEV")
        deployed = await final_parent(fake, "C0STAGING", timeout=40)
        assert "*Succeeded*" in deployed.flat
        assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


async def _placed(bot: Tugboat, approval_id: str, ts: str) -> Approval | None:
    stored = await bot.store.get_approval(approval_id)
    return stored if stored is not None and stored.ts == ts else None


async def test_scale_and_restart_need_approval_when_for_names_them(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    fake.set_usergroup("S0SRE", [SRE])
    catalog = approval_catalog("{required: 1, groups: [S0SRE], for: [scale, restart]}")
    async with running(fake, catalog, tmp_path / "remedies.db"):
        fake.slash_command("/ecs-scale", "api production 3", user=ADMIN, channel="C0DEPLOY")
        card = await card_in(fake)
        assert "Scale `api` from 2 to 3 tasks." in card.flat
        assert service(world, "production", "api")["desiredCount"] == 2
        fake.click("C0PROD", card.ts, APPROVE_ACTION, user=SRE)
        await card_saying(fake, card, "Approved by <@U0SRE1>")
        await wait_for(lambda: service(world, "production", "api")["runningCount"] == 3, timeout=30)

        before = service(world, "production", "api")["deployments"][0]["id"]
        fake.slash_command("/ecs-restart", "api production", user=ADMIN, channel="C0DEPLOY")
        restart = await card_in(fake, index=1)
        assert "a new deployment of the revision it runs now" in restart.flat
        assert service(world, "production", "api")["deployments"][0]["id"] == before
        fake.click("C0PROD", restart.ts, APPROVE_ACTION, user=SRE)
        await card_saying(fake, restart, "Approved by <@U0SRE1>")
        done = await wait_for(
            lambda: (
                (t := [m for m in threads(fake) if "Restart" in m.flat and "*Succeeded*" in m.flat]) and t[0]
            ),
            timeout=40,
            what="the approved restart's thread",
        )
        assert "<@U0ADMIN>" in done.flat
        assert service(world, "production", "api")["taskDefinition"].endswith("api-production:1")
