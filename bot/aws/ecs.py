"""EcsGateway: every AWS call Tugboat makes, run off the event loop, retried with jitter.

boto3 is blocking, so each call runs in a bounded thread pool. botocore's own retries are off:
`EcsGateway.call` is the one retry layer, so each attempt is one HTTP request, counted once.
Throttling and dropped connections get full-jitter backoff within a per-call budget, and
anything else ends the call at once with AWS's own message. Each ECS attempt first takes a
token from Tugboat's share of the ECS bucket it draws on (`bot.aws.buckets`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from bot import metrics
from bot.aws.assume_role import AssumeRoleFailed, assumed_session
from bot.aws.buckets import EcsBuckets
from bot.aws.ecs_limits import EcsLimits
from bot.backoff import full_jitter
from bot.domain.aws import (
    AwsError,
    ServiceNotFound,
    ServiceRef,
    ServiceSnapshot,
    family_of,
)
from bot.domain.gates import ServiceDeploymentState

log = logging.getLogger(__name__)

# One attempt per botocore call: our loop in EcsGateway.call is the only retry layer.
BOTO_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=20
)


def chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class CallBudget:
    """At most `rate` ECS calls a second, one at a time in arrival order, across every caller.

    The optional overall ceiling of TUGBOAT_ECS_CALLS_PER_SECOND, kept for deployments that set
    it; ECS's own limits are per bucket, and `EcsBuckets` paces those. Arrival order
    (asyncio.Lock is FIFO) means no caller can starve another.
    """

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


class EcsGateway:
    """The only door to AWS. Clients are made once per (service, region, role) and reused.

    `limits` (ECS's buckets) with `share` (Tugboat's part of each) paces every ECS call per
    bucket; None paces nothing (tests). `ecs_calls_per_s` > 0 adds one overall ceiling.
    """

    def __init__(
        self,
        *,
        max_workers: int = 16,
        budget_s: float = 60.0,
        ecs_calls_per_s: float = 0.0,
        limits: EcsLimits | None = None,
        share: float = 0.5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 20.0,
        session_factory: Callable[[], boto3.session.Session] = boto3.session.Session,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aws")
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._client_lock = threading.Lock()
        self._session_factory = session_factory
        self._budget_s = budget_s
        self._ecs_budget = CallBudget(ecs_calls_per_s) if ecs_calls_per_s > 0 else None
        self.buckets = EcsBuckets(limits, share) if limits is not None else None
        self._recent: dict[str, tuple[float, ServiceSnapshot]] = {}  # by ref.key: when, what
        self._backoff_base_s = backoff_base_s
        self._backoff_cap_s = backoff_cap_s

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- plumbing --------------------------------------------------------------------------

    def _client(self, service: str, region: str, role_arn: str | None) -> Any:
        key = (service, region, role_arn)
        with self._client_lock:
            client = self._clients.get(key)
            if client is None:
                session = self._session_factory()
                if role_arn is not None:
                    session = assumed_session(session, role_arn, region, config=BOTO_CONFIG)
                client = session.client(service, region_name=region, config=BOTO_CONFIG)
                self._clients[key] = client
            return client

    def _blocking_call(
        self,
        service: str,
        region: str,
        role_arn: str | None,
        operation: str,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        client = self._client(service, region, role_arn)
        method = getattr(client, operation)
        try:
            result = method(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            metrics.AWS_CALLS.labels(operation=operation, code=code).inc()
            raise AwsError(operation, code, str(error.get("Message", exc))) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            metrics.AWS_CALLS.labels(operation=operation, code="ConnectionError").inc()
            raise AwsError(operation, "ConnectionError", str(exc)) from None
        except AssumeRoleFailed as exc:  # counted as assume_role; this request was never sent
            raise AwsError(operation, exc.code, f"assuming {role_arn}: {exc}") from None
        except BotoCoreError as exc:  # missing credentials, region or parameters: nothing sent
            raise AwsError(operation, type(exc).__name__, str(exc)) from None
        metrics.AWS_CALLS.labels(operation=operation, code="OK").inc()
        return cast(dict[str, Any], result)

    async def call(
        self,
        aws_service: str,
        region: str,
        operation: str,
        /,
        *,
        role_arn: str | None = None,
        retry: bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run one AWS operation in the pool; retry throttling with full jitter in budget.

        Each ECS attempt waits its turn in its bucket, so retries count against it too, and a
        throttle slows that bucket down. The retry budget runs from the first attempt sent:
        time queued behind other deploys is pacing, not failure. `retry=False`: one attempt
        (the caller backs off itself). `idempotent=False`: throttling is retried (AWS refused
        the call, nothing ran) but a dropped connection is not, since the call may have run.
        """
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        attempt = 0
        bucket = None
        if aws_service == "ecs" and self.buckets is not None:
            bucket = self.buckets.budget(region, role_arn, operation)
        while True:
            sent_at = await bucket.take() if bucket is not None else 0.0
            if aws_service == "ecs" and self._ecs_budget is not None:
                await self._ecs_budget.take()
            if deadline is None:
                deadline = time.monotonic() + self._budget_s
            try:
                return await loop.run_in_executor(
                    self._pool,
                    self._blocking_call,
                    aws_service,
                    region,
                    role_arn,
                    operation,
                    kwargs,
                )
            except AwsError as exc:
                if bucket is not None and exc.throttled:
                    bucket.throttled(sent_at)
                retryable = exc.throttled or (exc.code == "ConnectionError" and idempotent)
                attempt += 1
                delay = full_jitter(attempt, base_s=self._backoff_base_s, cap_s=self._backoff_cap_s)
                if not retry or not retryable or time.monotonic() + delay > deadline:
                    raise
                log.info(
                    "aws call retried",
                    extra={"operation": operation, "code": exc.code, "attempt": attempt},
                )
                metrics.AWS_RETRIES.labels(operation=operation).inc()
                await asyncio.sleep(delay)

    async def ecs(
        self,
        ref: ServiceRef,
        operation: str,
        /,
        *,
        retry: bool = True,
        idempotent: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return await self.call(
            "ecs", ref.region, operation, role_arn=ref.role_arn, retry=retry, idempotent=idempotent, **kwargs
        )

    # -- services --------------------------------------------------------------------------

    async def describe_services(
        self, refs: list[ServiceRef], *, retry: bool = True, fresh_within_s: float = 0.0
    ) -> dict[str, ServiceSnapshot]:
        """Snapshots by ref.key; at most 10 services per call, as ECS requires.

        `fresh_within_s` > 0 takes any snapshot described that recently (by anyone, the
        watcher included) instead of asking again: overviews of hundreds of services, opened
        by many people, then cost their bucket little.
        """
        found: dict[str, ServiceSnapshot] = {}
        if fresh_within_s > 0:
            since = time.monotonic() - fresh_within_s
            for ref in refs:
                recent = self._recent.get(ref.key)
                if recent is not None and recent[0] >= since:
                    found[ref.key] = recent[1]
            refs = [ref for ref in refs if ref.key not in found]
        groups: dict[tuple[str, str, str | None], list[ServiceRef]] = {}
        for ref in refs:
            groups.setdefault((ref.region, ref.cluster, ref.role_arn), []).append(ref)
        batches = [
            (members, names)
            for members in groups.values()
            for names in chunks(sorted({r.service for r in members}), 10)
        ]

        async def one(members: list[ServiceRef], names: list[str]) -> dict[str, Any]:
            return await self.ecs(
                members[0], "describe_services", retry=retry, cluster=members[0].cluster, services=names
            )

        # The batches at once: an overview of hundreds of services waits for its bucket, not
        # for each answer in turn.
        answers = await asyncio.gather(*(one(members, names) for members, names in batches))
        described = time.monotonic()
        for (members, _names), answer in zip(batches, answers, strict=True):
            by_name = {r.service: r for r in members}
            for raw in answer.get("services", []):
                match = by_name.get(str(raw.get("serviceName")))
                if match is not None and raw.get("status") == "ACTIVE":
                    found[match.key] = self._remember(ServiceSnapshot.parse(match, raw), described)
        return found

    def _remember(self, snapshot: ServiceSnapshot, at: float) -> ServiceSnapshot:
        """Keep the latest snapshot of each service (one per catalog entry, so bounded)."""
        self._recent[snapshot.ref.key] = (at, snapshot)
        return snapshot

    async def describe_service(self, ref: ServiceRef) -> ServiceSnapshot:
        found = await self.describe_services([ref])
        if ref.key not in found:
            raise ServiceNotFound.of(ref)
        return found[ref.key]

    async def update_service(self, ref: ServiceRef, task_definition: str) -> ServiceSnapshot:
        answer = await self.ecs(
            ref,
            "update_service",
            cluster=ref.cluster,
            service=ref.service,
            taskDefinition=task_definition,
        )
        return ServiceSnapshot.parse(ref, answer["service"])

    async def scale_service(self, ref: ServiceRef, desired: int) -> ServiceSnapshot:
        answer = await self.ecs(
            ref, "update_service", cluster=ref.cluster, service=ref.service, desiredCount=desired
        )
        return ServiceSnapshot.parse(ref, answer["service"])

    async def force_new_deployment(self, ref: ServiceRef) -> ServiceSnapshot:
        # Not idempotent: a retry after an unanswered call would start a second deployment.
        answer = await self.ecs(
            ref,
            "update_service",
            idempotent=False,
            cluster=ref.cluster,
            service=ref.service,
            forceNewDeployment=True,
        )
        return ServiceSnapshot.parse(ref, answer["service"])

    # -- blue/green, linear and canary deployments -------------------------------------------

    async def service_deployments(self, ref: ServiceRef, *, in_progress: bool) -> list[str]:
        statuses = ["PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"]
        filters: dict[str, Any] = {"status": statuses} if in_progress else {}
        answer = await self.ecs(
            ref, "list_service_deployments", cluster=ref.cluster, service=ref.service, **filters
        )
        return [str(d["serviceDeploymentArn"]) for d in answer.get("serviceDeployments") or []]

    async def describe_service_deployments(
        self, ref: ServiceRef, arns: list[str]
    ) -> dict[str, ServiceDeploymentState]:
        """Up to 20 deployments in one call (the watcher's batch), by ARN."""
        answer = await self.ecs(ref, "describe_service_deployments", retry=False, serviceDeploymentArns=arns)
        states = (ServiceDeploymentState.parse(d) for d in answer.get("serviceDeployments") or [])
        return {state.arn: state for state in states}

    async def describe_service_deployment(self, ref: ServiceRef, arn: str) -> ServiceDeploymentState | None:
        answer = await self.ecs(ref, "describe_service_deployments", serviceDeploymentArns=[arn])
        found = answer.get("serviceDeployments") or []
        return ServiceDeploymentState.parse(found[0]) if found else None

    async def continue_service_deployment(self, ref: ServiceRef, arn: str, hook_id: str, action: str) -> None:
        await self.ecs(
            ref,
            "continue_service_deployment",
            idempotent=False,
            serviceDeploymentArn=arn,
            hookId=hook_id,
            action=action,
        )

    async def stop_service_deployment(self, ref: ServiceRef, arn: str, stop_type: str) -> None:
        await self.ecs(
            ref, "stop_service_deployment", idempotent=False, serviceDeploymentArn=arn, stopType=stop_type
        )

    # -- task definitions ------------------------------------------------------------------

    async def describe_task_definition(self, ref: ServiceRef, arn: str) -> dict[str, Any]:
        answer = await self.ecs(ref, "describe_task_definition", taskDefinition=arn, include=["TAGS"])
        definition = dict(answer["taskDefinition"])
        if answer.get("tags"):
            definition["tags"] = answer["tags"]
        return definition

    async def register_task_definition(self, ref: ServiceRef, spec: dict[str, Any]) -> dict[str, Any]:
        answer = await self.ecs(ref, "register_task_definition", idempotent=False, **spec)
        return cast(dict[str, Any], answer["taskDefinition"])

    async def list_revisions(self, ref: ServiceRef, family: str, limit: int = 10) -> list[str]:
        answer = await self.ecs(
            ref,
            "list_task_definitions",
            familyPrefix=family,
            status="ACTIVE",
            sort="DESC",
            maxResults=limit,
        )
        return [a for a in answer.get("taskDefinitionArns", []) if family_of(a) == family]

    # -- images ----------------------------------------------------------------------------

    async def image_digest(self, region: str, repository: str, tag: str, role: str | None) -> str | None:
        """The digest the tag points at now, or None when there is no such image."""
        try:
            answer = await self.call(
                "ecr",
                region,
                "describe_images",
                role_arn=role,
                repositoryName=repository,
                imageIds=[{"imageTag": tag}],
            )
        except AwsError as exc:
            if exc.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return None
            raise
        details = answer.get("imageDetails") or [{}]
        return str(details[0].get("imageDigest") or "unknown")

    async def image_exists(self, region: str, repository: str, tag: str, role: str | None) -> bool:
        return await self.image_digest(region, repository, tag, role) is not None

    async def image_tags(self, region: str, repository: str, role: str | None) -> list[str]:
        """Every tag in the repository (paginated), for resolving short git shas."""
        tags: list[str] = []
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"nextToken": token} if token else {}
            answer = await self.call(
                "ecr",
                region,
                "list_images",
                role_arn=role,
                repositoryName=repository,
                filter={"tagStatus": "TAGGED"},
                maxResults=1000,
                **extra,
            )
            tags.extend(str(i["imageTag"]) for i in answer.get("imageIds", []) if "imageTag" in i)
            token = answer.get("nextToken")
            if not token:
                return tags

    # -- one-off tasks ---------------------------------------------------------------------

    async def run_task(self, ref: ServiceRef, **kwargs: Any) -> dict[str, Any]:
        answer = await self.ecs(ref, "run_task", idempotent=False, cluster=ref.cluster, **kwargs)
        failures = answer.get("failures") or []
        if failures or not answer.get("tasks"):
            reason = "; ".join(f"{f.get('arn', '')} {f.get('reason', '')}".strip() for f in failures)
            raise AwsError("RunTask", "TaskNotStarted", reason or "ECS started no task")
        return cast(dict[str, Any], answer["tasks"][0])

    async def describe_tasks(self, ref: ServiceRef, arns: list[str]) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        for batch in chunks(arns, 100):
            answer = await self.ecs(ref, "describe_tasks", cluster=ref.cluster, tasks=batch)
            tasks.extend(answer.get("tasks", []))
        return tasks

    async def stop_task(self, ref: ServiceRef, arn: str, reason: str) -> None:
        await self.ecs(ref, "stop_task", cluster=ref.cluster, task=arn, reason=reason[:255])

    async def stopped_tasks(self, ref: ServiceRef) -> list[dict[str, Any]]:
        """The service's stopped tasks ECS still remembers (about an hour's worth), described."""
        answer = await self.ecs(
            ref, "list_tasks", cluster=ref.cluster, serviceName=ref.service, desiredStatus="STOPPED"
        )
        return await self.describe_tasks(ref, [str(a) for a in answer.get("taskArns", [])][:100])

    async def log_tail(
        self, region: str, group: str, stream: str, role: str | None, lines: int = 20
    ) -> list[str]:
        try:
            answer = await self.call(
                "logs",
                region,
                "get_log_events",
                role_arn=role,
                logGroupName=group,
                logStreamName=stream,
                startFromHead=False,
                limit=lines,
            )
        except AwsError as exc:
            if exc.code == "ResourceNotFoundException":
                return []
            raise
        return [str(e.get("message", "")).rstrip("\n") for e in answer.get("events", [])]
