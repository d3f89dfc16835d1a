"""The HTTP side: two aiohttp apps, one per listener.

PORT serves what must be reachable from outside (GitHub's webhook, the health check);
METRICS_PORT serves /metrics alone, so a load balancer in front of PORT never publishes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

HealthCheck = Callable[[], Awaitable[bool]]
METRICS_MOVED = (
    "/metrics is not served on PORT: it has a listener of its own on METRICS_PORT "
    "(9090 by default), to be reached from inside the network only"
)


def build_web_app(
    healthy: HealthCheck,
    github_webhook: Callable[[web.Request], Awaitable[web.Response]] | None = None,
) -> web.Application:
    """PORT's routes only; the handlers' dependencies are passed in."""

    async def healthz(_: web.Request) -> web.Response:
        if await healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "socket disconnected"}, status=503)

    async def metrics_moved(_: web.Request) -> web.Response:
        return web.json_response({"error": METRICS_MOVED}, status=404)

    async def no_webhook(_: web.Request) -> web.Response:
        return web.json_response({"error": "webhooks are not configured"}, status=401)

    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_moved)
    app.router.add_post("/github/webhook", github_webhook or no_webhook)
    return app


def build_metrics_app() -> web.Application:
    """METRICS_PORT's one route: Prometheus text format, for a scraper inside the network."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=1024)
    app.router.add_get("/metrics", metrics)
    return app
