"""`tugboat sandbox`, fed on stdin as the README shows, prints the thread and exits 0.

The example app is a release, so a newcomer's first deploy ships `api` and `api-worker` together.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_sandbox_deploy_from_stdin_ends_in_success() -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "sandbox"],
        input="/deploy api staging v2\n",
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Deploy api staging: v2" in out
    assert "api: Registered task definition `api-staging:2` (from `api-staging:1`)" in out
    assert (
        "api-worker: Registered task definition `api-worker-staging:2` (from `api-worker-staging:1`)" in out
    )
    final = out.rsplit("Deploy api staging: v2", 1)[1]
    assert "✅ Succeeded · done · api ✅ 2/2 · api-worker ✅ 1/1" in final
    seconds = re.search(r"· (\d+)s\n", final)
    assert seconds is not None and int(seconds.group(1)) < 20
