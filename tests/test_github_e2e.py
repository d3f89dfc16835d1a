"""GitHub beyond webhooks, end to end against a local GitHub API that checks the token.

The real GitHubClient talks HTTP to `FakeGitHub` (served under /api/v3/, as GitHub Enterprise
Server is); the bot, Slack and ECS are the usual real parts: Socket Mode, moto, the simulator.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr, ValidationError

from bot.domain.catalog import Catalog, CatalogError
from bot.domain.code import CodeHostError
from bot.domain.records import Target
from bot.github.client import GitHubClient
from bot.runtime import Tugboat
from bot.sandbox.fake_github import MIDDLE, NEWEST, OLDER, FakeGitHub
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings
from commands.grammar import StatsRequest, UsageError, parse_slash
from tests import slackview as view
from tests.conftest import one_service_catalog, running
from tests.fixtures_github import SECRET, final_thread_about, push_payload, sender

DEV = "U0DEV"
REQUIRE_CI = ("        channel: C0STAGING\n", "        channel: C0STAGING\n        require_ci: true\n")
CONFIRM = ("        channel: C0STAGING\n", "        channel: C0STAGING\n        confirm: true\n")


@pytest.fixture(scope="session")
def shared_github() -> Iterator[FakeGitHub]:
    with FakeGitHub() as github:
        yield github


@pytest.fixture
def github(shared_github: FakeGitHub) -> FakeGitHub:
    shared_github.reset()
    return shared_github


@asynccontextmanager
async def bot_with_github(
    fake: FakeSlack, github: FakeGitHub, catalog: Catalog, state: Path
) -> AsyncIterator[Tugboat]:
    async with running(
        fake,
        catalog,
        state,
        github_token=SecretStr(FakeGitHub.token),
        github_api_url=github.api_url,
    ) as bot:
        yield bot


def states(github: FakeGitHub, environment: str) -> list[list[str]]:
    return [[s["state"] for s in d.statuses] for d in github.deployments_of(environment)]


async def metrics_text(bot: Tugboat) -> str:
    url = f"http://127.0.0.1:{bot.metrics_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        return await answer.text()


# -- Deployments ----------------------------------------------------------------------------


async def test_each_deploy_is_a_github_deployment_ending_in_success_and_replacing_the_last(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    async with bot_with_github(fake, github, one_service_catalog(), tmp_path / "gh.db"):
        first = await view.deployed(fake, f"api staging {MIDDLE}")
        await wait_for(lambda: states(github, "staging") == [["in_progress", "success"]], what="success")
        second = await view.deployed(fake, f"api staging {NEWEST[:10]}", index=1)

        def replaced() -> bool:
            found = states(github, "staging")
            return len(found) == 2 and found[0][-1] == "inactive" and found[1] == ["in_progress", "success"]

        await wait_for(replaced, what="the first deployment inactive, the second successful")

    assert "*Succeeded*" in first.flat and "*Succeeded*" in second.flat
    one, two = github.deployments_of("staging")
    assert (one.sha, two.sha) == (MIDDLE, NEWEST)
    assert one.payload["thread"].startswith("https://") and "archives/C0STAGING/p" in one.payload["thread"]
    assert [s["log_url"] for s in one.statuses[:2]] == [one.payload["thread"]] * 2
    assert two.statuses[-1]["log_url"] == two.payload["thread"] != one.payload["thread"]
    ours = [s for s in one.statuses if s["state"] == "inactive" and s["description"] != "auto"]
    assert ours and ours[0]["description"].startswith("Replaced by the deploy of")
    assert all(call[2] < 400 for call in github.requests)


async def test_a_failed_deploy_ends_its_deployment_in_failure(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    world.mark_unstartable(lambda tag: tag == NEWEST)
    async with bot_with_github(fake, github, one_service_catalog(), tmp_path / "gh.db"):
        parent = await view.deployed(fake, f"api staging {NEWEST}", timeout=40)
        await wait_for(lambda: states(github, "staging") == [["in_progress", "failure"]], what="failure")

    assert "*Failed*" in parent.flat
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")
    assert github.deployments_of("staging")[0].statuses[-1]["log_url"].startswith("https://")


async def test_a_rollback_is_a_deployment_of_the_commit_it_goes_back_to(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    async with bot_with_github(fake, github, one_service_catalog(), tmp_path / "gh.db"):
        await view.deployed(fake, f"api staging {OLDER}")
        await view.deployed(fake, f"api staging {MIDDLE}", index=1)
        fake.slash_command("/rollback", "api staging", user=DEV)
        back = await view.final_parent(fake, "C0STAGING", index=2)
        await wait_for(
            lambda: len(states(github, "staging")) == 3 and states(github, "staging")[2][-1] == "success",
            what="the rollback's deployment",
        )

    assert "*Succeeded*" in back.flat and "Rollback" in back.flat
    assert [d.sha for d in github.deployments_of("staging")] == [OLDER, MIDDLE, OLDER]
    assert states(github, "staging")[1][-1] == "inactive"


async def test_github_answering_500_never_fails_a_deploy_and_the_thread_says_so_once(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    github.fail_with(500)
    async with bot_with_github(fake, github, one_service_catalog(), tmp_path / "gh.db") as bot:
        parent = await view.deployed(fake, f"api staging {MIDDLE}")
        replies = await view.thread_text(fake, parent, must_contain="GitHub answered HTTP 500")
        counted = await metrics_text(bot)

    assert "*Succeeded*" in parent.flat
    assert view.service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")
    assert replies.count("GitHub answered HTTP 500") == 1
    assert "is not affected" in replies
    assert 'tugboat_github_errors_total{call="commit",reason="500"}' in counted
    assert github.deployments_of() == []


# -- commits on the card ----------------------------------------------------------------------


async def test_the_confirmation_card_lists_the_commits_it_ships(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    state = tmp_path / "gh.db"
    async with bot_with_github(fake, github, one_service_catalog(), state):
        await view.deployed(fake, f"api staging {MIDDLE}")
    async with bot_with_github(fake, github, one_service_catalog(CONFIRM), state):
        fake.slash_command("/deploy", f"api staging {NEWEST}", user=DEV, channel="C0DEPLOY")
        card = await view.confirmation_in(fake, "C0DEPLOY")

    lines = card.flat.splitlines()
    listed = [line for line in lines if line.startswith("• `")]
    assert "*12 commits:*" in card.flat
    assert len(listed) == 10
    assert listed[0].startswith(f"• `{github.commits[2].sha[:7]}` Tidy the checkout step 1 — ")
    assert "_…and 2 more_" in card.flat
    assert "Escape &lt;b&gt;tags&lt;/b&gt; &amp; &lt;!channel&gt; in receipts" in card.flat
    assert "<!channel>" not in card.flat
    assert len(view.revisions(world, "api-staging")) == 2  # the card changed nothing


# -- the CI gate ----------------------------------------------------------------------------


async def test_require_ci_refuses_a_red_commit_naming_the_failing_checks_and_force_passes_it(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    github.set_check(MIDDLE, "test", "failure")
    github.set_check(MIDDLE, "e2e", None)
    github.set_status(MIDDLE, "ci/lint", "error")
    async with bot_with_github(fake, github, one_service_catalog(REQUIRE_CI), tmp_path / "gh.db"):
        refusal = await view.answer_to(fake, "/deploy", f"api staging {MIDDLE}", containing="CI is not green")
        assert view.parents(fake, "C0STAGING") == []
        assert len(view.revisions(world, "api-staging")) == 1

        forced = await view.deployed(fake, f'api staging {MIDDLE} --force "INC-7: the e2e runner is down"')
        replies = await view.thread_text(fake, forced, must_contain="Forced past red CI")

    assert (
        "`test` (failure)" in refusal and "`e2e` (in_progress)" in refusal and "`ci/lint` (error)" in refusal
    )
    assert "`build`" not in refusal
    assert "--force" in refusal
    assert "*Succeeded*" in forced.flat
    assert "`test` (failure)" in replies


async def test_require_ci_ships_a_green_commit_even_with_no_statuses_at_all(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    async with bot_with_github(fake, github, one_service_catalog(REQUIRE_CI), tmp_path / "gh.db"):
        parent = await view.deployed(fake, f"api staging {NEWEST}")
        replies = await view.thread_text(fake, parent, must_contain="is live")

    assert "*Succeeded*" in parent.flat
    assert "CI" not in replies
    assert github.calls(f"/commits/{NEWEST}/status")  # asked: a combined `pending` with none is not red


async def test_require_ci_refuses_a_tag_github_knows_no_commit_for(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    async with bot_with_github(fake, github, one_service_catalog(REQUIRE_CI), tmp_path / "gh.db"):
        refusal = await view.answer_to(fake, "/deploy", "api staging v2", containing="Not deploying")

    assert "GitHub knows no commit `v2` in acme/api" in refusal
    assert len(view.revisions(world, "api-staging")) == 1


async def test_a_hanging_github_holds_a_gated_deploy_up_for_about_a_second_at_most(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    github.stall(10)
    async with bot_with_github(fake, github, one_service_catalog(REQUIRE_CI), tmp_path / "gh.db"):
        asked = time.monotonic()
        fake.slash_command("/deploy", f"api staging {MIDDLE}", user=DEV)
        await view.ephemeral_to(fake, DEV, containing="Deploying api staging")
        answered = time.monotonic() - asked
        parent = await view.final_parent(fake, "C0STAGING")
        replies = await view.thread_text(fake, parent, must_contain="CI not checked")
        github.stall(0)

    assert answered < 3.0, f"the deploy waited {answered:.1f} s for GitHub"
    assert "*Succeeded*" in parent.flat
    assert "did not answer (timeout)" in replies


# -- the client against GitHub's manners ------------------------------------------------------


async def test_the_client_keeps_the_enterprise_path_and_github_checks_token_and_user_agent(
    github: FakeGitHub,
) -> None:
    client = GitHubClient(SecretStr(FakeGitHub.token), github.api_url.rstrip("/"))
    wrong = GitHubClient(SecretStr("ghp_wrong"), github.api_url)
    try:
        assert client.url("/repos/acme/api") == github.api_url + "repos/acme/api"
        resolved = await client.resolve("acme/api", MIDDLE[:7])
        compared = await client.compare("acme/api", OLDER, MIDDLE)
        with pytest.raises(CodeHostError) as refused:
            await wrong.resolve("acme/api", MIDDLE)
    finally:
        await client.close()
        await wrong.close()
    async with aiohttp.ClientSession(skip_auto_headers=("User-Agent",)) as session:
        headers: dict[str, Any] = {"Authorization": f"Bearer {FakeGitHub.token}"}
        async with session.get(
            github.api_url + f"repos/acme/api/commits/{MIDDLE}", headers=headers
        ) as answer:
            anonymous = answer.status

    assert resolved.sha == MIDDLE and resolved.committed_at is not None
    assert (compared.total, [c.title for c in compared.commits]) == (1, ["Cache product lookups"])
    assert refused.value.status == 401
    assert anonymous == 403
    assert all(path.startswith("/api/v3/") for _, path, _ in github.requests)


async def test_an_auto_deploy_is_a_github_deployment_too(
    world: SandboxWorld, fake: FakeSlack, github: FakeGitHub, tmp_path: Path
) -> None:
    async with (
        running(
            fake,
            one_service_catalog(),
            tmp_path / "gh.db",
            github_webhook_secret=SecretStr(SECRET),
            github_token=SecretStr(FakeGitHub.token),
            github_api_url=github.api_url,
        ) as bot,
        aiohttp.ClientSession() as http,
    ):
        status, _ = await sender(http, bot)("push", push_payload(NEWEST))
        parent = await final_thread_about(fake, NEWEST)
        await wait_for(lambda: states(github, "staging") == [["in_progress", "success"]], what="success")

    assert status == 202 and "*Succeeded*" in parent.flat
    (deployment,) = github.deployments_of("staging")
    assert deployment.sha == NEWEST and "archives/C0STAGING/p" in deployment.payload["thread"]


# -- settings and catalog ---------------------------------------------------------------------


def test_github_settings_keep_the_enterprise_path_and_never_show_the_token() -> None:
    settings = Settings(
        github_token=SecretStr("ghp_verysecret123456"), github_api_url="https://ghe.example.com/api/v3"
    )
    blank = Settings(github_token=SecretStr("  "))

    assert settings.github_api_url == "https://ghe.example.com/api/v3/"
    assert "ghp_verysecret" not in repr(settings) and "ghp_verysecret" not in str(settings.model_dump())
    assert blank.github_token is None and blank.github_api_url == "https://api.github.com/"
    with pytest.raises(ValidationError, match="https://HOST/api/v3/"):
        Settings(github_api_url="ghe.example.com/api/v3")


def test_require_ci_needs_the_apps_repository() -> None:
    with pytest.raises(CatalogError, match=r"environments.staging.require_ci: needs the app's `repository`"):
        one_service_catalog(("    repository: acme/api\n", ""), REQUIRE_CI)


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("stats api production", StatsRequest(Target("api", "production"), 30)),
        ("stats api staging 7", StatsRequest(Target("api", "staging"), 7)),
    ],
)
def test_stats_grammar(words: str, expected: StatsRequest) -> None:
    assert parse_slash("/tugboat", words, one_service_catalog()) == expected


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        ("stats api production 0", "expected 1 to 365"),
        ("stats api production 2w", "is not a number of days"),
        ("stats api production 7 8", "Too many words"),
        ("stats api", "Which environment of api?"),
    ],
)
def test_stats_grammar_refuses_what_it_cannot_read(words: str, problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        parse_slash("/tugboat", words, one_service_catalog())
