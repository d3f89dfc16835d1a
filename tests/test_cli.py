"""The command line as a CI job runs it: `python -m bot.cli …` in a subprocess, against the sandbox world.

No Slack here (except `check --slack`): the terminal is the thread, and the exit code is the verdict.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from bot.domain.records import Lock, OperationRecord
from bot.sandbox.fake_github import MIDDLE, FakeGitHub
from bot.sandbox.fake_slack import FakeSlack
from bot.sandbox.world import SandboxWorld
from bot.state import SqliteStore
from tests.conftest import EXAMPLE, one_service_text
from tests.slackview import revisions, service
from tests.test_stats import seeded

T = TypeVar("T")
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")


def one_service_file(tmp_path: Path) -> Path:
    """The example deploying `api` alone, as a file a CI job's TUGBOAT_CONFIG names."""
    path = tmp_path / "one-service.yml"
    path.write_text(one_service_text())
    return path


def cli_env(world: SandboxWorld, tmp_path: Path, **extra: str) -> dict[str, str]:
    """A CI job's environment: AWS credentials and the catalog (the example deploying `api`
    alone, unless TUGBOAT_CONFIG is given), a state store, no Slack tokens."""
    env = {k: v for k, v in os.environ.items() if k not in PROXIES and not k.startswith("SLACK_")}
    env.update(world.env())
    env.update(
        TUGBOAT_CONFIG=str(one_service_file(tmp_path)),
        TUGBOAT_STATE=f"sqlite:///{tmp_path / 'state.db'}",
        TUGBOAT_ACTOR="ci-bot",
        NO_COLOR="1",
    )
    env.update(extra)
    return env


def tugboat(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def in_store(tmp_path: Path, action: Callable[[SqliteStore], Awaitable[T]]) -> T:
    """Run `action(store)` against the state file the CLI uses, as another replica would."""

    async def run() -> T:
        store = SqliteStore(tmp_path / "state.db")
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def test_deploy_ships_the_image_and_exits_0(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path), "deploy", "api", "staging", "v2")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Registered task definition `api-staging:2` (from `api-staging:1`)" in done.stdout
    assert "✅ Revision 2 is live" in done.stdout
    assert "Schedule `nightly-report`: `api-staging:1` → `:2`" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("✅ Succeeded · done · rev 1 → 2 · by ci-bot")
    assert "\033[" not in done.stdout, "no colour when the output is not a terminal"
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")

    history = in_store(tmp_path, lambda store: store.history("api", "staging"))
    assert len(history) == 1
    record = history[0]
    assert (record.actor, record.trigger, record.state) == ("ci-bot", "cli", "succeeded")
    assert (record.task_definition or "").endswith("api-staging:2")


def test_a_deploy_whose_schedule_cannot_move_exits_3_naming_it(world: SandboxWorld, tmp_path: Path) -> None:
    world.client("scheduler").delete_schedule(Name="nightly-report", GroupName="staging")
    done = tugboat(cli_env(world, tmp_path), "deploy", "api", "staging", "v2")

    assert done.returncode == 3, done.stdout + done.stderr
    assert "⚠️ Succeeded with warnings: Revision 2 is live" in done.stdout
    assert "Schedule nightly-report was not moved: schedule nightly-report does not exist" in done.stdout
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:2")


def test_an_image_that_cannot_start_exits_1_naming_the_circuit_breaker(
    world: SandboxWorld, tmp_path: Path
) -> None:
    done = tugboat(cli_env(world, tmp_path), "deploy", "api", "staging", "broken")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "circuit breaker" in done.stdout
    assert "CannotStartContainerError" in done.stdout
    assert "❌ Failed:" in done.stdout and "is live" not in done.stdout
    assert service(world, "staging", "api")["taskDefinition"].endswith("api-staging:1")


def test_locks_and_running_deploys_are_respected(world: SandboxWorld, tmp_path: Path) -> None:
    env = cli_env(world, tmp_path)
    lock = Lock("api", "staging", "U0ADMIN", "database migration", created_at=0.0)
    in_store(tmp_path, lambda store: store.lock(lock))

    locked = tugboat(env, "deploy", "api", "staging", "v2")
    assert locked.returncode == 1
    assert "api staging is locked by @U0ADMIN: database migration" in locked.stderr
    assert "--force" in locked.stderr

    running = OperationRecord("deploy", "api", "staging", "U0BOB", "v3", trigger="slash command")
    in_store(tmp_path, lambda store: store.claim_target(running, 600))
    busy = tugboat(env, "deploy", "api", "staging", "v2", "--force", "the migration is stuck")
    assert busy.returncode == 1
    assert "api staging is busy: a deploy of `v3` by @U0BOB" in busy.stderr
    assert len(revisions(world, "api-staging")) == 1

    in_store(tmp_path, lambda store: store.release_target(running))
    forced = tugboat(env, "deploy", "--force", "it's INC-42", "api", "staging", "v2")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "🚨 Forced through the lock held by @U0ADMIN: database migration" in forced.stdout
    assert "Forced by" in forced.stdout and "it's INC-42" in forced.stdout


def test_usage_errors_exit_2_with_the_grammar_message(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path), "deploy", "api", "qa", "v2")

    assert done.returncode == 2
    assert "Unknown environment `qa` for api. Known environments: `production`, `staging`." in done.stderr
    assert 'usage: tugboat deploy APP ENV [REF] [--force "REASON"]' in done.stderr
    assert done.stdout == ""
    assert len(revisions(world, "api-staging")) == 1


def test_status_prints_running_and_desired(world: SandboxWorld, tmp_path: Path) -> None:
    card = tugboat(cli_env(world, tmp_path), "status", "api", "staging")
    overview = tugboat(cli_env(world, tmp_path), "status")

    assert card.returncode == 0, card.stderr
    assert "🟢 api staging — steady" in card.stdout
    assert "2/2 running · 0 pending · rev 1 · `v1`" in card.stdout
    assert overview.returncode == 0, overview.stderr
    assert "🟢 api staging · 2/2 · rev 1" in overview.stdout
    assert "🟢 api production · 2/2 · rev 1" in overview.stdout


def test_check_is_all_green_against_the_sandbox(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path), "check")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "✓ api staging: service api is ACTIVE in cluster staging" in lines
    for env in ("staging", "production"):
        for thing in ("cluster", "service", "container", "image repository", "log group"):
            assert any(line.startswith(f"✓ api {env}: {thing} ") for line in lines), (env, thing)
    assert not any("api-worker" in line for line in lines), "a one-service catalog checks one service"
    assert "✓ api production: schedule nightly-report starts api-production:1 in cluster production" in lines
    assert "✓ api production: rule hourly-cleanup starts api-production:1 in cluster production" in lines
    assert not any(line.startswith("✗") for line in lines)
    assert lines[-1] == "All green."


def test_check_names_a_missing_schedule_and_one_in_another_cluster(
    world: SandboxWorld, tmp_path: Path
) -> None:
    world.client("scheduler").delete_schedule(Name="weekly-digest", GroupName="reports")
    catalog = tmp_path / "tugboat.yml"
    catalog.write_text(
        EXAMPLE.read_text().replace(
            "          - scheduler: nightly-report\n            group: staging\n",
            "          - scheduler: nightly-report\n",
        )
    )
    done = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(catalog)), "check")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ api production: schedule weekly-digest: schedule weekly-digest does not exist" in done.stdout
    assert (
        "✗ api staging: schedule nightly-report runs tasks in cluster production, not in staging"
        in done.stdout
    )
    assert done.stdout.splitlines()[-1] == "2 problems found."


def test_check_checks_every_service_of_a_release(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(EXAMPLE)), "check")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for env in ("staging", "production"):
        assert f"✓ api {env}: service api is ACTIVE in cluster {env}" in lines
        assert f"✓ api {env}: container web is in task definition api-{env}:1" in lines
        assert f"✓ api {env}: service api-worker is ACTIVE in cluster {env}" in lines
        assert f"✓ api {env}: container worker is in task definition api-worker-{env}:1" in lines
    assert (
        "✓ shop production: service shop is ACTIVE in cluster production, deploys by CANARY,"
        " pauses at POST_TEST_TRAFFIC_SHIFT (Continue and Roll back in the thread)" in lines
    )
    assert lines[-1] == "All green."

    world.client("ecs").delete_service(cluster="production", service="api-worker", force=True)
    broken = tmp_path / "broken.yml"
    worker = "            containers: [worker]   # the same image, in the worker's own container\n"
    broken.write_text(EXAMPLE.read_text().replace(worker, "            containers: [worker, cron]\n"))
    done = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(broken)), "check")

    assert done.returncode == 1, done.stdout + done.stderr
    has = "(it has: worker, log-router)"
    assert (
        f"✗ api staging: container cron is not in task definition api-worker-staging:1 {has}" in done.stdout
    )
    assert (
        "✗ api production: service api-worker is INACTIVE, not ACTIVE, in cluster production" in done.stdout
    )
    assert "- api production: container worker not checked (needs service api-worker)" in done.stdout
    assert "✓ api production: service api is ACTIVE in cluster production" in done.stdout
    assert done.stdout.splitlines()[-1] == "2 problems found."


def test_check_names_what_is_missing(world: SandboxWorld, tmp_path: Path) -> None:
    catalog = tmp_path / "tugboat.yml"
    catalog.write_text(
        one_service_text(
            ("cluster: staging\n        service: api", "cluster: staging\n        service: nope")
        )
    )
    done = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(catalog)), "check")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "✗ api staging: service nope not found in cluster staging" in done.stdout
    assert "- api staging: container web not checked (needs service nope)" in done.stdout
    assert "✓ api production: service api is ACTIVE in cluster production" in done.stdout
    assert done.stdout.splitlines()[-1] == "1 problem found."

    catalog.write_text(one_service_text(("timeout: 300", "timout: 300")))
    bad = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(catalog)), "check")
    assert bad.returncode == 2
    assert "✗ catalog:" in bad.stdout and "timout" in bad.stdout


def test_check_slack_tries_the_tokens_and_never_prints_them(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path
) -> None:
    slack = {"SLACK_API_URL": fake.api_url, "SLACK_APP_TOKEN": fake.app_token}
    good = tugboat(cli_env(world, tmp_path, SLACK_BOT_TOKEN=fake.bot_token, **slack), "check", "--slack")
    wrong_token = "xoxb-not-the-right-one"
    bad = tugboat(cli_env(world, tmp_path, SLACK_BOT_TOKEN=wrong_token, **slack), "check", "--slack")

    assert good.returncode == 0, good.stdout + good.stderr
    assert "✓ slack: SLACK_BOT_TOKEN works" in good.stdout
    assert "✓ slack: SLACK_APP_TOKEN works" in good.stdout
    assert bad.returncode == 1
    assert "✗ slack: SLACK_BOT_TOKEN: auth.test failed: invalid_auth" in bad.stdout
    for done in (good, bad):
        for token in (fake.bot_token, fake.app_token, wrong_token):
            assert token not in done.stdout + done.stderr


def test_a_deploy_with_a_github_token_is_a_github_deployment_as_from_slack(
    world: SandboxWorld, tmp_path: Path
) -> None:
    with FakeGitHub() as github:
        env = cli_env(world, tmp_path, GITHUB_TOKEN=FakeGitHub.token, GITHUB_API_URL=github.api_url)
        done = tugboat(env, "deploy", "api", "staging", MIDDLE)
        deployments = github.deployments_of()

    assert done.returncode == 0, done.stdout + done.stderr
    (deployment,) = deployments
    assert (deployment.sha, deployment.environment) == (MIDDLE, "staging")
    assert [s["state"] for s in deployment.statuses] == ["in_progress", "success"]
    assert all(not s["log_url"] for s in deployment.statuses), "a terminal has no thread to link"
    (record,) = in_store(tmp_path, lambda store: store.history("api", "staging"))
    assert deployment.payload["tugboat_operation"] == record.id
    assert record.extra["github_deployment"] == deployment.id and record.extra["committed_at"]


def test_stats_prints_the_four_figures_and_a_usage_error_exits_2(world: SandboxWorld, tmp_path: Path) -> None:
    async def seed(store: SqliteStore) -> None:
        for record in seeded(time.time()):
            await store.save(record)

    in_store(tmp_path, seed)
    env = cli_env(world, tmp_path)
    month = tugboat(env, "stats", "api", "production")
    week = tugboat(env, "stats", "api", "production", "7")
    too_long = tugboat(env, "stats", "api", "production", "9999")
    no_env = tugboat(env, "stats", "api")

    assert month.returncode == 0, month.stdout + month.stderr
    assert month.stdout.splitlines() == [
        "DORA figures for api production, last 30 days",
        "• Deploy frequency: 4 deploys, 0.13 a day",
        "• Lead time for changes: 1h 05m (median of 3 deploys whose commit time is known)",
        "• Change failure rate: 50% (3 of 6 changes failed or were rolled back)",
        "• Time to restore: 58m (median of 3 restores)",
    ]
    assert week.returncode == 0 and "2 deploys, 0.29 a day" in week.stdout
    for refused in (too_long, no_env):
        assert refused.returncode == 2 and refused.stdout == ""
        assert "usage: tugboat stats APP ENV [DAYS]" in refused.stderr
    assert "expected 1 to 365" in too_long.stderr and "Which environment of api?" in no_env.stderr
