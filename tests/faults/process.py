"""`tugboat serve` as a real child process, so tests can SIGKILL and SIGTERM it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from bot.state.dynamodb import DynamoStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BotProcess:
    """One replica of the bot, configured only through its environment, as in production."""

    def __init__(
        self,
        world: SandboxWorld,
        fake: FakeSlack,
        catalog: Path,
        state: str,
        log: Path,
        *,
        replica: str = "replica-a",
        lease_s: float = 60,
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.log = log
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        self.env.update(world.env())
        self.env.update(
            {
                "SLACK_BOT_TOKEN": fake.bot_token,
                "SLACK_APP_TOKEN": fake.app_token,
                "SLACK_API_URL": fake.api_url,
                "TUGBOAT_CONFIG": str(catalog),
                "TUGBOAT_STATE": state,
                "TUGBOAT_REPLICA_ID": replica,
                "TUGBOAT_LEASE_SECONDS": str(lease_s),
                "PORT": str(self.port),
                "METRICS_PORT": str(self.metrics_port),
                "LOG_LEVEL": "INFO",
            }
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot"], env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )
        return self

    async def up(self, fake: FakeSlack, timeout: float = 30) -> BotProcess:
        """Start, and wait until healthy with a Socket Mode connection it opened."""
        before = fake.connections_opened
        self.start()
        await wait_for(
            lambda: self.healthy() and fake.connection_count >= 1 and fake.connections_opened > before,
            timeout=timeout,
            what="the bot process to be healthy",
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def pause(self) -> None:
        """SIGSTOP: the process is frozen, as a VM pause or a long GC stall would leave it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; returns the exit code and how long the process took to exit."""
        assert self.process is not None
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(15)
        return code, time.monotonic() - began

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def launch(
    processes: list[BotProcess],
    world: SandboxWorld,
    fake: FakeSlack,
    tmp_path: Path,
    state: str,
    catalog: Path | None = None,
    **kw: object,
) -> BotProcess:
    """A bot process on the example deploying `api` alone, or `catalog` (not started yet),
    stopped at the end."""
    from tests.conftest import one_service_text

    if catalog is None:
        catalog = tmp_path / "one-service.yml"
        catalog.write_text(one_service_text())
    bot = BotProcess(world, fake, catalog, state, tmp_path / "bot.log", **kw)  # type: ignore[arg-type]
    processes.append(bot)
    return bot


async def two_replicas(
    processes: list[BotProcess],
    world: SandboxWorld,
    fake: FakeSlack,
    tmp_path: Path,
    state: str,
    lease_s: float,
) -> tuple[BotProcess, BotProcess]:
    """replica-a and replica-b on one state, both healthy with a Socket Mode connection each."""
    a = await launch(processes, world, fake, tmp_path, state, replica="replica-a", lease_s=lease_s).up(fake)
    b = launch(processes, world, fake, tmp_path, state, replica="replica-b", lease_s=lease_s).start()
    await wait_for(lambda: b.healthy() and fake.connection_count >= 2, timeout=30, what="second replica")
    return a, b


async def dynamodb_state(table: str) -> str:
    """A new DynamoDB state table (in the sandbox world), as a TUGBOAT_STATE URL."""
    store = DynamoStore(table)
    await store.create_table()
    await store.close()
    return f"dynamodb://{table}"


async def owner_of_the_deploy(table: str) -> str:
    """The replica that owns the one unfinished deploy in the state table."""
    store = DynamoStore(table)
    try:
        (running_deploy,) = [r for r in await store.unfinished() if r.action == "deploy"]
    finally:
        await store.close()
    assert running_deploy.owner is not None
    return running_deploy.owner
