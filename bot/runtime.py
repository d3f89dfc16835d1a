"""Tugboat: the running bot, assembled from its parts: Socket Mode, HTTP, watcher, lifecycle.

`start()` and `stop()` are the only lifecycle; `tugboat serve`, the sandbox and the tests all
use them, so what is tested is what runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot import metrics
from bot.aws.ecs import EcsGateway
from bot.aws.ecs_events import EcsEventQueue, FeedHealth, queue_region
from bot.aws.ecs_limits import ECS_LIMITS, EcsLimits
from bot.aws.schedules import EventBridgeSchedules
from bot.aws.watched_ecs import WatchedEcs
from bot.aws.watcher import PollTiming, RolloutWatcher
from bot.domain.catalog import Catalog
from bot.dora import export_forever
from bot.github.autodeploy import AutoDeployer
from bot.github.client import GitHubClient
from bot.github.deployments import GitHubDeployments
from bot.github.webhook import webhook_handler
from bot.lifecycle import Lifecycle, TaskTracker
from bot.operations import Operations
from bot.permissions import Permissions
from bot.resume import resume_unfinished
from bot.settings import Settings, SettingsError
from bot.slack.api import slack_clients
from bot.slack.app import build_app
from bot.slack.dispatch import Dispatcher
from bot.slack.front import SlackFront
from bot.slack.groups import GroupDirectory
from bot.state import StateStore, store_from_url
from bot.web import build_metrics_app, build_web_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tuning:
    """Timings a test or benchmark may shorten; production uses the defaults."""

    poll: PollTiming = field(default_factory=PollTiming)
    thread_interval_s: float = 3.0
    lease_s: float = 60.0
    ping_interval_s: float = 5.0
    watchdog_after_s: float = 30.0
    events_wait_s: int = 5  # long poll on TUGBOAT_EVENTS_QUEUE; a stopping process may wait one out
    ecs_calls_per_s: float = 0.0  # TUGBOAT_ECS_CALLS_PER_SECOND: an overall ceiling (0: none)
    ecs_limits: EcsLimits | None = ECS_LIMITS  # paced at TUGBOAT_AWS_SHARE of each; None: unpaced
    github_timeout_s: float = 1.0  # each GitHub call; GitHub never holds a deploy up for longer
    dora_interval_s: float = 300.0  # how often the DORA gauges on /metrics are recomputed
    http_host: str = "0.0.0.0"  # noqa: S104 - a container must listen beyond loopback


class Tugboat:
    """One bot process. Dependencies may be passed in; otherwise they come from settings."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        tuning: Tuning | None = None,
        store: StateStore | None = None,
        ecs: EcsGateway | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.tuning = tuning or Tuning()
        self.store = store or store_from_url(settings.tugboat_state)
        self.ecs = ecs or WatchedEcs(
            ecs_calls_per_s=self.tuning.ecs_calls_per_s,
            limits=self.tuning.ecs_limits,
            share=settings.tugboat_aws_share,
        )
        self.tracker = TaskTracker()
        self.events, self.watcher = self._watchers(settings.tugboat_events_queue, catalog.region)
        self.handler: AsyncSocketModeHandler | None = None
        self.port: int | None = None
        self.metrics_port: int | None = None
        self._web_runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self._started = False
        self._stopped = False
        self._background: list[asyncio.Task[None]] = []
        bot_token, self._app_token = settings.require_slack()
        # Bolt's client retries in slack_sdk, SlackApi's in SlackApi: one layer per HTTP call.
        self.client, self.slack = slack_clients(bot_token, settings.slack_api_url)
        self.github = self._github(settings)
        deployments = self.github and GitHubDeployments(
            self.github, catalog, self.ecs, self.store, self.tracker
        )
        self.lifecycle = Lifecycle(
            store=self.store,
            owner=settings.tugboat_replica_id or os.environ.get("TUGBOAT_REPLICA_ID") or socket.gethostname(),
            lease_s=self.tuning.lease_s,
            tracker=self.tracker,
            observe=deployments.observe if deployments else None,
        )
        self.operations = Operations(
            catalog=catalog,
            ecs=self.ecs,
            watcher=self.watcher,
            schedules=EventBridgeSchedules(self.ecs),
            lifecycle=self.lifecycle,
            authorizer=Permissions(catalog, GroupDirectory(self.slack)),
            code=self.github,
        )
        self.front = SlackFront(self.slack, thread_interval_s=self.tuning.thread_interval_s)
        self.deployer = AutoDeployer(self.operations, self.front)
        self.dispatcher = Dispatcher(
            operations=self.operations,
            front=self.front,
            slack=self.slack,
            store=self.store,
            catalog=catalog,
            ecs=self.ecs,
            tracker=self.tracker,
        )
        self.app = build_app(self.client, self.dispatcher)

    def _github(self, settings: Settings) -> GitHubClient | None:
        """GitHub's REST API with GITHUB_TOKEN (Deployments, commits on cards, the CI gate)."""
        if settings.github_token is None:
            return None
        token, url = settings.github_token, settings.github_api_url
        return GitHubClient(token, url, timeout_s=self.tuning.github_timeout_s)

    def _watchers(self, queue: str | None, region: str) -> tuple[EcsEventQueue | None, RolloutWatcher]:
        """The shared watcher, and the consumer of ECS events that wakes it when a queue is set."""
        wait_s = self.tuning.events_wait_s
        feed = FeedHealth(stale_after_s=2.0 * wait_s + 5.0) if queue else None
        watcher = RolloutWatcher(self.ecs, self.tuning.poll, feed=feed)
        if isinstance(self.ecs, WatchedEcs):
            self.ecs.watched_by(watcher)
        if queue is None or feed is None:
            return None, watcher
        events = EcsEventQueue(self.ecs, queue, queue_region(queue, region), watcher, feed, wait_s=wait_s)
        return events, watcher

    async def start(self) -> None:
        began = time.monotonic()
        # Both tokens before anything opens: one Slack rejects raises TokenRejected (exit 2 in serve).
        await self.slack.learn_team_url()
        await self.slack.check_app_token(self._app_token)
        await self.store.open()
        self.watcher.start()
        if self.events is not None:
            self.events.start()
        await self._start_http()
        await self._connect()
        self._started = True
        await resume_unfinished(self.operations, self.front)
        await self.operations.approvals.rearm(functools.partial(self.operations.show_expired, self.front))
        self._background = [
            asyncio.create_task(self._watchdog(), name="socket-watchdog"),
            asyncio.create_task(self._take_over(), name="lease-takeover"),
            asyncio.create_task(
                export_forever(self.store, self.catalog, self.tuning.dora_interval_s), name="dora-gauges"
            ),
        ]
        log.info(
            "tugboat started",
            extra={
                "port": self.port,
                "metrics_port": self.metrics_port,
                "seconds": round(time.monotonic() - began, 3),
            },
        )

    async def _start_http(self) -> None:
        hook = webhook_handler(
            self.settings,
            catalog=self.catalog,
            deliveries=self.store,
            deployer=self.deployer,
            accepting=lambda: self.operations.accepting,
        )
        self._web_runner, self.port = await self._listen(
            build_web_app(self.healthy, hook), "PORT", self.settings.port
        )
        # /metrics on a listener of its own, so publishing PORT (webhooks) never publishes it.
        self._metrics_runner, self.metrics_port = await self._listen(
            build_metrics_app(), "METRICS_PORT", self.settings.metrics_port
        )

    async def _listen(self, app: web.Application, setting: str, port: int) -> tuple[web.AppRunner, int]:
        """Serve `app` on `port` (0: any free one); the runner and the port it got."""
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.tuning.http_host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise SettingsError(
                f"{setting}: cannot listen on port {port} ({exc.strerror}); choose a free port"
            ) from None
        sockets = getattr(site._server, "sockets", None) or []
        return runner, (sockets[0].getsockname()[1] if sockets else port)

    async def _connect(self) -> None:
        self.handler = AsyncSocketModeHandler(
            self.app, self._app_token, ping_interval=self.tuning.ping_interval_s
        )
        await self.handler.connect_async()  # type: ignore[no-untyped-call]

    async def _watchdog(self) -> None:
        """Rebuild the Socket Mode handler when it stays disconnected (slack-sdk #1110, #1913)."""
        down_since: float | None = None
        while True:
            await asyncio.sleep(min(5.0, self.tuning.watchdog_after_s / 3))
            if await self.healthy():
                down_since = None
                continue
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since < self.tuning.watchdog_after_s:
                continue
            log.warning("socket mode stayed disconnected; rebuilding the handler")
            old = self.handler
            with contextlib.suppress(Exception):
                if old is not None:
                    await asyncio.wait_for(old.close_async(), 5)  # type: ignore[no-untyped-call]
            try:
                await self._connect()
            except Exception:
                metrics.BACKGROUND_FAILURES.labels(what="reconnect").inc()
                log.exception("rebuilding the Socket Mode handler failed; trying again")
            down_since = None

    async def _take_over(self) -> None:
        """Adopt operations whose replica died (their lease ran out) and finish their threads."""
        while True:
            await asyncio.sleep(self.tuning.lease_s / 3)
            try:
                await resume_unfinished(self.operations, self.front)
                await self.operations.approvals.rearm(
                    functools.partial(self.operations.show_expired, self.front)
                )  # a dead replica's cards
            except Exception:
                metrics.BACKGROUND_FAILURES.labels(what="takeover").inc()
                log.exception("takeover pass failed; trying again next round")

    async def healthy(self) -> bool:
        """True only while the Socket Mode connection is really up."""
        connected = False
        if self.handler is not None and self._started:
            connected = bool(await self.handler.client.is_connected())
        metrics.SOCKET_CONNECTED.set(1 if connected else 0)
        return connected

    async def idle(self) -> None:
        """Wait until every operation and reply has finished (the sandbox's EOF)."""
        await self.tracker.idle()

    async def idle_or_waiting_on_people(self, poll_s: float = 0.1) -> None:
        """Like `idle`, but also done when what still runs waits for someone: a deploy paused at
        its gate goes on only when someone presses (the sandbox's scripts press next)."""
        idle = asyncio.create_task(self.idle())
        try:
            while not idle.done() and not self.operations.lifecycle.waiting_on_people():
                await asyncio.wait({idle}, timeout=poll_s)
        finally:
            idle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await idle

    async def stop(self, timeout: float = 8.0) -> None:
        """Stop taking work, interrupt what runs (it stays recorded), close everything."""
        if self._stopped:
            return
        self._stopped = True
        self.operations.accepting = False
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.operations.stop(timeout=timeout / 2)
        if self.events is not None:
            await self.events.stop()
        await self.watcher.stop()
        if self.handler is not None:
            with contextlib.suppress(Exception):
                closing = self.handler.close_async()  # type: ignore[no-untyped-call]
                await asyncio.wait_for(closing, timeout / 4)
        for runner in (self._web_runner, self._metrics_runner):
            if runner is not None:
                await runner.cleanup()
        await self.store.close()
        if self.github is not None:
            await self.github.close()
        self.ecs.close()
        self._started = False
