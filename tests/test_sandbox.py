"""`tugboat sandbox`, fed on stdin as the README shows, prints the thread and exits 0.

The example app is a release, so a newcomer's first deploy ships `api` and `api-worker` together.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys


def sandbox(commands: str, *flags: str) -> str:
    """`tugboat sandbox FLAGS` fed `commands` on stdin, as the README shows: what it printed."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox", *flags],
        input=commands,
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_sandbox_deploy_from_stdin_ends_in_success() -> None:
    out = sandbox("/deploy api staging v2\n")
    assert "Deploy api staging: v2" in out
    assert "api: Registered task definition `api-staging:2` (from `api-staging:1`)" in out
    assert (
        "api-worker: Registered task definition `api-worker-staging:2` (from `api-worker-staging:1`)" in out
    )
    final = out.rsplit("Deploy api staging: v2", 1)[1]
    assert "✅ Succeeded · done · api ✅ 2/2 · api-worker ✅ 1/1" in final
    seconds = re.search(r"· (\d+)s\n", final)
    assert seconds is not None and int(seconds.group(1)) < 20


def test_the_canary_pauses_for_a_press_and_continue_ships_it() -> None:
    """The example's `shop` deploys by ECS canary: the thread pauses with buttons, a press goes on."""
    flags = ("--rollout-seconds", "1", "--minute-seconds", "1.5")
    out = sandbox("/as U0ADMIN\n/deploy shop production v2\n/press Continue\n", *flags)
    paused = out.index("⏸ Paused at `POST_TEST_TRAFFIC_SHIFT`: test traffic is on the new revision")
    pressed = out.index("▶ @U0ADMIN pressed `Continue`: ECS goes on.")
    canary = out.index("(production 10% · test 100%)")
    live = out.index("✅ Revision 2 is live: canary deployment SUCCESSFUL.")
    assert paused < pressed < canary < live
    assert re.search(r"\[\d+ Continue\] \[\d+ Roll back\]", out[paused:pressed])
