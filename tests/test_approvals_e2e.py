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
from tests.conftest import one_service_catalog, running
from tests.fixtures_github import SECRET, push_payload, sender
from tests.slackview import confirmation_in, ephemeral_to, final_parent, parents, revisions, service

ADMIN, SRE, SRE2, OPS = "U0ADMIN", "U0SRE1", "U0SRE2", "U0OPS"
PRODUCTION_RULES = "        allowed_users: [U0ADMIN]\n"
AUTO_DEPLOY_APPROVAL = (
    "          image_wait: 900\n",
    "          image_wait: 900\n        approval: {required: 1}\n",
)


def approval_catalog(rule: str = "{required: 1, groups: [S0SRE], for: [deploy, rollback]}") -> Catalog:
    return one_service_catalog((PRODUCTION_RULES, f"{PRODUCTION_RULES}        approval: {rule}\n"))


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
    catalog = one_service_catalog(AUTO_DEPLOY_APPROVAL)
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


def approval_id_of(card: Message) -> str:
    return str(next(b for b in card.blocks or [] if b["type"] == "actions")["elements"][0]["value"])


def has_buttons(card: Message | None) -> bool:
    return card is not None and any(b["type"] == "actions" for b in card.blocks or [])


async def test_a_request_outlives_its_bot_and_expires_on_time_once_with_two_replicas(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    catalog = approval_catalog("{required: 1, groups: [S0SRE], timeout: 4}")
    state = tmp_path / "replicas.db"
    async with running(fake, catalog, state) as first:
        fake.slash_command("/deploy", "api production v2", user=ADMIN, channel="C0DEPLOY")
        card = await card_in(fake)
        approval_id = approval_id_of(card)
        await wait_for(lambda: _placed(first, approval_id, card.ts), what="the request saved with its card")
    assert has_buttons(fake.message(card.channel, card.ts)), "stopped before its timeout: still open"

    async with (
        running(fake, catalog, state) as one,
        running(fake, catalog, state, tugboat_replica_id="replica-b") as two,
    ):
        expired = await card_saying(fake, card, "Expired: not approved within 4 seconds. Nothing ran.")
        for replica in (one, two):  # both timed it: wait until neither timer is left
            await replica.operations.approvals.timers.idle()
        expiries = [e for e in await audit(one) if e["what"] == "approval expired"]
        stored = await one.store.get_approval(approval_id)

    assert not has_buttons(expired)
    assert len(expiries) == 1 and approval_id in expiries[0]["outcome"]
    assert stored is not None and stored.state == "expired" and stored.approvers == []
    assert threads(fake) == [] and len(revisions(world, "api-production")) == 1


async def _settled(bot: Tugboat, approval_id: str) -> bool:
    stored = await bot.store.get_approval(approval_id)
    return stored is not None and stored.state != "open"


def image_of(world: SandboxWorld, cluster: str, name: str) -> str:
    arn = service(world, cluster, name)["taskDefinition"]
    definition = world.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
    return str(definition["containerDefinitions"][0]["image"])


async def test_a_newer_push_closes_the_older_pushs_open_card_and_only_the_new_one_counts(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    older, newer = SandboxWorld.EXAMPLE_SHAS[1], SandboxWorld.EXAMPLE_SHAS[2]
    settings = {"github_webhook_secret": SecretStr(SECRET)}
    async with (
        running(
            fake, one_service_catalog(AUTO_DEPLOY_APPROVAL), tmp_path / "newer.db", **settings
        ) as tugboat,
        aiohttp.ClientSession() as http,
    ):
        send = sender(http, tugboat)
        assert (await send("push", push_payload(older, timestamp="2024-05-01T10:00:00Z")))[0] == 202
        first = await card_in(fake, "C0STAGING")
        older_id = approval_id_of(first)
        # Slack is slow to show edits (429s): the older card keeps its buttons a while.
        fake.fail_every_nth_call(1, methods=["chat.update"])
        assert (await send("push", push_payload(newer, timestamp="2024-05-01T11:00:00Z")))[0] == 202
        second = await card_in(fake, "C0STAGING", index=1)
        assert f"Deploy api staging `{newer}`" in second.flat and has_buttons(second)

        await wait_for(lambda: _settled(tugboat, older_id), what="the older request settled")
        fake.click("C0STAGING", first.ts, APPROVE_ACTION, user="U0DEV")  # pressed before the edit shows
        said = await ephemeral_to(fake, "U0DEV", containing="That request is superseded; nothing changed.")
        assert f"Superseded by `{newer[:7]}`" in said
        fake.clear_faults()
        closed = await card_saying(fake, first, f"Superseded by `{newer[:7]}`, a newer push")
        assert "Nothing ran." in closed.flat and not has_buttons(closed)
        assert threads(fake, "C0STAGING") == [] and world.calls()["ecs:UpdateService"] == 0

        fake.click("C0STAGING", second.ts, APPROVE_ACTION, user="U0DEV")
        deployed = await final_parent(fake, "C0STAGING", timeout=40)
        entries = await audit(tugboat)

    assert "*Succeeded*" in deployed.flat and len(threads(fake, "C0STAGING")) == 1
    assert image_of(world, "staging", "api").endswith(f":{newer}")
    superseded = [e for e in entries if e["what"] == "approval superseded"]
    assert len(superseded) == 1 and newer in superseded[0]["outcome"]
    assert any(e["what"] == "approve refused" and "superseded" in e["outcome"] for e in entries)
