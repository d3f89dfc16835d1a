"""`tugboat scale` and `tugboat restart`: the on-call remedies from a terminal or a CI job."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.world import SandboxWorld
from tests.slackview import service
from tests.test_cli import cli_env, in_store, tugboat


def test_scale_and_restart_exit_0_and_land_in_history(world: SandboxWorld, tmp_path: Path) -> None:
    env = cli_env(world, tmp_path)
    scaled = tugboat(env, "scale", "api", "staging", "3")
    assert scaled.returncode == 0, scaled.stdout + scaled.stderr
    assert "✅ api runs 3/3 tasks." in scaled.stdout
    assert service(world, "staging", "api")["runningCount"] == 3

    before = service(world, "staging", "api")["deployments"][0]["id"]
    restarted = tugboat(env, "restart", "api", "staging")
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert (
        "New deployment of revision 1" in restarted.stdout and "Restarted on revision 1" in restarted.stdout
    )
    after = service(world, "staging", "api")
    assert after["deployments"][0]["id"] != before and after["taskDefinition"].endswith("api-staging:1")

    history = in_store(tmp_path, lambda store: store.history("api", "staging"))
    assert [(r.action, r.state) for r in history] == [("restart", "succeeded"), ("scale", "succeeded")]


def test_a_count_past_max_tasks_exits_2_and_changes_nothing(world: SandboxWorld, tmp_path: Path) -> None:
    done = tugboat(cli_env(world, tmp_path), "scale", "api", "staging", "51")
    assert done.returncode == 2
    assert "51 tasks is more than api staging allows" in done.stderr
    assert "usage: tugboat scale APP ENV COUNT [SERVICE]" in done.stderr
    assert world.calls()["ecs:UpdateService"] == 0
