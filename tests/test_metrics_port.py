"""/metrics has its own listener (METRICS_PORT): the port a load balancer publishes does not serve it.

PORT carries what GitHub and ECS need (/github/webhook, /healthz); METRICS_PORT only /metrics,
for a scraper inside the network.
"""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.runtime import Tugboat


async def get(port: int | None, path: str) -> tuple[int, str, str]:
    assert port, "the listener has a port"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def test_metrics_port_serves_prometheus_text(bot: Tugboat) -> None:
    status, content_type, text = await get(bot.metrics_port, "/metrics")

    assert status == 200, text
    assert content_type.startswith("text/plain"), content_type
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "tugboat_socket_connected" in names
    assert "tugboat_operations" in names  # a counter's family name, without `_total`


async def test_main_port_no_longer_serves_metrics_and_names_metrics_port(bot: Tugboat) -> None:
    status, content_type, text = await get(bot.port, "/metrics")

    assert status == 404, text
    assert content_type.startswith("application/json"), content_type
    assert "METRICS_PORT" in text
    assert "tugboat_" not in text, "no metric leaks through the public port"
    health, _, _ = await get(bot.port, "/healthz")
    assert health == 200, "PORT still answers the health check"


async def test_metrics_port_serves_nothing_else(bot: Tugboat) -> None:
    assert bot.metrics_port != bot.port
    for path in ("/healthz", "/github/webhook", "/"):
        status, _, _ = await get(bot.metrics_port, path)
        assert status == 404, path
