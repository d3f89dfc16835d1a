"""The sandbox world: moto served over HTTP, seeded to match ``example.yml``.

Everything a bot, test or benchmark sees goes through real HTTP, so the world also counts
calls and injects faults server-side, where no client can bypass or fake them.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import fnmatch
import hashlib
import io
import json
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs

import boto3
from botocore.config import Config
from moto.backends import get_backend
from moto.core.base_backend import BackendDict
from moto.core.model_instances import reset_model_data
from moto.moto_api import state_manager
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from bot.sandbox.holds import CallHold
from bot.sandbox.schedules import seed_example_schedules
from bot.sandbox.service_deployments import ServiceDeploymentApi, ServiceDeploymentError
from bot.sandbox.simulator import INSTALLED, RolloutSimulator, UnstartableRule

__all__ = ["InjectedError", "SandboxWorld", "SeededService"]

# WSGI plumbing, typed loosely on purpose: werkzeug is untyped here.
_Environ = dict[str, Any]
_StartResponse = Callable[..., Any]
_WsgiApp = Callable[[_Environ, _StartResponse], Iterable[bytes]]

_INTERNAL_HEADER = "X-Tugboat-Sandbox-Internal"
_INTERNAL_ENVIRON = "HTTP_X_TUGBOAT_SANDBOX_INTERNAL"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_TARGET_PREFIXES = {
    "AmazonEC2ContainerServiceV20141113": "ecs",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "Logs_20140328": "logs",
    "DynamoDB_20120810": "dynamodb",
}
_CBOR_PATH = re.compile(r"^/service/([^/]+)/operation/([^/]+)$")


@dataclass
class InjectedError:
    """One fault rule: which operations it hits, what it returns, and how often."""

    operation: str
    code: str
    message: str
    status: int = 400
    times: int | None = None
    probability: float = 1.0
    after: str | None = None
    """Armed only once a call matching this has been made: a store outage that starts right
    after ``ecs:UpdateService``, whatever the timing."""

    def matches(self, operation: str) -> bool:
        """Operations may be given as patterns (``ecs:*``) so a test can fail a whole service."""
        return fnmatch.fnmatchcase(operation, self.operation)

    def armed(self, seen: Iterable[str]) -> bool:
        return self.after is None or any(fnmatch.fnmatchcase(op, self.after) for op in seen)


@dataclass(frozen=True)
class SeededService:
    """What seeding created, so callers need not rebuild ARNs."""

    cluster: str
    service: str
    service_arn: str
    task_definition_arn: str


@dataclass
class _Request:
    operation: str
    protocol: str  # "json" or "query"


ECS_BUCKETS: dict[str, tuple[float, float, tuple[str, ...]]] = {
    "service read": (100, 20, ("DescribeServices", "ListServices")),
    "service modify": (50, 5, ("UpdateService",)),
    "cluster resource modify": (100, 40, ("RunTask", "StopTask")),
    "cluster resource read": (100, 20, ("DescribeTasks", "ListTasks")),
    "task definition modify": (20, 1, ("RegisterTaskDefinition", "DeregisterTaskDefinition")),
    "task definition read": (50, 20, ("DescribeTaskDefinition",)),
}
"""ECS's token buckets, as AWS documents them: name -> (burst, refill per second, actions)."""


@dataclass
class ThrottleBucket:
    """One of ECS's token buckets as the world keeps it: what is left for Tugboat's calls.

    Other tools hold `others_share` of it: that much of the burst is spent (and stays spent:
    they burst too), and they take that much of every refill, so Tugboat's calls see the rest.
    """

    burst: float
    refill_per_s: float
    others_share: float = 0.0
    tokens: float = 0.0
    updated: float = 0.0

    @classmethod
    def started(cls, burst: float, refill_per_s: float, others_share: float, now: float) -> ThrottleBucket:
        return cls(burst, refill_per_s, others_share, burst * (1.0 - others_share), now)

    def take(self, now: float) -> bool:
        """Spend a token if there is one; False means ECS answers ThrottlingException."""
        left = 1.0 - self.others_share
        refill = self.refill_per_s * left
        self.tokens = min(self.burst * left, self.tokens + max(0.0, now - self.updated) * refill)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class _Ledger:
    """Server-side record of the calls, shared by the middleware's request threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    log: list[tuple[float, str]] = field(default_factory=list)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    faults: list[InjectedError] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)
    buckets: dict[str, ThrottleBucket] | None = None
    """ECS's buckets by action (``ecs:UpdateService``), when enforced; None: unlimited."""
    throttled: collections.Counter[str] = field(default_factory=collections.Counter)

    def over_limit(self, operation: str, now: float) -> bool:
        """Whether ECS would throttle this call now (the caller holds the lock)."""
        bucket = self.buckets.get(operation) if self.buckets is not None else None
        if bucket is None or bucket.take(now):
            return False
        self.throttled[operation] += 1
        return True


def _identify(environ: _Environ) -> _Request | None:
    """Name the AWS operation of a request the way IAM does (``ecs:DescribeServices``)."""
    path = str(environ.get("PATH_INFO", ""))
    if path.startswith("/moto-api"):
        return None
    auth = str(environ.get("HTTP_AUTHORIZATION", ""))
    scope = _CREDENTIAL_SCOPE.search(auth)
    service = scope.group(1) if scope else None
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    if target and "." in target:
        prefix, operation = target.rsplit(".", 1)
        service = service or _TARGET_PREFIXES.get(prefix, prefix)
        return _Request(f"{service}:{operation}", "json")
    cbor = _CBOR_PATH.match(path)
    if cbor:
        return _Request(f"{service or cbor.group(1)}:{cbor.group(2)}", "json")
    action = _query_action(environ)
    if action:
        return _Request(f"{service or 'unknown'}:{action}", "query")
    if service is None:
        return None
    return _Request(f"{service}:{environ.get('REQUEST_METHOD', 'GET')}", "json")


def _query_action(environ: _Environ) -> str | None:
    """Query-protocol services (STS) put ``Action=`` in the form body; re-buffer it for moto."""
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    if "Action" in query:
        return query["Action"][0]
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    if length:
        body: bytes = stream.read(length)
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    form = parse_qs(body.decode("utf-8", errors="replace"))
    return form["Action"][0] if "Action" in form else None


def _error_response(
    request: _Request, start_response: _StartResponse, code: str, message: str, status: int = 400
) -> list[bytes]:
    """Answer in the protocol's own error shape, so botocore raises ClientError with the code."""
    request_id = str(uuid.uuid4())
    if request.protocol == "query":
        body = (
            '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code>"
            f"<Message>{_xml_escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        content_type = "text/xml"
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.1"
    return _respond(start_response, f"{status} Error", body, content_type, request_id, code)


def _respond(
    start_response: _StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    request_id: str,
    error: str | None = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", request_id),
    ]
    if error is not None:
        headers.append(("x-amzn-ErrorType", error))
    start_response(status, headers)
    return [body]


def _json_body(environ: _Environ) -> dict[str, Any]:
    """A JSON-protocol request's parameters (botocore sends ``{}`` when there are none)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    parsed = json.loads(raw or b"{}")
    return parsed if isinstance(parsed, dict) else {}


def _served_response(
    api: ServiceDeploymentApi, request: _Request, environ: _Environ, start_response: _StartResponse
) -> list[bytes]:
    """A call the world answers itself (moto lacks it), in ECS's JSON shapes."""
    try:
        answer = api.answer(request.operation, _json_body(environ))
    except ServiceDeploymentError as error:
        return _error_response(request, start_response, error.code, error.message)
    body = json.dumps(answer).encode()
    return _respond(start_response, "200 OK", body, "application/x-amz-json-1.1", str(uuid.uuid4()))


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _CountingMiddleware:
    """Counts each AWS call, throttles like ECS when asked, and applies injected faults before
    moto sees the request; then moto answers, or the world for the calls moto lacks."""

    def __init__(self, app: _WsgiApp, ledger: _Ledger, served: ServiceDeploymentApi) -> None:
        self._app = app
        self._ledger = ledger
        self._served = served

    def __call__(self, environ: _Environ, start_response: _StartResponse) -> Iterable[bytes]:
        if environ.get(_INTERNAL_ENVIRON):
            return self._answer(_identify(environ), environ, start_response)
        request = _identify(environ)
        if request is None:
            return self._app(environ, start_response)
        ledger = self._ledger
        fault: InjectedError | None = None
        with ledger.lock:
            now = time.monotonic()
            ledger.calls[request.operation] += 1
            ledger.log.append((now, request.operation))
            if ledger.over_limit(request.operation, now):
                return _error_response(request, start_response, "ThrottlingException", "Rate exceeded")
            for rule in ledger.faults:
                if rule.times is not None and rule.times <= 0:
                    continue
                if not rule.matches(request.operation) or not rule.armed(ledger.calls):
                    continue
                if ledger.rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                ledger.injected[f"{request.operation}:{rule.code}"] += 1
                fault = rule
                break
        if fault is not None:
            return _error_response(request, start_response, fault.code, fault.message, fault.status)
        return self._answer(request, environ, start_response)

    def _answer(
        self, request: _Request | None, environ: _Environ, start_response: _StartResponse
    ) -> Iterable[bytes]:
        if request is not None and self._served.serves(request.operation):
            return _served_response(self._served, request, environ, start_response)
        return self._app(environ, start_response)


class _QuietRequestHandler(MotoRequestHandler):
    """No access log line per request: benchmarks make thousands of calls."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _CountingMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer whose WSGI app is wrapped by the counting middleware."""

    def __init__(self, ledger: _Ledger, port: int, served: ServiceDeploymentApi) -> None:
        super().__init__(ip_address="127.0.0.1", port=port, verbose=False)
        self._ledger = ledger
        self._served = served

    def _server_entry(self) -> None:
        # Same as the parent, plus the middleware around the app.
        app = _CountingMiddleware(DomainDispatcherApplication(create_backend_app), self._ledger, self._served)
        self._server = make_server(
            self._ip_address, self._port, app, True, request_handler=_QuietRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()


def _manifest(repository: str, tag: str) -> str:
    """A valid-looking Docker v2 manifest, unique per repository:tag so digests differ."""

    def digest(kind: str) -> str:
        return "sha256:" + hashlib.sha256(f"{kind}:{repository}:{tag}".encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": digest("config"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 32654 + i * 1000,
                    "digest": digest(f"layer{i}"),
                }
                for i in range(3)
            ],
        }
    )


class SandboxWorld:
    """A moto server plus the rollout simulator: the ECS world the sandbox bot talks to."""

    EXAMPLE_SHAS: tuple[str, ...] = (
        "3f2a9c1e7b4d6f8a0c2e4b6d8f1a3c5e7b9d0f2a",
        "8c41d07e2b9f3a6c5d1e0f7b4a2c9e8d6f3b1a05",
        "b7e6d5c4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e9d8",
    )
    EXAMPLE_TAGS: tuple[str, ...] = ("v1", "v2", "v3", "broken")
    EXAMPLE_REPOSITORY = "acme/api"
    CANARY_REPOSITORY = "acme/shop"

    def __init__(
        self,
        rollout_seconds: float = 2.0,
        tick: float = 0.1,
        *,
        task_seconds: float = 1.0,
        minute_seconds: float = 6.0,
        seed: int | None = None,
        port: int = 0,
    ) -> None:
        self.region = "us-east-1"
        self.port = port
        self.account_id = "123456789012"
        self._ledger = _Ledger(rng=random.Random(seed))
        self._server: _CountingMotoServer | None = None
        self._endpoint_url: str | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()
        self._network_config: dict[str, Any] | None = None
        self._holds: list[CallHold] = []
        self._example: _SavedExample | None = None
        self.simulator = RolloutSimulator(
            account_id=self.account_id,
            region=self.region,
            rollout_seconds=rollout_seconds,
            tick=tick,
            task_seconds=task_seconds,
            minute_seconds=minute_seconds,
            seed=seed,
        )
        self.service_deployments = ServiceDeploymentApi(self.simulator)
        """Answers ECS's service deployment calls, which moto lacks (``hold`` can stop them)."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Serve an empty moto (its state is process-global) and start simulating.

        One-off task transitions are pinned to manual so the simulator decides when they stop.
        """
        if self._server is not None:
            return
        server = _CountingMotoServer(self._ledger, self.port, self.service_deployments)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"
        # moto's state is process-global: start every world empty.
        self._pin_task_transitions()
        reset = f"{self._endpoint_url}/moto-api/reset"
        request = urllib.request.Request(reset, method="POST")  # noqa: S310 - our own http URL
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass
        self.simulator.start()

    def reset(
        self,
        rollout_seconds: float = 2.0,
        tick: float = 0.1,
        *,
        task_seconds: float = 1.0,
        minute_seconds: float = 6.0,
        seed: int | None = None,
    ) -> None:
        """Empty the running world, as a new ``SandboxWorld(...)`` would start, without a restart.

        Every moto backend is emptied while the simulator is held still, except EC2's default
        network, which seeding only reads (rebuilding it is half of a reset's cost): its network
        interfaces go, as the tasks they belonged to did. The simulator forgets its rollouts,
        scripts, rules and pause and takes the new knobs; call counts and injected faults are
        cleared. Seed again afterwards (``seed_example()``).
        """
        self._reset(rollout_seconds, tick, task_seconds, minute_seconds, seed, self._empty_backends)

    def reset_to_example(
        self,
        rollout_seconds: float = 2.0,
        tick: float = 0.1,
        *,
        task_seconds: float = 1.0,
        minute_seconds: float = 6.0,
    ) -> None:
        """`reset()` then `seed_example()`, in a fraction of the time after the first: what the
        first seeding left in moto's backends (and in the simulator) is saved, and put back."""
        saved = self._example
        if saved is None:
            self.reset(rollout_seconds, tick, task_seconds=task_seconds, minute_seconds=minute_seconds)
            self.seed_example()
            self._example = self._save_example()
            self.reset_calls()
            return
        self._reset(rollout_seconds, tick, task_seconds, minute_seconds, None, lambda: self._put_back(saved))
        self.simulator.restore_state(saved.simulator)

    def _reset(
        self,
        rollout_seconds: float,
        tick: float,
        task_seconds: float,
        minute_seconds: float,
        seed: int | None,
        wipe: Callable[[], None],
    ) -> None:
        """What every reset does: holds released, faults, buckets and counts cleared, and the
        simulator reset while `wipe` empties (or refills) moto's backends under its lock."""
        if self._server is None:
            raise RuntimeError("SandboxWorld.start() has not been called")
        self.release_holds()
        with self._ledger.lock:
            self._ledger.faults.clear()
            self._ledger.rng = random.Random(seed)
            self._ledger.buckets = None
        self.simulator.reset(
            rollout_seconds=rollout_seconds,
            tick=tick,
            task_seconds=task_seconds,
            minute_seconds=minute_seconds,
            seed=seed,
            wipe=wipe,
        )
        self.reset_calls()

    def _save_example(self) -> _SavedExample:
        backends: dict[tuple[str, str, str], dict[str, Any]] = {}
        for key, backend in _loaded_backends():
            memo = {id(backend): backend}
            kept: dict[str, Any] = {}
            for name, value in backend.__dict__.items():
                if name in INSTALLED or (key[0] == "ec2" and name != "enis"):
                    continue  # the simulator's own wrappers; EC2's network is never reset
                try:
                    kept[name] = copy.deepcopy(value, memo)
                except TypeError:
                    continue  # a lock: the backend keeps its own
            backends[key] = kept
        return _SavedExample(backends, self.simulator.saved_state())

    def _put_back(self, saved: _SavedExample) -> None:
        """Empty every backend as `reset()` does, then give the seeded ones their saved state."""
        self._empty_backends()
        for key, backend in _loaded_backends():
            state = saved.backends.get(key)
            if state is not None:
                backend.__dict__.update(copy.deepcopy(state, {id(backend): backend}))

    def _pin_task_transitions(self) -> None:
        """One-off task transitions stay manual, so the simulator decides when tasks stop."""
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )

    def _empty_backends(self) -> None:
        """moto's own per-backend reset (what ``/moto-api/reset`` does), EC2's network kept."""
        self._pin_task_transitions()  # process-global and kept by resets; a test may have moved it
        loaded: list[Any] = list(BackendDict._instances)  # type: ignore[misc] # moto's own registry
        for backends in loaded:
            if backends.service_name in ("ec2", "moto_api"):
                continue
            for account in list(backends.values()):
                account.reset()
        ec2 = get_backend("ec2")[self.account_id][self.region]
        ec2.enis = {}
        reset_model_data()  # moto's dashboard record of every model: it would only grow

    def stop(self) -> None:
        """Stop the simulator first, so it never edits a backend nobody serves."""
        self.simulator.stop()
        self._example = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._clients = {}
        self._network_config = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("SandboxWorld.start() has not been called")
        return self._endpoint_url

    # -- clients ---------------------------------------------------------------------------

    def client(self, service_name: str, *, config: Config | None = None) -> Any:
        """A new boto3 client pointed at the world; its calls are counted like the bot's.

        Clients come from one session, which keeps the service models it has loaded: a client
        then costs milliseconds, not a tenth of a second. (Making clients is not thread-safe;
        the clients are.)
        """
        with self._session_lock:
            return self._session.client(
                service_name,
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto's dummy credentials
                config=config,
            )

    def _internal(self, service_name: str) -> Any:
        """A client for the world's own seeding; the middleware does not count its calls."""
        with self._clients_lock:
            client = self._clients.get(service_name)
            if client is None:
                client = self.client(service_name)
                client.meta.events.register("request-created", _mark_internal)
                self._clients[service_name] = client
            return client

    def env(self) -> dict[str, str]:
        """Environment for a bot subprocess: boto3 honours AWS_ENDPOINT_URL."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }

    # -- call counting ---------------------------------------------------------------------

    def calls(self) -> collections.Counter[str]:
        """Calls per ``service:Operation`` since the last reset, injected failures included."""
        with self._ledger.lock:
            return collections.Counter(self._ledger.calls)

    def call_log(self) -> list[tuple[float, str]]:
        """``(time.monotonic(), "ecs:DescribeServices")`` per call, for rates over time."""
        with self._ledger.lock:
            return list(self._ledger.log)

    def reset_calls(self) -> None:
        with self._ledger.lock:
            self._ledger.calls.clear()
            self._ledger.log.clear()
            self._ledger.injected.clear()
            self._ledger.throttled.clear()

    # -- ECS's throttling ------------------------------------------------------------------

    def enforce_buckets(self, prespent: float = 0.0, *, speed: float = 1.0) -> None:
        """Throttle counted ECS calls as ECS does, per bucket (``ECS_BUCKETS``), from now on.

        `prespent`: the share of each bucket other tools use: that much of the burst is gone,
        and they take that much of every refill. `speed` > 1 refills that many times faster,
        so a test sees a minute of ECS's pacing in seconds. Off until called; `reset()` ends it.
        """
        if not 0.0 <= prespent < 1.0:
            raise ValueError(f"prespent must be in [0, 1), not {prespent}")
        now = time.monotonic()
        buckets: dict[str, ThrottleBucket] = {}
        for burst, refill, actions in ECS_BUCKETS.values():
            bucket = ThrottleBucket.started(burst, refill * speed, prespent, now)
            buckets.update((f"ecs:{action}", bucket) for action in actions)
        with self._ledger.lock:
            self._ledger.buckets = buckets

    def stop_enforcing_buckets(self) -> None:
        with self._ledger.lock:
            self._ledger.buckets = None

    def throttled(self) -> collections.Counter[str]:
        """Calls answered ThrottlingException by the enforced buckets, per ``service:Operation``."""
        with self._ledger.lock:
            return collections.Counter(self._ledger.throttled)

    # -- fault injection -------------------------------------------------------------------

    def inject_error(
        self,
        operation: str,
        code: str,
        message: str = "",
        status: int = 400,
        times: int | None = None,
        probability: float = 1.0,
        after: str | None = None,
    ) -> InjectedError:
        """Fail matching calls server-side (``times=None``: until cleared; ``after``: see InjectedError)."""
        rule = InjectedError(operation, code, message or code, status, times, probability, after)
        with self._ledger.lock:
            self._ledger.faults.append(rule)
        return rule

    def clear_errors(self) -> None:
        with self._ledger.lock:
            self._ledger.faults.clear()

    def injected(self) -> collections.Counter[str]:
        """Injected failures per ``service:Operation:Code``."""
        with self._ledger.lock:
            return collections.Counter(self._ledger.injected)

    # -- ECS events (EventBridge to SQS) ---------------------------------------------------

    def enable_events(self, queue_name: str = "tugboat-events") -> str:
        """What deploy/cloudformation.yml sets up: a rule for ECS's events feeding an SQS queue.

        From now on the simulator publishes ECS's event shapes to the world's EventBridge,
        whose rule delivers them to the queue (not counted: ECS's own traffic). Returns the
        queue URL (TUGBOAT_EVENTS_QUEUE). `reset()` stops publishing.

        The rule sits on a bus of its own, not the default one: moto matches every event with
        rules that have no pattern (schedules), and fails on their ECS targets.
        """
        sqs, events = self._internal("sqs"), self._internal("events")
        with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
            events.create_event_bus(Name="ecs-events")
        url = str(sqs.create_queue(QueueName=queue_name)["QueueUrl"])
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        detail_types = [
            "ECS Deployment State Change",
            "ECS Service Action",
            "ECS Task State Change",
            "ECS Hook State Change",
        ]
        pattern = {"source": ["aws.ecs"], "detail-type": detail_types}
        rule, bus = f"{queue_name}-ecs", "ecs-events"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern), State="ENABLED")
        target = {"Id": "queue", "Arn": attributes["QueueArn"]}
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[target])
        self.simulator.publish_events(self._put_events)
        return url

    def _put_events(self, entries: list[dict[str, Any]]) -> None:
        """The simulator's events, into the world's EventBridge (ten per PutEvents, its limit)."""
        events = self._internal("events")
        on_bus = [{**entry, "EventBusName": "ecs-events"} for entry in entries]
        for start in range(0, len(on_bus), 10):
            events.put_events(Entries=on_bus[start : start + 10])

    def delete_events_queue(self, url: str) -> None:
        """An outage of the events feed: the queue is gone, and ReceiveMessage fails from now on."""
        self._internal("sqs").delete_queue(QueueUrl=url)

    # -- seeding ---------------------------------------------------------------------------

    def mark_unstartable(self, rule: UnstartableRule, *, container: str | None = None) -> None:
        """Make tasks whose essential image tag matches fail to start (default: ``broken*``);
        with `container`, only containers of that name."""
        self.simulator.mark_unstartable(rule, container=container)

    def push_image(self, repository: str, tag: str, *, built_from: str | None = None) -> str:
        """Put an image as CI would (creating the repository if needed); returns its digest.

        `built_from` (default: the tag) picks the content: pushing new content under an old tag
        moves the tag to a new digest, as a rebuilt image does.
        """
        ecr = self._internal("ecr")
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(repositoryName=repository)
        image = ecr.put_image(
            repositoryName=repository,
            imageManifest=_manifest(repository, built_from or tag),
            imageManifestMediaType="application/vnd.docker.distribution.manifest.v2+json",
            imageTag=tag,
        )["image"]
        return str(image["imageId"]["imageDigest"])

    def _network(self) -> dict[str, Any]:
        """The default VPC's subnets and security group, as the example services use."""
        if self._network_config is not None:
            return self._network_config
        ec2 = self._internal("ec2")
        subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
        groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])
        vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
        group_ids = [g["GroupId"] for g in groups["SecurityGroups"] if g["VpcId"] == vpc["VpcId"]]
        self._network_config = {
            "awsvpcConfiguration": {
                "subnets": [s["SubnetId"] for s in subnets["Subnets"]],
                "securityGroups": group_ids[:1],
                "assignPublicIp": "DISABLED",
            }
        }
        return self._network_config

    def default_containers(
        self, image: str, *, log_group: str, stream_prefix: str, environment: str
    ) -> list[dict[str, Any]]:
        """The example app's pair: an essential ``web`` plus a ``log-router`` sidecar."""
        return [
            {
                "name": "web",
                "image": image,
                "essential": True,
                "memory": 512,
                "cpu": 256,
                "command": ["bin/rails", "server", "-p", "8080"],
                "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
                "environment": [
                    {"name": "RAILS_ENV", "value": environment},
                    {"name": "PORT", "value": "8080"},
                    {"name": "RAILS_LOG_TO_STDOUT", "value": "1"},
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": log_group,
                        "awslogs-region": self.region,
                        "awslogs-stream-prefix": stream_prefix,
                    },
                },
            },
            {
                "name": "log-router",
                "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.0",
                "essential": False,
                "memory": 128,
                "cpu": 0,
                "firelensConfiguration": {"type": "fluentbit"},
            },
        ]

    def seed_service(
        self,
        cluster: str,
        service: str,
        family: str,
        image: str,
        *,
        desired: int = 2,
        containers: list[dict[str, Any]] | None = None,
        circuit_breaker: bool = True,
        deployment_configuration: dict[str, Any] | None = None,
    ) -> SeededService:
        """Create a steady Fargate service (cluster, log groups, task definition included).

        `deployment_configuration` is laid over the default (rolling, circuit breaker on), such as
        a ``strategy`` of BLUE_GREEN, LINEAR or CANARY with its ``lifecycleHooks``."""
        ecs = self._internal("ecs")
        logs = self._internal("logs")
        ecs.create_cluster(clusterName=cluster)
        if containers is None:
            containers = self.default_containers(
                image, log_group=f"/ecs/{family}", stream_prefix=service, environment=cluster
            )
        for group in _log_groups(containers):
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=group)
        task_definition = ecs.register_task_definition(
            family=family,
            containerDefinitions=containers,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="512",
            memory="1024",
            executionRoleArn=f"arn:aws:iam::{self.account_id}:role/ecsTaskExecutionRole",
            taskRoleArn=f"arn:aws:iam::{self.account_id}:role/{family}-task",
        )["taskDefinition"]
        created = ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=task_definition["taskDefinitionArn"],
            desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration=self._network(),
        )["service"]
        ecs.update_service(
            cluster=cluster,
            service=service,
            deploymentConfiguration={
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {
                    "enable": circuit_breaker,
                    "rollback": circuit_breaker,
                },
                **(deployment_configuration or {}),
            },
        )
        self.simulator.settle(cluster, service)
        return SeededService(
            cluster=cluster,
            service=service,
            service_arn=str(created["serviceArn"]),
            task_definition_arn=str(task_definition["taskDefinitionArn"]),
        )

    def seed_estate(self, clusters: int, per_cluster: int, image: str) -> list[tuple[str, str]]:
        """A large estate, quickly: `clusters` clusters (`estate0`…) of `per_cluster` steady
        one-task services (`svc0`…), which share one task definition per cluster."""
        ecs = self._internal("ecs")
        seeded = []
        for c in range(clusters):
            cluster = f"estate{c}"
            ecs.create_cluster(clusterName=cluster)
            arn = ecs.register_task_definition(
                family=cluster,
                containerDefinitions=[{"name": "web", "image": image, "essential": True, "memory": 512}],
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu="256",
                memory="512",
            )["taskDefinition"]["taskDefinitionArn"]
            for s in range(per_cluster):
                service = f"svc{c * per_cluster + s}"
                ecs.create_service(
                    cluster=cluster,
                    serviceName=service,
                    taskDefinition=arn,
                    desiredCount=1,
                    launchType="FARGATE",
                    networkConfiguration=self._network(),
                )
                self.simulator.settle(cluster, service)
                seeded.append((cluster, service))
        return seeded

    def seed_example(self) -> dict[str, SeededService]:
        """Create what ``example.yml`` describes: images, log groups, and in staging and
        production the release of ``api`` and ``api-worker``. Returns each environment's ``api``."""
        for tag in (*self.EXAMPLE_TAGS, *self.EXAMPLE_SHAS):
            self.push_image(self.EXAMPLE_REPOSITORY, tag)
        image = f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.EXAMPLE_REPOSITORY}"
        seeded = {}
        for environment in ("staging", "production"):
            seeded[environment] = self.seed_service(environment, "api", f"api-{environment}", f"{image}:v1")
            self.seed_worker(environment)
        seed_example_schedules(self, seeded["staging"], seeded["production"])
        self.seed_canary()
        return seeded

    def seed_canary(self) -> SeededService:
        """The example's ``shop`` in production: an ECS canary (10%, then the rest) that pauses
        after test traffic for someone to press Continue, and rolls back if nobody does."""
        for tag in self.EXAMPLE_TAGS[:3]:
            self.push_image(self.CANARY_REPOSITORY, tag)
        image = f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.CANARY_REPOSITORY}:v1"
        pause = {
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 30, "action": "ROLLBACK"},
        }
        canary = {
            "strategy": "CANARY",
            "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 1},
            "bakeTimeInMinutes": 1,
            "lifecycleHooks": [pause],
        }
        return self.seed_service(
            "production", "shop", "shop-production", image, deployment_configuration=canary
        )

    def seed_worker(self, environment: str, *, desired: int = 1) -> SeededService:
        """The example app's second service, ``api-worker`` in `environment`'s cluster: the same
        image as ``api``, run as a ``worker`` container beside a log-router sidecar."""
        image = f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com/{self.EXAMPLE_REPOSITORY}:v1"
        family = f"api-worker-{environment}"
        containers = self.default_containers(
            image, log_group=f"/ecs/{family}", stream_prefix="api-worker", environment=environment
        )
        worker = {**containers[0], "name": "worker", "command": ["bin/worker"]}
        worker.pop("portMappings", None)
        return self.seed_service(
            environment, "api-worker", family, image, desired=desired, containers=[worker, containers[1]]
        )

    def internal_client(self, service_name: str) -> Any:
        """A client for seeding the world: its calls are not counted as the bot's."""
        return self._internal(service_name)

    def network(self) -> dict[str, Any]:
        """The network configuration the example services (and their schedules) use."""
        return self._network()

    def hold(self, service_name: str, method: str, times: int = 1) -> CallHold:
        """Stop the next `times` calls of a moto backend method (``"scheduler", "get_schedule"``)
        until ``release()``: a fault at an exact moment, waited on with ``reached``. ECS's service
        deployment calls are the world's own (``"ecs", "continue_service_deployment"``)."""
        owner: type[Any]
        if service_name == "ecs" and method in ServiceDeploymentApi.OPERATIONS.values():
            owner = ServiceDeploymentApi
        else:
            owner = type(get_backend(service_name)[self.account_id][self.region])  # type: ignore[call-overload]
        hold = CallHold(owner, method, times)
        self._holds.append(hold)
        return hold

    def release_holds(self) -> None:
        while self._holds:
            self._holds.pop().release()


@dataclass(frozen=True)
class _SavedExample:
    """moto's backends and the simulator's state right after `seed_example()`."""

    backends: dict[tuple[str, str, str], dict[str, Any]]
    simulator: dict[str, Any]


def _loaded_backends() -> Iterator[tuple[tuple[str, str, str], Any]]:
    """Every moto backend this process has loaded, by (service, account, region)."""
    loaded: list[Any] = list(BackendDict._instances)  # type: ignore[misc] # moto's own registry
    for backends in loaded:
        if backends.service_name == "moto_api":
            continue
        for account_id, account in list(backends.items()):
            for region, backend in list(account.items()):
                yield (str(backends.service_name), str(account_id), str(region)), backend


def _mark_internal(request: Any, **_: Any) -> None:
    request.headers[_INTERNAL_HEADER] = "1"


def _log_groups(containers: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    for container in containers:
        options = (container.get("logConfiguration") or {}).get("options") or {}
        if "awslogs-group" in options:
            yield str(options["awslogs-group"])


def main(argv: list[str] | None = None) -> int:
    """Run a seeded world in its own process, for restart tests; SIGTERM stops it."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.world")
    parser.add_argument("--rollout-seconds", type=float, default=2.0)
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with SandboxWorld(args.rollout_seconds, args.tick, port=args.port) as world:
        world.seed_example()
        line = {
            "endpoint_url": world.endpoint_url,
            "region": world.region,
            "account_id": world.account_id,
            "pid": os.getpid(),
            "env": world.env(),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not done.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
