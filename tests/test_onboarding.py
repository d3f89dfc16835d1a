"""A new user's first hour: the sandbox shows everything, and `init`/`check` start from what runs.

Every test drives the installed `tugboat` command as a user would, or the real bot through
the fake Slack.
"""

from __future__ import annotations

from pathlib import Path

from bot.domain.catalog import load_catalog
from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.slackview import deployed, final_parent, parents
from tests.test_cli import cli_env, tugboat
from tests.test_readme_capture import replay

SCRIPT = """\
/deploy api staging v2
/depoly api staging v3
/deploy api production v2
/as U0ADMIN
/deploy api production v2
/press Deploy
"""


def sandbox(tmp_path: Path, script: str) -> str:
    path = tmp_path / "scenario.sandbox"
    path.write_text(script)
    return replay(path, 1)


def test_the_sandbox_lets_you_be_someone_else_and_press_buttons(tmp_path: Path) -> None:
    out = sandbox(tmp_path, SCRIPT)

    staging = out.split("$ /depoly")[0]
    assert "✅ Succeeded · done · api ✅ 2/2 · api-worker ✅ 1/1 · by @U0DEV" in staging, (
        "one command at a time"
    )
    assert "(only you, from Slackbot) /depoly is not a valid command." in out
    assert "Bolt" not in out and "Unhandled" not in out
    assert "You may not act on api production" in out
    assert "You are now <@U0ADMIN>." in out
    prod = out.split("$ /press Deploy")[1]
    assert "confirmed by @U0ADMIN" in prod
    assert "• `api-worker`: rev 1 → new revision, only `worker` changes" in out, "the card shows the release"
    assert "│ Deploy api production: v2    │ Started task `migrate` from revision 2" in prod
    assert "✅ Succeeded · done · api ✅ 2/2 · api-worker ✅ 1/1 · by @U0ADMIN" in prod
    assert out.count("$ /deploy api staging v2") == 1, "each command is echoed once"
    assert "[1 Cancel]" in out, "buttons are numbered"


def test_init_writes_a_catalog_that_check_passes_in_the_sandbox(world: SandboxWorld, tmp_path: Path) -> None:
    written = tmp_path / "tugboat.yml"
    made = tugboat(
        cli_env(world, tmp_path),
        "init",
        "--cluster",
        "staging",
        "--cluster",
        "production",
        "--output",
        str(written),
    )
    assert made.returncode == 0, made.stdout + made.stderr
    catalog = load_catalog(written)
    api, production = catalog.target("api", "production")
    assert (api.container, production.cluster, production.service) == ("web", "production", "api")
    assert api.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"
    assert "# logs: /ecs/api-production" in written.read_text()

    again = tugboat(cli_env(world, tmp_path), "init", "--cluster", "staging", "--output", str(written))
    assert again.returncode == 2 and "exists; pass --force" in again.stdout

    checked = tugboat(cli_env(world, tmp_path, TUGBOAT_CONFIG=str(written)), "check", "--sandbox")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "All green."
    assert "✓ api staging: service api is ACTIVE in cluster staging" in checked.stdout


def test_init_names_an_empty_cluster(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path), "init", "--cluster", "nowhere", "--output", "-")
    assert done.returncode == 1
    assert "nowhere" in done.stdout


async def test_status_last_is_the_last_change_not_a_task(bot: Tugboat, fake: FakeSlack) -> None:
    await deployed(fake)
    fake.slash_command("/run-task", "api staging migrate", user="U0DEV")
    await final_parent(fake, "C0STAGING", index=1)

    fake.slash_command("/ecs-status", "api staging", user="U0DEV", channel="C0DEV")
    card = await wait_for(lambda: next(iter(parents(fake, "C0DEV")), None), what="status card")
    last = next(line for line in card.flat.splitlines() if line.startswith("Last:"))
    assert "deploy `v2`" in last and "run-task" not in last
