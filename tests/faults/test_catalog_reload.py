"""The catalog lives outside the image: SIGHUP reads it again; SSM and S3 hold it as well."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.conftest import EXAMPLE
from tests.faults.process import BotProcess, launch
from tests.test_cli import cli_env

WEB = """  web:
    container: web
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api
    environments:
      staging: {cluster: staging, service: api, channel: C0STAGING}
"""


async def answer(fake: FakeSlack, text: str, containing: str) -> str:
    before = len(fake.ephemerals(user="U0DEV")) + len(fake.channel_messages("C0DEV"))
    fake.slash_command("/ecs-status", text, user="U0DEV", channel="C0DEV")

    def said() -> str | None:
        seen = [m.flat for m in [*fake.ephemerals(user="U0DEV"), *fake.channel_messages("C0DEV")]]
        fresh = seen[before:] if len(seen) > before else []
        return next((m for m in fresh if containing in m), None)

    return str(await wait_for(said, timeout=20, what=f"an answer with {containing!r}"))


async def test_sighup_applies_a_changed_catalog_and_keeps_the_old_one_when_the_new_is_bad(
    world: SandboxWorld, fake: FakeSlack, tmp_path: Path, processes: list[BotProcess]
) -> None:
    catalog = tmp_path / "tugboat.yml"
    catalog.write_text(EXAMPLE.read_text())
    state = f"sqlite:///{tmp_path / 'state.db'}"
    bot = await launch(processes, world, fake, tmp_path, state, catalog).up(fake)
    assert "Unknown app `web`" in await answer(fake, "web staging", "Unknown app")

    catalog.write_text(EXAMPLE.read_text().replace("apps:\n", "apps:\n" + WEB, 1))
    opened = fake.connections_opened
    assert bot.process is not None
    bot.process.send_signal(signal.SIGHUP)
    await wait_for(lambda: fake.connections_opened > opened and bot.healthy(), timeout=30, what="restart")
    assert "web staging" in await answer(fake, "web staging", "web staging")
    assert bot.process.poll() is None, "the same process, started again in place"

    catalog.write_text("apps: [this is not a catalog")
    bot.process.send_signal(signal.SIGHUP)
    log = tmp_path / "bot.log"
    await wait_for(lambda: "catalog reload refused" in log.read_text(), timeout=20, what="the refusal")
    assert "web staging" in await answer(fake, "web staging", "web staging")
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    refused = next(e for e in entries if e["message"].startswith("catalog reload refused"))
    assert "not valid YAML" in refused["reason"]


def test_the_catalog_can_come_from_ssm_or_s3(world: SandboxWorld, tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    world.client("ssm").put_parameter(Name="/tugboat/catalog", Value=text, Type="String")
    world.client("s3").create_bucket(Bucket="acme-config")
    world.client("s3").put_object(Bucket="acme-config", Key="tugboat.yml", Body=text.encode())

    for source in ("ssm:///tugboat/catalog", "s3://acme-config/tugboat.yml"):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "status", "api", "staging"],
            env=cli_env(world, tmp_path, TUGBOAT_CONFIG=source),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "api staging — steady" in done.stdout

    missing = subprocess.run(
        [sys.executable, "-m", "bot.cli", "status"],
        env=cli_env(world, tmp_path, TUGBOAT_CONFIG="ssm:///tugboat/nothing"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 2
    assert "ssm:///tugboat/nothing: cannot read the catalog: ParameterNotFound" in missing.stderr
