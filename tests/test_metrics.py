"""/metrics as Prometheus scrapes it: a deploy through Slack moves the counters it should.

Counters are process-global, so every assertion compares a scrape before with one after.
"""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.runtime import Tugboat
from bot.sandbox.fake_slack import FakeSlack, wait_for
from bot.sandbox.world import SandboxWorld
from tests.slackview import final_parent


async def get(port: int | None, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


async def scrape(bot: Tugboat) -> str:
    """/metrics as Prometheus reaches it: on METRICS_PORT, never on PORT."""
    status, text = await get(bot.metrics_port, "/metrics")
    assert status == 200
    return text


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels` (0 when none exist yet)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


DEPLOYS = (
    "tugboat_operations_total",
    {"action": "deploy", "app": "api", "env": "staging", "result": "succeeded"},
)


async def test_a_deploy_moves_the_counters(bot: Tugboat, fake: FakeSlack, world: SandboxWorld) -> None:
    before = await scrape(bot)

    fake.slash_command("/deploy", "api staging v2", user="U0DEV")
    parent = await final_parent(fake, "C0STAGING")
    assert "*Succeeded*" in parent.flat

    name, labels = DEPLOYS
    wanted = value(before, name, **labels) + 1

    async def counted() -> bool:
        return value(await scrape(bot), name, **labels) == wanted

    await wait_for(counted, timeout=10, what="the deploy in tugboat_operations_total")
    after = await scrape(bot)

    def moved(metric: str, **where: str) -> float:
        return value(after, metric, **where) - value(before, metric, **where)

    assert moved("tugboat_aws_calls_total", operation="update_service", code="OK") >= 1
    assert moved("tugboat_slack_calls_total", method="chat.postMessage", status="ok") >= 1
    assert moved("tugboat_operation_duration_seconds_count", action="deploy") == 1

    status, _ = await get(bot.port, "/healthz")
    assert status == 200
    assert value(await scrape(bot), "tugboat_socket_connected") == 1
