"""ECS's service deployments (blue/green, linear, canary) as the sandbox world keeps them.

moto knows none of this. The simulator walks these records through ECS's lifecycle stages while
it edits moto's tasks, and `ServiceDeploymentApi` answers ECS's calls about them, in the shapes
botocore parses. Where AWS's reference is silent, docs/architecture.md says what we assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "Hook",
    "ServiceDeployment",
    "ServiceDeploymentApi",
    "ServiceDeploymentDesk",
    "ServiceDeploymentError",
    "ServiceRevision",
    "Shares",
    "Step",
    "hook_error",
    "plan",
    "uses_strategy",
]

STRATEGIES = frozenset({"BLUE_GREEN", "LINEAR", "CANARY"})
HOOK_STAGES = frozenset(
    {
        "RECONCILE_SERVICE",
        "PRE_SCALE_UP",
        "POST_SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "POST_TEST_TRAFFIC_SHIFT",
        "PRE_PRODUCTION_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    }
)
"""DeploymentLifecycleHookStage: where a hook may run."""
NO_PAUSE_STAGES = frozenset({"TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"})
"""Stages only AWS_LAMBDA hooks may use (AWS: PAUSE hooks cannot be configured there)."""
ONGOING = frozenset(
    {"PENDING", "IN_PROGRESS", "STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"}
)
STOPPABLE = frozenset({"PENDING", "IN_PROGRESS"})
ROLLING_BACK = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"})
HOOK_ACTIONS = frozenset({"CONTINUE", "ROLLBACK"})
STOP_TYPES = frozenset({"ABORT", "ROLLBACK"})
STAGE_MINUTES = 0.25
"""Each lifecycle stage's own moment, in ECS minutes (the world scales minutes to seconds)."""
TIMEOUT_MINUTES, TIMEOUT_ACTION = 1440, "ROLLBACK"
"""AWS's defaults for a hook's timeoutConfiguration."""
MAX_DESCRIBED = 20


class ServiceDeploymentError(Exception):
    """An ECS error answer (``__type`` and message); the call changed nothing."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> ServiceDeploymentError:
    return ServiceDeploymentError("InvalidParameterException", message)


def uses_strategy(configuration: dict[str, Any] | None) -> bool:
    """Whether a service deploys through service deployment stages rather than rolling."""
    return str((configuration or {}).get("strategy") or "ROLLING") in STRATEGIES


def hook_error(configuration: dict[str, Any] | None) -> str | None:
    """Why ECS would refuse these lifecycle hooks in an UpdateService; None when it takes them."""
    for hook in (configuration or {}).get("lifecycleHooks") or []:
        target = hook.get("targetType") or "AWS_LAMBDA"
        stages = hook.get("lifecycleStages") or []
        if not stages:
            return "A lifecycle hook must name at least one stage in lifecycleStages."
        for stage in stages:
            if stage not in HOOK_STAGES:
                return f"{stage} is not a lifecycle stage a hook can use."
            if target == "PAUSE" and stage in NO_PAUSE_STAGES:
                return f"PAUSE hooks cannot be configured at {stage}; only AWS_LAMBDA hooks can."
        if target == "AWS_LAMBDA" and not hook.get("hookTargetArn"):
            return "An AWS_LAMBDA lifecycle hook needs a hookTargetArn."
        minutes = (hook.get("timeoutConfiguration") or {}).get("timeoutInMinutes", TIMEOUT_MINUTES)
        if not 1 <= int(minutes) <= 20160:
            return "timeoutInMinutes must be between 1 and 20160."
    return None


@dataclass(frozen=True)
class Step:
    """One lifecycle stage of a deployment's plan."""

    stage: str
    production_weight: float | None = None
    """PRODUCTION_TRAFFIC_SHIFT: the new revision's share of production traffic from this step."""
    bake_minutes: float = 0.0
    """Waited after the stage's own moment (a canary or linear step's bake, BAKE_TIME)."""
    moment: bool = True
    """False: no time of its own, so the stage shows only while a hook pauses there."""


def production_shifts(configuration: dict[str, Any]) -> list[tuple[float, float]]:
    """(the new revision's production share, minutes baked after it) per traffic shift step,
    with AWS's defaults (canary 5 % then 10 minutes; linear 10 % steps, 6 minutes apart)."""
    strategy = configuration.get("strategy")
    if strategy == "CANARY":
        canary = configuration.get("canaryConfiguration") or {}
        percent = float(canary.get("canaryPercent", 5.0))
        bake = float(canary.get("canaryBakeTimeInMinutes", 10))
        return [(percent, bake), (100.0, 0.0)] if percent < 100 else [(100.0, 0.0)]
    if strategy == "LINEAR":
        linear = configuration.get("linearConfiguration") or {}
        step = max(float(linear.get("stepPercent", 10.0)), 0.1)
        bake = float(linear.get("stepBakeTimeInMinutes", 6))
        weights = [round(i * step, 1) for i in range(1, int(100 / step) + 1)]
        weights = [w for w in weights if w < 100]
        return [(w, bake) for w in weights] + [(100.0, 0.0)]  # no bake after the last step
    return [(100.0, 0.0)]


def plan(configuration: dict[str, Any], *, reconcile: bool) -> tuple[Step, ...]:
    """The stages a deployment goes through; RECONCILE_SERVICE only when it starts with more than
    one revision ACTIVE, and PRE_PRODUCTION_TRAFFIC_SHIFT before every production step."""
    steps = [Step("RECONCILE_SERVICE")] if reconcile else []
    steps += [Step(stage) for stage in ("PRE_SCALE_UP", "SCALE_UP", "POST_SCALE_UP")]
    steps += [Step("TEST_TRAFFIC_SHIFT"), Step("POST_TEST_TRAFFIC_SHIFT")]
    for weight, bake in production_shifts(configuration):
        steps += [
            Step("PRE_PRODUCTION_TRAFFIC_SHIFT", moment=False),
            Step("PRODUCTION_TRAFFIC_SHIFT", production_weight=weight, bake_minutes=bake),
        ]
    bake_time = float(configuration.get("bakeTimeInMinutes") or 0)
    steps += [Step("POST_PRODUCTION_TRAFFIC_SHIFT"), Step("BAKE_TIME", bake_minutes=bake_time)]
    return (*steps, Step("CLEAN_UP"))


def _epoch(moment: datetime | None) -> float | None:
    """Timestamps as moto answers them in JSON: seconds since the epoch."""
    return moment.timestamp() if moment is not None else None


def _present(shape: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shape.items() if v is not None}


@dataclass(frozen=True)
class ServiceRevision:
    """One ECS deployment's configuration, as DescribeServiceRevisions shows it."""

    arn: str
    service_arn: str
    cluster_arn: str
    task_definition: str
    launch_type: str | None
    platform_version: str | None
    network_configuration: dict[str, Any] | None
    created_at: datetime

    def describe(self) -> dict[str, Any]:
        return _present(
            {
                "serviceRevisionArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "taskDefinition": self.task_definition,
                "launchType": self.launch_type,
                "platformVersion": self.platform_version,
                "networkConfiguration": self.network_configuration or None,
                "createdAt": _epoch(self.created_at),
            }
        )


@dataclass
class Shares:
    """One revision's part in a service deployment: its tasks and the traffic asked of it."""

    revision: ServiceRevision
    deployment_id: str
    """The ECS deployment (``ecs-svc/…``) whose tasks are this revision's."""
    requested: int = 0
    running: int = 0
    pending: int = 0
    test_weight: float = 0.0
    production_weight: float = 0.0
    served: float = 0.0
    """Its production share when the deployment began: what it gives up as the target takes over."""

    def summary(self) -> dict[str, Any]:
        return {
            "arn": self.revision.arn,
            "requestedTaskCount": self.requested,
            "runningTaskCount": self.running,
            "pendingTaskCount": self.pending,
            "requestedTestTrafficWeight": self.test_weight,
            "requestedProductionTrafficWeight": self.production_weight,
        }


@dataclass
class Hook:
    """One lifecycle hook run in a deployment; a PAUSE waits for ContinueServiceDeployment."""

    hook_id: str
    target_type: str
    stage: str
    status: str
    target_arn: str | None = None
    timeout_action: str | None = None
    expires_at: datetime | None = None
    deadline: float | None = None
    """``time.monotonic()`` of `expires_at`."""

    def detail(self) -> dict[str, Any]:
        return _present(
            {
                "hookId": self.hook_id,
                "targetType": self.target_type,
                "targetArn": self.target_arn,
                "status": self.status,
                "expiresAt": _epoch(self.expires_at),
                "timeoutAction": self.timeout_action,
            }
        )


@dataclass
class ServiceDeployment:
    """One service deployment, from PENDING to an end, with the state ECS reports about it."""

    arn: str
    service_arn: str
    cluster_arn: str
    key: str
    """The simulator's name for the service, ``cluster:service``."""
    configuration: dict[str, Any]
    sources: list[Shares]
    target: Shares
    steps: tuple[Step, ...]
    created_at: datetime
    threshold: int
    breaker: bool
    status: str = "PENDING"
    status_reason: str | None = None
    step: int = -1
    due: float | None = None
    """``time.monotonic()`` when the current step (or status) may move on; None: held by a pause."""
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    updated_at: datetime | None = None
    hooks: list[Hook] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    failures: int = 0
    stages: list[str] = field(default_factory=list)
    """Every lifecycle stage entered so far, in order (a moment-less one included)."""

    @property
    def ongoing(self) -> bool:
        return self.status in ONGOING

    @property
    def current(self) -> Step | None:
        return self.steps[self.step] if 0 <= self.step < len(self.steps) else None

    @property
    def awaiting(self) -> list[Hook]:
        return [h for h in self.hooks if h.status == "AWAITING_ACTION"]

    @property
    def shares(self) -> list[Shares]:
        return [*self.sources, self.target]

    @property
    def rollback_to(self) -> Shares:
        """The revision a rollback returns to: the one that served production before."""
        return max(self.sources, key=lambda s: s.served)

    def hook(self, hook_id: str) -> Hook | None:
        return next((h for h in self.hooks if h.hook_id == hook_id), None)

    def enter(self, index: int, now: datetime) -> Step:
        """Show the next stage; the caller applies what it does and when it may move on."""
        step = self.steps[index]
        self.step = index
        self.stages.append(step.stage)
        self.updated_at = now
        return step

    def shift_test_traffic(self) -> None:
        for source in self.sources:
            source.test_weight = 0.0
        self.target.test_weight = 100.0

    def shift_production_traffic(self, weight: float) -> None:
        """The target takes `weight` percent; the sources keep the rest in their old proportion."""
        self.target.production_weight = weight
        served = sum(s.served for s in self.sources) or 1.0
        for source in self.sources:
            source.production_weight = round((100.0 - weight) * source.served / served, 1)

    def return_traffic(self) -> None:
        """A rollback: everything back on the revision that served production."""
        back = self.rollback_to
        for share in self.shares:
            share.test_weight = share.production_weight = 100.0 if share is back else 0.0

    def request_rollback(self, reason: str, now: datetime) -> None:
        self.status = "ROLLBACK_REQUESTED"
        self.status_reason = reason
        self.rollback = {
            "reason": reason,
            "startedAt": now,
            "serviceRevisionArn": self.rollback_to.revision.arn,
        }
        self.updated_at = now

    def end(self, status: str, now: datetime, reason: str | None = None) -> None:
        """A final status: STOPPED sets stoppedAt, every other end finishedAt."""
        self.status = status
        self.status_reason = reason or self.status_reason
        if status == "STOPPED":
            self.stopped_at = now
        else:
            self.finished_at = now
        self.updated_at = now
        self.due = None

    def describe(self) -> dict[str, Any]:
        """The ServiceDeployment shape of DescribeServiceDeployments."""
        rollback = self.rollback
        return _present(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "createdAt": _epoch(self.created_at),
                "startedAt": _epoch(self.started_at),
                "finishedAt": _epoch(self.finished_at),
                "stoppedAt": _epoch(self.stopped_at),
                "updatedAt": _epoch(self.updated_at),
                "sourceServiceRevisions": [s.summary() for s in self.sources],
                "targetServiceRevision": self.target.summary(),
                "status": self.status,
                "statusReason": self.status_reason,
                "lifecycleStage": self.current.stage if self.current else None,
                "lifecycleHookDetails": [h.detail() for h in self.hooks],
                "deploymentConfiguration": self.configuration,
                "rollback": {**rollback, "startedAt": _epoch(rollback["startedAt"])} if rollback else None,
                "deploymentCircuitBreaker": {
                    "status": self._breaker_status(),
                    "failureCount": self.failures,
                    "threshold": self.threshold,
                },
            }
        )

    def _breaker_status(self) -> str:
        if not self.breaker:
            return "DISABLED"
        if self.failures >= self.threshold:
            return "TRIGGERED"
        return "MONITORING" if self.ongoing else "MONITORING_COMPLETE"

    def brief(self) -> dict[str, Any]:
        """The ServiceDeploymentBrief shape of ListServiceDeployments."""
        return _present(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "startedAt": _epoch(self.started_at),
                "createdAt": _epoch(self.created_at),
                "finishedAt": _epoch(self.finished_at),
                "targetServiceRevisionArn": self.target.revision.arn,
                "status": self.status,
                "statusReason": self.status_reason,
            }
        )


class ServiceDeploymentDesk(Protocol):
    """What the API needs of the simulator; each call takes the simulator's lock."""

    def service_deployments(self, arns: list[str]) -> list[dict[str, Any]]:
        """DescribeServiceDeployments' answers for the ARNs it knows."""

    def service_deployment_briefs(self, cluster: str, service: str) -> list[dict[str, Any]]:
        """Every deployment of the service, newest first (ECS errors for an unknown one)."""

    def continue_service_deployment(self, arn: str, hook_id: str, action: str) -> None: ...

    def stop_service_deployment(self, arn: str, stop_type: str) -> None: ...

    def service_revisions(self, arns: list[str]) -> list[dict[str, Any]]: ...


class ServiceDeploymentApi:
    """ECS's service deployment calls, which moto lacks: JSON bodies in, JSON answers out.

    The world's middleware calls `answer` after counting, throttling and injecting faults, so
    these calls are counted and can fail like any other; `world.hold` can stop each method.
    """

    OPERATIONS = {
        "ecs:DescribeServiceDeployments": "describe_service_deployments",
        "ecs:ListServiceDeployments": "list_service_deployments",
        "ecs:ContinueServiceDeployment": "continue_service_deployment",
        "ecs:StopServiceDeployment": "stop_service_deployment",
        "ecs:DescribeServiceRevisions": "describe_service_revisions",
    }

    def __init__(self, desk: ServiceDeploymentDesk) -> None:
        self._desk = desk

    def serves(self, operation: str) -> bool:
        return operation in self.OPERATIONS

    def answer(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        """Raises ServiceDeploymentError for ECS's error answers."""
        method = getattr(self, self.OPERATIONS[operation])
        answer: dict[str, Any] = method(body)
        return answer

    def describe_service_deployments(self, body: dict[str, Any]) -> dict[str, Any]:
        arns = _arns(body, "serviceDeploymentArns")
        found = self._desk.service_deployments(arns)
        return {"serviceDeployments": found, "failures": _missing(arns, found, "serviceDeploymentArn")}

    def list_service_deployments(self, body: dict[str, Any]) -> dict[str, Any]:
        service = _required(body, "service")
        briefs = self._desk.service_deployment_briefs(str(body.get("cluster") or "default"), service)
        statuses = set(body.get("status") or [])
        created = body.get("createdAt") or {}
        after, before = (_micros(created[k]) if k in created else None for k in ("after", "before"))
        chosen = [
            brief
            for brief in briefs
            if (not statuses or brief["status"] in statuses)
            and (after is None or _micros(brief["createdAt"]) >= after)
            and (before is None or _micros(brief["createdAt"]) <= before)
        ]
        size = int(body.get("maxResults") or 20)
        if not 1 <= size <= 100:
            raise _invalid("maxResults must be between 1 and 100.")
        token = str(body.get("nextToken") or "0")
        if not token.isdigit():
            raise _invalid("The nextToken is not valid.")
        start = int(token)
        page = {"serviceDeployments": chosen[start : start + size]}
        return {**page, "nextToken": str(start + size)} if start + size < len(chosen) else page

    def continue_service_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        arn, hook_id = _required(body, "serviceDeploymentArn"), _required(body, "hookId")
        action = str(body.get("action") or "CONTINUE")
        if action not in HOOK_ACTIONS:
            raise _invalid(f"action must be CONTINUE or ROLLBACK, not {action}.")
        self._desk.continue_service_deployment(arn, hook_id, action)
        return {"serviceDeploymentArn": arn}

    def stop_service_deployment(self, body: dict[str, Any]) -> dict[str, Any]:
        arn = _required(body, "serviceDeploymentArn")
        stop_type = str(body.get("stopType") or "ROLLBACK")
        if stop_type not in STOP_TYPES:
            raise _invalid(f"stopType must be ROLLBACK or ABORT, not {stop_type}.")
        self._desk.stop_service_deployment(arn, stop_type)
        return {"serviceDeploymentArn": arn}

    def describe_service_revisions(self, body: dict[str, Any]) -> dict[str, Any]:
        arns = _arns(body, "serviceRevisionArns")
        found = self._desk.service_revisions(arns)
        return {"serviceRevisions": found, "failures": _missing(arns, found, "serviceRevisionArn")}


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{name} must be specified.")
    return value


def _arns(body: dict[str, Any], name: str) -> list[str]:
    arns = body.get(name)
    if not isinstance(arns, list) or not arns:
        raise _invalid(f"{name} must name at least one ARN.")
    if len(arns) > MAX_DESCRIBED:
        raise _invalid(f"{name} can name at most {MAX_DESCRIBED} ARNs.")
    return [str(arn) for arn in arns]


def _micros(epoch: float) -> int:
    """Epoch seconds to whole microseconds, so a timestamp sent back compares equal to itself."""
    return round(float(epoch) * 1_000_000)


def _missing(asked: list[str], found: list[dict[str, Any]], key: str) -> list[dict[str, str]]:
    """ECS's `failures` entry for each ARN it does not know."""
    known = {answer[key] for answer in found}
    return [{"arn": arn, "reason": "MISSING"} for arn in dict.fromkeys(asked) if arn not in known]
