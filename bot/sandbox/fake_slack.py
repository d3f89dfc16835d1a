"""A local fake Slack that the real slack_sdk / slack_bolt clients talk to.

It serves the Web API (HTTP), Socket Mode (websocket) and response_url endpoints from an
aiohttp server on 127.0.0.1, in its own thread and event loop, so tests and the
``tugboat sandbox`` demo can drive the bot like a user and see what a user would see.
It imitates what the bot can notice: Slack-shaped answers, rate limits (HTTP 429 with
Retry-After), Block Kit limits, ephemeral vs channel messages, threads and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import itertools
import json
import logging
import secrets
import string
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, TypeVar, overload

from aiohttp import WSCloseCode, WSMsgType, web

from bot.sandbox.blockkit import (
    INVALID_BLOCKS,
    MSG_BLOCKS_TOO_LONG,
    MSG_TOO_LONG,
    Problem,
    find_message_problems,
    find_view_problems,
    flatten,
)

logger = logging.getLogger(__name__)

JSON = dict[str, Any]
T = TypeVar("T")

TEAM_ID: Final = "T0TUGBOAT"
TEAM_NAME: Final = "Tugboat Sandbox"
APP_ID: Final = "A0TUGBOAT"
BOT_ID: Final = "B0TUGBOAT"
BOT_NAME: Final = "tugboat"
SLACKBOT_USER_ID: Final = "USLACKBOT"
VERIFICATION_TOKEN: Final = "fake-verification-token"  # noqa: S105 - public, fake
DEFAULT_USER: Final = "U0DEV"
DEFAULT_CHANNEL: Final = "C0DEV"

RESPONSE_URL_MAX_POSTS: Final = 5
RESPONSE_URL_TTL_S: Final = 30 * 60
TRIGGER_TTL_S: Final = 3.0
ACK_TIMEOUT_S: Final = 3.0
REFRESH_GRACE_S: Final = 10.0
_ERROR_PRIORITY: Final = (MSG_TOO_LONG, INVALID_BLOCKS, MSG_BLOCKS_TOO_LONG)

ChangeKind = Literal["posted", "updated", "deleted", "reacted", "ephemeral", "view"]


class NoSocketConnected(RuntimeError):
    """Raised when an envelope should go to the app but no Socket Mode client is connected."""


@dataclass(frozen=True)
class ApiCall:
    """One Web API (or response_url) request as the fake saw it; `at` is time.monotonic()."""

    method: str
    params: JSON
    status: int
    at: float
    error: str | None = None


@dataclass(frozen=True)
class Ack:
    """The app's acknowledgement of one envelope; Slack wants it within 3 seconds."""

    envelope_id: str
    sent_at: float
    acked_at: float
    latency_s: float
    payload: JSON | None


@dataclass(frozen=True)
class Revision:
    """A previous version of an edited message; `replaced_at` is the edit's ts."""

    text: str
    blocks: list[JSON] | None
    attachments: list[JSON] | None
    replaced_at: str

    @property
    def flat(self) -> str:
        return flatten(self.blocks) or self.text


@dataclass
class Message:
    """A message as users see it: in a channel, in a thread, or ephemeral to one user."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[JSON] | None = None
    attachments: list[JSON] | None = None
    thread_ts: str | None = None
    edits: list[Revision] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    visible_to: str | None = None
    reply_broadcast: bool = False

    @property
    def flat(self) -> str:
        """Readable plain text: the blocks if any (what Slack renders), else the text."""
        attachment_text = "\n".join(_attachment_text(a) for a in self.attachments or [])
        return "\n".join(filter(None, [flatten(self.blocks) or self.text, attachment_text]))

    @property
    def is_ephemeral(self) -> bool:
        return self.visible_to is not None

    @property
    def edited_ts(self) -> str | None:
        return self.edits[-1].replaced_at if self.edits else None


@dataclass
class View:
    """A Home tab (views.publish) or modal (views.open) shown to one user."""

    id: str
    user: str
    type: str
    view: JSON
    via: str
    hash: str

    @property
    def blocks(self) -> list[JSON]:
        blocks = self.view.get("blocks")
        return blocks if isinstance(blocks, list) else []

    @property
    def flat(self) -> str:
        title = self.view.get("title")
        title_text = title.get("text", "") if isinstance(title, dict) else ""
        return "\n".join(filter(None, [str(title_text), flatten(self.blocks)]))


@dataclass(frozen=True)
class Change:
    """Something users would see change, passed to subscribers (from the fake's thread).

    kind: posted/updated/deleted/reacted for channel and thread messages, ephemeral when an
    ephemeral message appears or is replaced, view for views.publish/views.open.
    """

    kind: ChangeKind
    message: Message | View


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: `burst` calls at once, refilled at `per_second`."""

    per_second: float
    burst: int
    per_channel: bool = True


DEFAULT_RATE_LIMITS: Final[dict[str, RateLimit]] = {
    "chat.postMessage": RateLimit(per_second=1.0, burst=5),
    "chat.update": RateLimit(per_second=50 / 60, burst=10),
    "chat.postEphemeral": RateLimit(per_second=100 / 60, burst=20, per_channel=False),
    "views.publish": RateLimit(per_second=100 / 60, burst=20, per_channel=False),
    "views.open": RateLimit(per_second=100 / 60, burst=20, per_channel=False),
    "reactions.add": RateLimit(per_second=50 / 60, burst=10, per_channel=False),
    "usergroups.users.list": RateLimit(per_second=20 / 60, burst=5, per_channel=False),
}


class _TokenBucket:
    """Slack-style rate limiting: answers how long to wait, or 0 when the call may go."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.updated = now

    def take(self, now: float) -> float:
        elapsed = now - self.updated
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.limit.per_second


@dataclass
class _Fault:
    """Answers every n-th matching call with an error status instead of performing it."""

    every_nth: int
    status: int
    retry_after: int
    methods: frozenset[str] | None
    until: float | None
    seen: int = 0

    def fires_for(self, method: str, now: float) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.methods is None:
            if method == "response_url":
                return False
        elif method not in self.methods:
            return False
        self.seen += 1
        return self.seen % self.every_nth == 0


@dataclass
class _ResponseUrl:
    """Where posts to one response_url land, and how often it may still be used."""

    id: str
    channel: str
    user: str
    created_at: float
    command: str | None = None
    command_text: str = ""
    source_ts: str | None = None
    source_is_ephemeral: bool = False
    thread_ts: str | None = None
    posts: int = 0
    command_shown: bool = False


@dataclass
class _Delivery:
    """An envelope sent (or about to be sent) to the app, waiting for its ack."""

    envelope: JSON
    response_url: _ResponseUrl | None = None
    sent_at: float | None = None
    ack: Ack | None = None

    @property
    def kind(self) -> str:
        return str(self.envelope["type"])


@dataclass
class _Socket:
    id: int
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None


@dataclass(frozen=True)
class _Reply:
    """A Web API answer before it becomes an HTTP response."""

    body: JSON
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return None if self.body.get("ok") else str(self.body.get("error"))


@dataclass
class _Trigger:
    user: str
    issued_at: float
    used: bool = False


class _Params:
    """Web API arguments, whichever way the client sent them (query, form or JSON)."""

    def __init__(self, raw: JSON) -> None:
        self.raw = raw

    def __contains__(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int | float) else json.dumps(value)

    def json(self, key: str) -> Any:
        """Values like `blocks` arrive as JSON strings in forms and as objects in JSON bodies."""
        value = self.raw.get(key)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value

    def flag(self, key: str) -> bool:
        return self.raw.get(key) in (True, 1, "1", "true", "True")


def _error(code: str, **extra: Any) -> JSON:
    return {"ok": False, "error": code, **extra}


class _Refused(Exception):
    """Raised inside a Web API method to answer with Slack's error body."""

    def __init__(self, body: JSON) -> None:
        super().__init__(body.get("error"))
        self.body = body


def _random_id(prefix: str, length: int = 10) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _attachment_text(attachment: JSON) -> str:
    parts = [flatten(attachment.get("blocks"))]
    parts += [str(attachment.get(key) or "") for key in ("pretext", "title", "text")]
    return "\n".join(filter(None, parts))


_LIVE_FAKES: weakref.WeakSet[FakeSlack] = weakref.WeakSet()


class FakeSlack:
    """Slack's Web API, Socket Mode and response_url endpoints on 127.0.0.1, for one workspace.

    Start it (or use it as a context manager), point `AsyncWebClient(base_url=fake.api_url)`
    and a Socket Mode handler (`fake.app_token`) at it, then drive it like a user. All public
    methods are thread-safe and may be called from any thread or event loop.
    """

    bot_token: Final = "xoxb-fake-bot-token"  # noqa: S105 - fake credential by design
    app_token: Final = "xapp-fake-app-token"  # noqa: S105 - fake credential by design
    bot_user_id: Final = "U0TUGBOAT"
    team_id: Final = TEAM_ID
    team_domain: Final = "tugboat-sandbox"
    app_id: Final = APP_ID

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None
        self._port = 0
        self._last_ts_micros = 0  # never reset: timestamps stay unique for the server's life
        self._sockets: list[_Socket] = []
        self._socket_ids = itertools.count(1)
        self._fresh_workspace()
        self._methods: dict[str, Callable[[_Params], JSON]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.publish": self._views_publish,
            "views.open": self._views_open,
            "usergroups.users.list": self._usergroups_users_list,
            "reactions.add": self._reactions_add,
            "conversations.info": self._conversations_info,
        }

    def _fresh_workspace(self) -> None:
        """Everything a test can see or change, as a new fake starts with it."""
        self.rate_limits_enabled = True
        self.ack_timeout_s = ACK_TIMEOUT_S
        self.trigger_ttl_s = TRIGGER_TTL_S
        self._rate_limits = dict(DEFAULT_RATE_LIMITS)
        self._buckets: dict[tuple[str, str], _TokenBucket] = {}
        self._faults: list[_Fault] = []
        self._calls: list[ApiCall] = []
        self._violations: list[str] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._top_level: dict[str, list[str]] = {}
        self._replies: dict[tuple[str, str], list[str]] = {}
        self._ephemerals: dict[str, Message] = {}
        self._views: list[View] = []
        self._usergroups: dict[str, list[str]] = {}
        self._channel_names: dict[str, str] = {DEFAULT_CHANNEL: "dev"}
        self._user_names: dict[str, str] = {DEFAULT_USER: "dev"}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._deliveries: dict[str, _Delivery] = {}
        self._events: dict[str, JSON] = {}
        self._event_attempts: dict[str, int] = {}
        self._subscribers: list[Callable[[Change], None]] = []
        self._round_robin = itertools.count()
        self._connections_opened = 0
        self._tickets: set[str] = set()
        self._revoked: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def reset(self) -> None:
        """Back to a freshly started fake, on the same port: no messages, ephemerals, views,
        calls, faults, subscribers or counters, default rate limits and timeouts.

        Sockets still open (a client that outlived its test) are cut first, so nothing from
        before the reset reaches the next test's counters.
        """
        with self._lock:
            sockets = list(self._sockets)
        if sockets and self._loop is not None:
            self._call_on_loop(lambda: _abort_all(sockets))
        with self._lock:
            self._sockets = []
            self._fresh_workspace()

    def start(self) -> FakeSlack:
        """Serve on a free port in a background thread; returns once it accepts connections."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._run_loop, name="fake-slack", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=10)
        if self._startup_error is not None or not self._port:
            self._thread = None
            raise RuntimeError("fake Slack did not start") from self._startup_error
        _LIVE_FAKES.add(self)
        return self

    def stop(self) -> None:
        """Close every socket, stop the server and join its thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(TimeoutError):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._loop, self._thread = None, None
        _LIVE_FAKES.discard(self)

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # surfaced to start()'s caller
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_get("/api/{method}", self._handle_api)
        app.router.add_get("/link", self._handle_socket)
        app.router.add_get("/link/", self._handle_socket)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def _shutdown(self) -> None:
        for socket in self._connected_sockets():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(socket.ws.close(code=WSCloseCode.GOING_AWAY), 1)
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}/"

    @property
    def api_url(self) -> str:
        """Pass as `AsyncWebClient(base_url=...)`; ends with a slash like Slack's."""
        return f"{self.base_url}api/"

    @property
    def connection_count(self) -> int:
        """Socket Mode connections open right now."""
        return len(self._connected_sockets())

    @property
    def connections_opened(self) -> int:
        """Socket Mode connections accepted since start (reconnects included)."""
        with self._lock:
            return self._connections_opened

    # ------------------------------------------------------------------ configuration

    def set_usergroup(self, usergroup: str, users: list[str]) -> None:
        with self._lock:
            self._usergroups[usergroup] = list(users)

    def set_rate_limit(
        self, method: str, per_second: float, burst: int, *, per_channel: bool | None = None
    ) -> None:
        """Replace one method's bucket; per_channel keeps the method's current scope if None."""
        with self._lock:
            if per_channel is None:
                current = self._rate_limits.get(method)
                per_channel = current.per_channel if current is not None else True
            self._rate_limits[method] = RateLimit(per_second, burst, per_channel)
            self._buckets = {k: v for k, v in self._buckets.items() if k[0] != method}

    def fail_every_nth_call(
        self,
        n: int,
        status: int = 429,
        retry_after: int = 1,
        methods: list[str] | None = None,
        until: float | None = None,
    ) -> None:
        """Answer every n-th Web API call (of `methods`, before monotonic `until`) with `status`."""
        if n < 1:
            raise ValueError("n must be at least 1")
        chosen = frozenset(methods) if methods is not None else None
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, chosen, until))

    def revoke_token(self, token: str, error: str = "token_revoked") -> None:
        """Answer every call made with `token` with `error` (`token_revoked`, `account_inactive`…)."""
        with self._lock:
            self._revoked[token] = error

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def subscribe(self, callback: Callable[[Change], None]) -> Callable[[], None]:
        """Call `callback(change)` from the fake's thread on every visible change."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[ApiCall]:
        """Every Web API and response_url request so far (a snapshot)."""
        with self._lock:
            return list(self._calls)

    @property
    def block_kit_violations(self) -> list[str]:
        """Every Block Kit problem the fake refused so far, as `method: problem` (a snapshot)."""
        with self._lock:
            return list(self._violations)

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel in order (broadcast thread replies included)."""
        with self._lock:
            return [self._snapshot(channel, ts) for ts in self._top_level.get(channel, [])]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """The replies under the message `ts`, in order (without the parent)."""
        with self._lock:
            return [self._snapshot(channel, reply) for reply in self._replies.get((channel, ts), [])]

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            found = self._messages.get((channel, ts))
            return copy.deepcopy(found) if found is not None else None

    def ephemerals(self, user: str | None = None, channel: str | None = None) -> list[Message]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._ephemerals.values()
                if (user is None or m.visible_to == user) and (channel is None or m.channel == channel)
            ]

    def ephemeral(self, message_ts: str) -> Message | None:
        with self._lock:
            found = self._ephemerals.get(message_ts)
            return copy.deepcopy(found) if found is not None else None

    def views(self, user: str) -> list[View]:
        """Every view shown to `user`, oldest first (the last home view is the current one)."""
        with self._lock:
            return [copy.deepcopy(v) for v in self._views if v.user == user]

    def ack_for(self, envelope_id: str) -> Ack | None:
        with self._lock:
            delivery = self._deliveries.get(envelope_id)
            return delivery.ack if delivery is not None else None

    def describe_recent(self, limit: int = 10) -> str:
        """The latest messages and ephemerals as text lines, for timeout diagnostics."""
        with self._lock:
            everything = [*self._messages.values(), *self._ephemerals.values()]
        latest = sorted(everything, key=lambda m: float(m.ts))[-limit:]
        return "\n".join(_describe(m) for m in latest) or "(no messages)"

    def _snapshot(self, channel: str, ts: str) -> Message:
        return copy.deepcopy(self._messages[(channel, ts)])

    # ------------------------------------------------------------------ driving the bot

    def slash_command(
        self,
        command: str,
        text: str = "",
        *,
        user: str = DEFAULT_USER,
        channel: str = DEFAULT_CHANNEL,
        user_name: str | None = None,
    ) -> str:
        """A user runs `/command text` in `channel`; returns the envelope_id."""
        with self._lock:
            self._require_socket()
            if user_name is not None:
                self._user_names[user] = user_name
            target = self._new_response_url(channel, user)
            target.command, target.command_text = command, text
            payload = self._slash_payload(command, text, user, channel, target)
            envelope = self._envelope("slash_commands", payload, accepts_response_payload=True)
            self._deliveries[envelope["envelope_id"]] = _Delivery(envelope, response_url=target)
        return self._deliver(envelope)

    def mention(
        self,
        text: str,
        *,
        user: str = DEFAULT_USER,
        channel: str = DEFAULT_CHANNEL,
        thread_ts: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """A user writes `@tugboat text`; reusing an event_id re-delivers it as Slack's retry."""
        with self._lock:
            self._require_socket()
            if event_id is not None and event_id in self._events:
                envelope = self._retry_envelope(event_id)
            else:
                event = self._record_mention(text, user, channel, thread_ts)
                envelope = self._event_envelope(event, event_id or _random_id("Ev"))
            self._deliveries[envelope["envelope_id"]] = _Delivery(envelope)
        return self._deliver(envelope)

    def click(
        self,
        channel: str,
        message_ts: str,
        action_id: str,
        *,
        user: str = DEFAULT_USER,
        value: str | None = None,
        block_id: str | None = None,
    ) -> str:
        """A user clicks the button `action_id` in a channel message; raises if it isn't there."""
        with self._lock:
            self._require_socket()
            message = self._messages.get((channel, message_ts))
            if message is None:
                raise LookupError(f"no message {message_ts} in {channel}")
            envelope = self._click_envelope(message, action_id, user, value, block_id)
        return self._deliver(envelope)

    def click_ephemeral(
        self,
        message_ts: str,
        action_id: str,
        *,
        value: str | None = None,
        block_id: str | None = None,
    ) -> str:
        """The user who sees the ephemeral `message_ts` clicks one of its buttons."""
        with self._lock:
            self._require_socket()
            message = self._ephemerals.get(message_ts)
            if message is None or message.visible_to is None:
                raise LookupError(f"no ephemeral message {message_ts}")
            recipient = message.visible_to
            envelope = self._click_envelope(message, action_id, recipient, value, block_id)
        return self._deliver(envelope)

    def submit_view(
        self, view_id: str, values: dict[str, dict[str, JSON]], *, user: str | None = None
    ) -> str:
        """The user presses a modal's submit button; `values` is `state.values` as Slack sends it
        ({block_id: {action_id: {"type": …, "value": …}}}). Returns the envelope_id (see `ack_for`)."""
        with self._lock:
            self._require_socket()
            shown = next((v for v in self._views if v.id == view_id and v.type == "modal"), None)
            if shown is None:
                raise LookupError(f"no modal {view_id}")
            view = {**self._view_json(shown), "state": {"values": copy.deepcopy(values)}}
            who = user or shown.user
            payload: JSON = {
                "type": "view_submission",
                "team": {"id": TEAM_ID, "domain": self.team_domain},
                "user": {"id": who, "name": self._user_name(who), "team_id": TEAM_ID},
                "api_app_id": APP_ID,
                "token": VERIFICATION_TOKEN,
                "trigger_id": self._new_trigger(who),
                "view": view,
                "response_urls": [],
                "is_enterprise_install": False,
                "enterprise": None,
            }
            envelope = self._envelope("interactive", payload, accepts_response_payload=True)
            self._deliveries[envelope["envelope_id"]] = _Delivery(envelope)
        return self._deliver(envelope)

    def app_home_opened(self, user: str = DEFAULT_USER) -> str:
        """A user opens the app's Home tab."""
        with self._lock:
            self._require_socket()
            event: JSON = {
                "type": "app_home_opened",
                "user": user,
                "channel": _dm_channel(user),
                "tab": "home",
                "event_ts": self._next_ts(),
            }
            home = self._current_home(user)
            if home is not None:
                event["view"] = self._view_json(home)
            envelope = self._event_envelope(event, _random_id("Ev"))
            self._deliveries[envelope["envelope_id"]] = _Delivery(envelope)
        return self._deliver(envelope)

    def drop_connections(self) -> int:
        """Cut every Socket Mode connection without a close frame; returns how many."""
        with self._lock:
            sockets = list(self._sockets)
        self._call_on_loop(lambda: _abort_all(sockets))
        return len(sockets)

    def request_reconnect(self, reason: str = "refresh_requested", grace_s: float = REFRESH_GRACE_S) -> int:
        """Send Slack's `disconnect` message to every socket, then close them after `grace_s`."""
        with self._lock:
            sockets = list(self._sockets)
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
        refresh = _refresh(sockets, json.dumps(message), grace_s)
        asyncio.run_coroutine_threadsafe(refresh, self._require_loop())
        return len(sockets)

    # ------------------------------------------------------------------ Web API

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except ValueError:
            return web.json_response(_error("invalid_json"))
        token = _bearer_token(request) or params.pop("token", None)
        reply = self._call_api(method, token, params)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    def _call_api(self, method: str, token: str | None, params: JSON) -> _Reply:
        with self._lock:
            reply = self._answer(method, token, params)
            self._record_call(method, params, reply.status, reply.error)
        return reply

    def _record_call(self, method: str, params: JSON, status: int, error: str | None) -> None:
        call = ApiCall(method, copy.deepcopy(params), status, time.monotonic(), error)
        self._calls.append(call)

    def _answer(self, method: str, token: str | None, params: JSON) -> _Reply:
        handler = self._methods.get(method)
        if handler is None:
            return _Reply(_error("unknown_method", req_method=method))
        auth_error = self._revoked.get(token or "") or _auth_error(
            method, token, self.bot_token, self.app_token
        )
        if auth_error is not None:
            return _Reply(_error(auth_error))
        throttled = self._fault_reply(method) or self._rate_limit_reply(method, params)
        if throttled is not None:
            return throttled
        try:
            return _Reply(handler(_Params(params)))
        except _Refused as refusal:
            return _Reply(refusal.body)

    def _fault_reply(self, method: str) -> _Reply | None:
        now = time.monotonic()
        for fault in self._faults:
            if fault.fires_for(method, now):
                return _failure_reply(fault.status, fault.retry_after)
        return None

    def _rate_limit_reply(self, method: str, params: JSON) -> _Reply | None:
        limit = self._rate_limits.get(method)
        if not self.rate_limits_enabled or limit is None:
            return None
        scope = str(params.get("channel") or "") if limit.per_channel else ""
        now = time.monotonic()
        bucket = self._buckets.setdefault((method, scope), _TokenBucket(limit, now))
        wait_s = bucket.take(now)
        return _failure_reply(429, max(1, int(wait_s + 0.999))) if wait_s > 0 else None

    def _auth_test(self, _: _Params) -> JSON:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": TEAM_NAME,
            "user": BOT_NAME,
            "team_id": TEAM_ID,
            "user_id": self.bot_user_id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, _: _Params) -> JSON:
        ticket = secrets.token_hex(12)
        self._tickets.add(ticket)
        url = f"ws://127.0.0.1:{self._port}/link/?ticket={ticket}&app_id={APP_ID}"
        return {"ok": True, "url": url}

    def _chat_post_message(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel"))
        if channel is None:
            return _error("channel_not_found")
        text, blocks, attachments = self._content(params, "chat.postMessage")
        thread_ts = self._thread_root(channel, params.text("thread_ts"))
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=self.bot_user_id,
            text=text,
            blocks=_with_generated_ids(blocks),
            attachments=attachments,
            thread_ts=thread_ts,
            reply_broadcast=thread_ts is not None and params.flag("reply_broadcast"),
        )
        self._store(message)
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": self._message_json(message),
        }

    def _content(self, params: _Params, where: str) -> tuple[str, Any, list[JSON] | None]:
        """Text, blocks and attachments of a new message; refuses what Slack would refuse."""
        text, blocks = params.text("text"), params.json("blocks")
        attachments = params.json("attachments")
        if not text and not blocks and not attachments:
            raise _Refused(_error("no_text"))
        self._check_block_kit(where, text, blocks)
        return text or "", blocks, attachments if isinstance(attachments, list) else None

    def _chat_update(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel")) or ""
        ts = params.text("ts") or ""
        message = self._messages.get((channel, ts))
        if message is None:
            return _error("message_not_found")
        if message.user != self.bot_user_id:
            return _error("cant_update_message")
        text = params.text("text")
        # Like Slack: omitted blocks/attachments are kept; an empty list removes them.
        blocks = params.json("blocks") if "blocks" in params else message.blocks
        attachments = message.attachments
        if "attachments" in params:
            attachments = _json_list(params.json("attachments"))
        self._check_block_kit("chat.update", text, blocks if "blocks" in params else None)
        self._edit(message, text if text is not None else message.text, blocks, attachments)
        body = self._message_json(message)
        return {"ok": True, "channel": channel, "ts": ts, "text": message.text, "message": body}

    def _chat_post_ephemeral(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel"))
        user = params.text("user")
        if channel is None:
            return _error("channel_not_found")
        if not user:
            return _error("user_not_found")
        text, blocks, attachments = self._content(params, "chat.postEphemeral")
        thread_ts = self._thread_root(channel, params.text("thread_ts"))
        message = self._post_ephemeral(channel, user, text, blocks, thread_ts, attachments)
        return {"ok": True, "message_ts": message.ts}

    def _chat_get_permalink(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel")) or ""
        ts = params.text("message_ts") or ""
        message = self._messages.get((channel, ts))
        if message is None:
            return _error("message_not_found")
        permalink = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if message.thread_ts is not None:
            permalink += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _views_publish(self, params: _Params) -> JSON:
        user = params.text("user_id")
        if not user:
            return _error("invalid_arguments")
        current = self._current_home(user)
        expected_hash = params.text("hash")
        if expected_hash and current is not None and current.hash != expected_hash:
            return _error("hash_conflict")
        return self._show_view(user, params.json("view"), "views.publish")

    def _views_open(self, params: _Params) -> JSON:
        trigger_id = params.text("trigger_id") or ""
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            return _error("invalid_trigger_id")
        if trigger.used:
            return _error("exchanged_trigger_id")
        if time.monotonic() - trigger.issued_at > self.trigger_ttl_s:
            return _error("expired_trigger_id")
        reply = self._show_view(trigger.user, params.json("view"), "views.open")
        trigger.used = bool(reply.get("ok"))
        return reply

    def _show_view(self, user: str, view: Any, via: str) -> JSON:
        problems = find_view_problems(view)
        if problems or not isinstance(view, dict):
            self._violations.extend(f"{via}: {p.detail}" for p in problems)
            raise _Refused(_blocks_error(problems))
        shown = View(
            id=_random_id("V"),
            user=user,
            type=str(view["type"]),
            view=copy.deepcopy(view),
            via=via,
            hash=f"{int(time.time())}.{secrets.token_hex(4)}",
        )
        self._views.append(shown)
        self._emit("view", shown)
        return {"ok": True, "view": self._view_json(shown)}

    def _usergroups_users_list(self, params: _Params) -> JSON:
        users = self._usergroups.get(params.text("usergroup") or "")
        if users is None:
            return _error("no_such_subteam")
        return {"ok": True, "users": list(users)}

    def _reactions_add(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel")) or ""
        message = self._messages.get((channel, params.text("timestamp") or ""))
        name = (params.text("name") or "").strip(":")
        if message is None:
            return _error("message_not_found")
        if not name:
            return _error("invalid_name")
        reactors = message.reactions.setdefault(name, [])
        if self.bot_user_id in reactors:
            return _error("already_reacted")
        reactors.append(self.bot_user_id)
        self._emit("reacted", message)
        return {"ok": True}

    def _conversations_info(self, params: _Params) -> JSON:
        channel = self._resolve_channel(params.text("channel"))
        if channel is None:
            return _error("channel_not_found")
        return {"ok": True, "channel": self._channel_json(channel)}

    # ------------------------------------------------------------------ state changes

    def _store(self, message: Message) -> None:
        self._messages[(message.channel, message.ts)] = message
        if message.thread_ts is None or message.reply_broadcast:
            self._top_level.setdefault(message.channel, []).append(message.ts)
        if message.thread_ts is not None:
            self._replies.setdefault((message.channel, message.thread_ts), []).append(message.ts)
        self._emit("posted", message)

    def _edit(
        self,
        message: Message,
        text: str,
        blocks: list[JSON] | None,
        attachments: list[JSON] | None,
    ) -> None:
        revision = Revision(message.text, message.blocks, message.attachments, self._next_ts())
        message.edits.append(revision)
        message.text = text
        message.blocks = _with_generated_ids(blocks)
        message.attachments = attachments
        self._emit("ephemeral" if message.is_ephemeral else "updated", message)

    def _delete(self, message: Message) -> None:
        if message.visible_to is not None:
            self._ephemerals.pop(message.ts, None)
        else:
            self._messages.pop((message.channel, message.ts), None)
            _remove(self._top_level.get(message.channel, []), message.ts)
            if message.thread_ts is not None:
                _remove(self._replies.get((message.channel, message.thread_ts), []), message.ts)
        self._emit("deleted", message)

    def _post_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[JSON] | None,
        thread_ts: str | None = None,
        attachments: list[JSON] | None = None,
        author: str | None = None,
    ) -> Message:
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=author or self.bot_user_id,
            text=text,
            blocks=_with_generated_ids(blocks),
            attachments=attachments,
            thread_ts=thread_ts,
            visible_to=user,
        )
        self._ephemerals[message.ts] = message
        self._emit("ephemeral", message)
        return message

    def _check_block_kit(self, where: str, text: str | None, blocks: Any) -> None:
        """Refuse (and remember as a violation) what Slack's Block Kit validation would refuse."""
        problems = find_message_problems(text, blocks)
        if problems:
            self._violations.extend(f"{where}: {p.detail}" for p in problems)
            raise _Refused(_blocks_error(problems))

    def _emit(self, kind: ChangeKind, subject: Message | View) -> None:
        loop = self._loop
        if not self._subscribers or loop is None:
            return
        change = Change(kind, copy.deepcopy(subject))
        with contextlib.suppress(RuntimeError):  # loop already closed during stop()
            loop.call_soon_threadsafe(self._dispatch, change)

    async def settled(self) -> None:
        """Wait until every change made so far has reached the subscribers.

        Changes are handed to subscribers on the fake's own loop, in order; a no-op queued
        behind them finishes only after they have all been delivered.
        """
        loop = self._loop
        if loop is None:
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop))

    def _dispatch(self, change: Change) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(change)
            except Exception:
                logger.exception("fake Slack subscriber failed on %s", change.kind)

    def _next_ts(self) -> str:
        """Slack timestamps: unique, increasing, `seconds.micros` with six digits."""
        micros = max(time.time_ns() // 1000, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _resolve_channel(self, channel: str | None) -> str | None:
        if not channel:
            return None
        if channel.startswith("#"):
            by_name = {name: cid for cid, name in self._channel_names.items()}
            return by_name.get(channel[1:])
        if channel[0] in "UW":
            return _dm_channel(channel)
        return channel

    def _thread_root(self, channel: str, thread_ts: str | None) -> str | None:
        """Slack threads a reply-to-a-reply under the original parent."""
        if not thread_ts:
            return None
        parent = self._messages.get((channel, thread_ts))
        if parent is not None and parent.thread_ts is not None:
            return parent.thread_ts
        return thread_ts

    def _current_home(self, user: str) -> View | None:
        homes = [v for v in self._views if v.user == user and v.type == "home"]
        return homes[-1] if homes else None

    # ------------------------------------------------------------------ JSON shapes

    def _message_json(self, message: Message) -> JSON:
        body: JSON = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "ts": message.ts,
            "team": TEAM_ID,
        }
        if message.user == self.bot_user_id:
            body |= {"bot_id": BOT_ID, "app_id": APP_ID, "bot_profile": self._bot_profile()}
        for key in ("blocks", "attachments", "thread_ts"):
            if getattr(message, key) is not None:
                body[key] = copy.deepcopy(getattr(message, key))
        if message.reply_broadcast:
            body["subtype"] = "thread_broadcast"
        if message.edited_ts is not None:
            body["edited"] = {"user": message.user, "ts": message.edited_ts}
        if message.reactions:
            body["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in message.reactions.items()
            ]
        replies = self._replies.get((message.channel, message.ts))
        if replies and message.thread_ts is None:
            body |= {
                "thread_ts": message.ts,
                "reply_count": len(replies),
                "latest_reply": replies[-1],
            }
        return body

    def _bot_profile(self) -> JSON:
        return {
            "id": BOT_ID,
            "app_id": APP_ID,
            "name": BOT_NAME,
            "deleted": False,
            "team_id": TEAM_ID,
        }

    def _view_json(self, view: View) -> JSON:
        body = copy.deepcopy(view.view)
        body.setdefault("private_metadata", "")
        body.setdefault("callback_id", "")
        return body | {
            "id": view.id,
            "team_id": TEAM_ID,
            "state": {"values": {}},
            "hash": view.hash,
            "root_view_id": view.id,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
        }

    def _channel_json(self, channel: str) -> JSON:
        is_im = channel.startswith("D")
        return {
            "id": channel,
            "name": self._channel_name(channel),
            "is_channel": not is_im,
            "is_im": is_im,
            "is_private": channel.startswith("G"),
            "is_member": True,
            "is_archived": False,
            "context_team_id": TEAM_ID,
        }

    def _channel_name(self, channel: str) -> str:
        return self._channel_names.get(channel, channel.lower())

    def _user_name(self, user: str) -> str:
        return self._user_names.get(user, user.lower())

    # ------------------------------------------------------------------ envelopes

    def _envelope(self, kind: str, payload: JSON, *, accepts_response_payload: bool) -> JSON:
        return {
            "envelope_id": str(uuid.uuid4()),
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }

    def _slash_payload(self, command: str, text: str, user: str, channel: str, target: _ResponseUrl) -> JSON:
        return {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user,
            "user_name": self._user_name(user),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._response_url_of(target),
            "trigger_id": self._new_trigger(user),
        }

    def _record_mention(self, text: str, user: str, channel: str, thread_ts: str | None) -> JSON:
        """Post the user's mention in the channel (or thread) and build its app_mention event."""
        thread_root = self._thread_root(channel, thread_ts)
        blocks = [_mention_rich_text(self.bot_user_id, text)]
        message = Message(channel, self._next_ts(), user, f"<@{self.bot_user_id}> {text}", blocks)
        message.thread_ts = thread_root
        self._store(message)
        event: JSON = {
            "type": "app_mention",
            "user": user,
            "text": message.text,
            "ts": message.ts,
            "blocks": copy.deepcopy(blocks),
            "team": TEAM_ID,
            "channel": channel,
            "event_ts": message.ts,
            "client_msg_id": str(uuid.uuid4()),
        }
        if thread_root is not None:
            event["thread_ts"] = thread_root
        return event

    def _event_envelope(self, event: JSON, event_id: str) -> JSON:
        payload: JSON = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_hex(16)}",
        }
        self._events[event_id] = payload
        self._event_attempts[event_id] = 0
        envelope = self._envelope("events_api", payload, accepts_response_payload=False)
        return envelope | {"retry_attempt": 0, "retry_reason": ""}

    def _retry_envelope(self, event_id: str) -> JSON:
        self._event_attempts[event_id] += 1
        payload = copy.deepcopy(self._events[event_id])
        envelope = self._envelope("events_api", payload, accepts_response_payload=False)
        return envelope | {
            "retry_attempt": self._event_attempts[event_id],
            "retry_reason": "timeout",
        }

    def _click_envelope(
        self, message: Message, action_id: str, user: str, value: str | None, block_id: str | None
    ) -> JSON:
        block, button = _find_button(message, action_id, block_id)
        target = self._new_response_url(message.channel, user, thread_ts=message.thread_ts)
        target.source_ts, target.source_is_ephemeral = message.ts, message.is_ephemeral
        action: JSON = {
            "action_id": action_id,
            "block_id": block["block_id"],
            "text": copy.deepcopy(button.get("text")),
            "value": value if value is not None else button.get("value"),
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }
        if "style" in button:
            action["style"] = button["style"]
        payload = self._block_actions_payload(message, user, target, action)
        envelope = self._envelope("interactive", payload, accepts_response_payload=False)
        self._deliveries[envelope["envelope_id"]] = _Delivery(envelope, response_url=target)
        return envelope

    def _block_actions_payload(self, message: Message, user: str, target: _ResponseUrl, action: JSON) -> JSON:
        container: JSON = {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": message.is_ephemeral,
        }
        if message.thread_ts is not None:
            container["thread_ts"] = message.thread_ts
        payload: JSON = {
            "type": "block_actions",
            "user": {
                "id": user,
                "username": self._user_name(user),
                "name": self._user_name(user),
                "team_id": TEAM_ID,
            },
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": container,
            "trigger_id": self._new_trigger(user),
            "team": {"id": TEAM_ID, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": self._channel_name(message.channel)},
            "state": {"values": {}},
            "response_url": self._response_url_of(target),
            "actions": [action],
        }
        if not message.is_ephemeral:  # like Slack: ephemeral clicks carry no `message`
            payload["message"] = self._message_json(message)
        return payload

    def _new_response_url(self, channel: str, user: str, thread_ts: str | None = None) -> _ResponseUrl:
        response_id = secrets.token_urlsafe(16)
        target = _ResponseUrl(response_id, channel, user, time.monotonic(), thread_ts=thread_ts)
        self._response_urls[response_id] = target
        return target

    def _response_url_of(self, target: _ResponseUrl) -> str:
        return f"{self.base_url}response/{target.id}"

    def _new_trigger(self, user: str) -> str:
        trigger_id = f"{time.time_ns() // 1000}.{TEAM_ID[1:]}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(user, time.monotonic())
        return trigger_id

    # ------------------------------------------------------------------ socket mode

    def _require_socket(self) -> None:
        if not self._connected_sockets():
            raise NoSocketConnected("no Socket Mode client is connected to the fake Slack")

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("fake Slack is not started")
        return self._loop

    def _call_on_loop(self, action: Callable[[], object]) -> None:
        """Run `action` on the fake's loop; wait for it unless we already are on that loop."""
        loop = self._require_loop()
        if threading.current_thread() is self._thread:
            action()
            return

        async def run() -> None:
            action()

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    def _deliver(self, envelope: JSON) -> str:
        """Send the envelope to one socket; waits for the send unless on the fake's own thread."""
        loop = self._require_loop()
        future = asyncio.run_coroutine_threadsafe(self._send_envelope(envelope), loop)
        if threading.current_thread() is self._thread:
            future.add_done_callback(_log_failure)
        else:
            future.result(timeout=10)
        return str(envelope["envelope_id"])

    async def _send_envelope(self, envelope: JSON) -> None:
        envelope_id = str(envelope["envelope_id"])
        raw = json.dumps(envelope)
        for socket in self._sockets_in_turn():
            with self._lock:
                self._deliveries[envelope_id].sent_at = time.monotonic()
            try:
                await socket.ws.send_str(raw)
            except (ConnectionError, RuntimeError) as error:
                logger.info("fake Slack: socket %s failed to send: %s", socket.id, error)
                continue
            if envelope["type"] == "slash_commands":
                asyncio.get_running_loop().call_later(self.ack_timeout_s, self._check_acked, envelope_id)
            return
        raise NoSocketConnected(f"no open socket took envelope {envelope_id}")

    def _sockets_in_turn(self) -> list[_Socket]:
        """Open sockets, starting with the next one in round-robin order."""
        with self._lock:
            sockets = self._connected_sockets()
            if not sockets:
                return []
            start = next(self._round_robin) % len(sockets)
            return sockets[start:] + sockets[:start]

    def _connected_sockets(self) -> list[_Socket]:
        with self._lock:
            return [s for s in self._sockets if not s.ws.closed]

    def _check_acked(self, envelope_id: str) -> None:
        """Like Slack: an unacknowledged slash command shows the user an error."""
        with self._lock:
            delivery = self._deliveries.get(envelope_id)
            if delivery is None or delivery.ack is not None or delivery.response_url is None:
                return
            target = delivery.response_url
            text = f'{target.command} failed with the error "operation_timeout"'
            self._post_ephemeral(target.channel, target.user, text, None, author=SLACKBOT_USER_ID)

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            if request.query.get("ticket") not in self._tickets:
                return web.Response(status=401, text="invalid_ticket")
        ws = web.WebSocketResponse(autoping=True)  # answers the client's pings itself
        await ws.prepare(request)
        socket = _Socket(next(self._socket_ids), ws, request.transport)
        with self._lock:
            self._sockets.append(socket)
            self._connections_opened += 1
            hello = self._hello(len(self._sockets))
        try:
            await ws.send_str(json.dumps(hello))
            async for frame in ws:
                if frame.type == WSMsgType.TEXT:
                    self._on_socket_text(str(frame.data))
        finally:
            with self._lock:
                _remove(self._sockets, socket)
        return ws

    def _hello(self, num_connections: int) -> JSON:
        return {
            "type": "hello",
            "num_connections": num_connections,
            "debug_info": {
                "host": "applink-fake",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": APP_ID},
        }

    def _on_socket_text(self, raw: str) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            logger.warning("fake Slack: app sent non-JSON on the socket: %.200s", raw)
            return
        envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
        payload = message.get("payload") if isinstance(message, dict) else None
        if isinstance(envelope_id, str):
            self._record_ack(envelope_id, payload if isinstance(payload, dict) else None)

    def _record_ack(self, envelope_id: str, payload: JSON | None) -> None:
        with self._lock:
            delivery = self._deliveries.get(envelope_id)
            if delivery is None or delivery.ack is not None:
                logger.warning("fake Slack: unexpected ack for envelope %s", envelope_id)
                return
            now = time.monotonic()
            sent_at = delivery.sent_at if delivery.sent_at is not None else now
            delivery.ack = Ack(envelope_id, sent_at, now, now - sent_at, payload)
            if delivery.kind == "slash_commands" and payload and delivery.response_url:
                with contextlib.suppress(_Refused):  # Slack shows nothing for a bad ack payload
                    self._show_reply(delivery.response_url, payload, "ack")

    # ------------------------------------------------------------------ response_url

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        status, text = self._post_to_response_url(request.match_info["response_id"], body)
        return web.Response(status=status, text=text)

    def _post_to_response_url(self, response_id: str, body: JSON) -> tuple[int, str]:
        with self._lock:
            status, text = self._response_url_reply(response_id, body)
            self._record_call("response_url", body, status, None if status == 200 else text)
            return status, text

    def _response_url_reply(self, response_id: str, body: JSON) -> tuple[int, str]:
        target = self._response_urls.get(response_id)
        if target is None:
            return 404, "no_such_url"
        if time.monotonic() - target.created_at > RESPONSE_URL_TTL_S:
            return 404, "expired_url"
        if target.posts >= RESPONSE_URL_MAX_POSTS:
            return 404, "used_url"
        fault = self._fault_reply("response_url")
        if fault is not None:
            return fault.status, str(fault.error)
        try:
            self._show_reply(target, body, "response_url")
        except _Refused as refusal:
            return 400, str(refusal.body["error"])
        target.posts += 1
        return 200, "ok"

    def _show_reply(self, target: _ResponseUrl, body: JSON, where: str) -> None:
        """Show a response_url post or a slash-command ack payload the way Slack would."""
        if body.get("delete_original"):
            self._delete(self._source_of(target))
            return
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            if where == "ack":
                return
            raise _Refused(_error("no_text"))
        text = text if isinstance(text, str) else ""
        self._check_block_kit(where, text, blocks)
        if body.get("replace_original") and target.source_ts is not None:
            self._edit(self._source_of(target), text, blocks, None)
            return
        thread_ts = body.get("thread_ts") or target.thread_ts
        if body.get("response_type") == "in_channel":
            self._show_in_channel(target, text, blocks, thread_ts)
        else:
            self._post_ephemeral(target.channel, target.user, text, blocks, thread_ts)

    def _show_in_channel(self, target: _ResponseUrl, text: str, blocks: Any, thread_ts: str | None) -> None:
        """in_channel replies to a slash command also reveal the command the user typed."""
        if target.command is not None and not target.command_shown:
            target.command_shown = True
            typed = f"{target.command} {target.command_text}".strip()
            self._store(Message(target.channel, self._next_ts(), target.user, typed))
        message = Message(
            target.channel,
            self._next_ts(),
            self.bot_user_id,
            text,
            _with_generated_ids(blocks),
            thread_ts=self._thread_root(target.channel, thread_ts),
        )
        self._store(message)

    def _source_of(self, target: _ResponseUrl) -> Message:
        """The message whose button produced this response_url (for replace/delete_original)."""
        source: Message | None = None
        if target.source_ts is not None and target.source_is_ephemeral:
            source = self._ephemerals.get(target.source_ts)
        elif target.source_ts is not None:
            source = self._messages.get((target.channel, target.source_ts))
        if source is None:
            raise _Refused(_error("message_not_found"))
        return source


# ---------------------------------------------------------------------- module helpers


async def _read_params(request: web.Request) -> JSON:
    """Query string, form or JSON body merged, the way Slack accepts arguments."""
    params: JSON = dict(request.query)
    if not request.can_read_body:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


def _bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _auth_error(method: str, token: str | None, bot_token: str, app_token: str) -> str | None:
    """Slack's answers: not_authed without a token, invalid_auth for an unknown one."""
    if not token:
        return "not_authed"
    if token not in (bot_token, app_token):
        return "invalid_auth"
    needs_app_token = method == "apps.connections.open"
    return None if (token == app_token) == needs_app_token else "not_allowed_token_type"


def _failure_reply(status: int, retry_after: int) -> _Reply:
    if status == 429:
        return _Reply(_error("ratelimited"), 429, {"Retry-After": str(retry_after)})
    code = {500: "internal_error", 503: "service_unavailable"}.get(status, "fatal_error")
    return _Reply(_error(code), status)


def _blocks_error(problems: list[Problem]) -> JSON:
    codes = {p.error for p in problems}
    code = next((c for c in _ERROR_PRIORITY if c in codes), problems[0].error)
    details = [p.detail for p in problems]
    return _error(
        code,
        errors=details,
        response_metadata={"messages": [f"[ERROR] {detail}" for detail in details]},
    )


def _with_generated_ids(blocks: Any) -> list[JSON] | None:
    """Slack fills in block_id (and a button's action_id) when the app leaves them out."""
    if not isinstance(blocks, list):
        return None
    filled = copy.deepcopy(blocks)
    for block in filled:
        if isinstance(block, dict):
            block.setdefault("block_id", secrets.token_urlsafe(4)[:5])
            for element in _interactive_elements(block):
                element.setdefault("action_id", secrets.token_urlsafe(4)[:5])
    return filled


def _interactive_elements(block: JSON) -> Iterator[JSON]:
    accessory = block.get("accessory")
    if isinstance(accessory, dict) and accessory.get("type") != "image":
        yield accessory
    if block.get("type") == "actions":
        yield from (e for e in block.get("elements") or [] if isinstance(e, dict))


def _find_button(message: Message, action_id: str, block_id: str | None) -> tuple[JSON, JSON]:
    """The (block, button) a click refers to; raises so tests notice missing buttons."""
    matches = [
        (block, element)
        for block in message.blocks or []
        for element in _interactive_elements(block)
        if element.get("type") == "button" and element.get("action_id") == action_id
        if block_id is None or block.get("block_id") == block_id
    ]
    if not matches:
        available = sorted(
            str(e.get("action_id"))
            for b in message.blocks or []
            for e in _interactive_elements(b)
            if e.get("type") == "button"
        )
        raise LookupError(f"no button {action_id!r} in message {message.ts}; buttons: {available}")
    if len(matches) > 1:
        block_ids = [block.get("block_id") for block, _ in matches]
        raise LookupError(f"button {action_id!r} is in several blocks {block_ids}; pass block_id")
    return matches[0]


def _mention_rich_text(bot_user_id: str, text: str) -> JSON:
    return {
        "type": "rich_text",
        "block_id": secrets.token_urlsafe(4)[:5],
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [
                    {"type": "user", "user_id": bot_user_id},
                    {"type": "text", "text": f" {text}"},
                ],
            }
        ],
    }


def _dm_channel(user: str) -> str:
    return "D" + user[1:]


def _remove(items: list[Any], item: Any) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.warning("fake Slack: delivery failed: %s", future.exception())


def _abort(socket: _Socket) -> None:
    """Drop the TCP connection without a websocket close frame, like a network failure."""
    if isinstance(socket.transport, asyncio.WriteTransport):
        socket.transport.abort()


async def _refresh(sockets: list[_Socket], disconnect: str, grace_s: float) -> None:
    """Slack's refresh: announce `disconnect`, give clients time to move, then hang up."""
    for socket in sockets:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await socket.ws.send_str(disconnect)
    await asyncio.sleep(grace_s)
    for socket in sockets:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY)


def _abort_all(sockets: list[_Socket]) -> None:
    for socket in sockets:
        _abort(socket)


def _json_list(value: Any) -> list[JSON] | None:
    return value if isinstance(value, list) else None


def _describe(message: Message) -> str:
    where = f"#{message.channel}" + (f" thread {message.thread_ts}" if message.thread_ts else "")
    who = f"(ephemeral to {message.visible_to}) " if message.visible_to else ""
    flat = message.flat.replace("\n", " | ")
    return f"{where} {message.ts} {who}{message.user}: {flat[:160]}"


def _recent_messages() -> str:
    return "\n".join(fake.describe_recent() for fake in list(_LIVE_FAKES)) or "(no fake Slack)"


# ---------------------------------------------------------------------- waiting


@overload
async def wait_for(
    predicate: Callable[[], bool] | Callable[[], Awaitable[bool]],
    timeout: float = 10,
    what: str = "",
) -> bool: ...


@overload
async def wait_for(
    predicate: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    timeout: float = 10,
    what: str = "",
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any] | Callable[[], Awaitable[Any]],
    timeout: float = 10,
    what: str = "",
) -> Any:
    """Poll `predicate` (sync or async) every 20 ms until it returns something truthy; return it.

    Tests synchronise on outcomes, not sleeps; on timeout the error shows recent messages.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(_timeout_message(what, timeout))
        await asyncio.sleep(0.02)


@overload
def wait_for_sync(predicate: Callable[[], bool], timeout: float = 10, what: str = "") -> bool: ...


@overload
def wait_for_sync(predicate: Callable[[], T | None], timeout: float = 10, what: str = "") -> T: ...


def wait_for_sync(predicate: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    """Blocking twin of wait_for, for sync code such as the sandbox terminal."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(_timeout_message(what, timeout))
        time.sleep(0.02)


def _timeout_message(what: str, timeout: float) -> str:
    return f"timed out after {timeout}s waiting for {what or 'condition'}\n{_recent_messages()}"
