"""The HTTP side: /healthz, /metrics and the GitHub webhook, on one aiohttp server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

HealthCheck = Callable[[], Awaitable[bool]]


def build_web_app(
    healthy: HealthCheck,
    github_webhook: Callable[[web.Request], Awaitable[web.Response]] | None = None,
) -> web.Application:
    """Routes only; the handlers' dependencies are passed in."""

    async def healthz(_: web.Request) -> web.Response:
        if await healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "socket disconnected"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def no_webhook(_: web.Request) -> web.Response:
        return web.json_response({"error": "webhooks are not configured"}, status=401)

    app = web.Application(client_max_size=10 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/github/webhook", github_webhook or no_webhook)
    return app
