"""ECS's blue/green, linear and canary deployments, as values: stages, traffic, pause hooks.

A service with `deploymentConfiguration.strategy` other than ROLLING deploys through a
*service deployment* (DescribeServiceDeployments). A PAUSE lifecycle hook holds it at a stage
until someone answers: Tugboat turns that pause into a *gate* with Continue and Roll back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

GATED_STRATEGIES = frozenset({"BLUE_GREEN", "LINEAR", "CANARY"})
SUCCESS = "SUCCESSFUL"
ROLLED_BACK = "ROLLBACK_SUCCESSFUL"
ENDED = frozenset({SUCCESS, "STOPPED", ROLLED_BACK, "ROLLBACK_FAILED"})
ROLLING_BACK = frozenset({"ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS"})
ROLLBACK_ENDS = frozenset({ROLLED_BACK, "ROLLBACK_FAILED"})
AWAITING = "AWAITING_ACTION"
CONTINUE = "CONTINUE"
ROLLBACK = "ROLLBACK"

STAGE_WORDS = {
    "RECONCILE_SERVICE": "reconciling the service",
    "PRE_SCALE_UP": "about to start the new revision",
    "SCALE_UP": "starting the new revision's tasks",
    "POST_SCALE_UP": "the new revision's tasks run",
    "TEST_TRAFFIC_SHIFT": "moving test traffic to the new revision",
    "POST_TEST_TRAFFIC_SHIFT": "test traffic is on the new revision",
    "PRE_PRODUCTION_TRAFFIC_SHIFT": "about to move production traffic",
    "PRODUCTION_TRAFFIC_SHIFT": "moving production traffic",
    "POST_PRODUCTION_TRAFFIC_SHIFT": "production traffic is on the new revision",
    "BAKE_TIME": "baking: the old revision stays ready for a rollback",
    "CLEAN_UP": "stopping the old revision",
}
"""What each lifecycle stage means for the people watching, in their words."""


def gated(deployment_configuration: dict[str, Any] | None) -> bool:
    """Whether a service deploys through lifecycle stages (and so may pause) rather than rolling."""
    strategy = (deployment_configuration or {}).get("strategy") or "ROLLING"
    return str(strategy) in GATED_STRATEGIES


def _epoch(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


@dataclass(frozen=True)
class Hook:
    """One lifecycle hook's state in a service deployment (a PAUSE waits for an answer)."""

    hook_id: str
    target_type: str
    status: str
    expires_at: float | None
    timeout_action: str | None

    @property
    def awaiting(self) -> bool:
        return self.status == AWAITING


@dataclass(frozen=True)
class ServiceDeploymentState:
    """One DescribeServiceDeployments answer for one deployment, typed."""

    arn: str
    status: str
    status_reason: str | None
    stage: str | None
    target_revision: str | None
    production_weight: float | None
    """Percent of production traffic the new revision is asked to carry."""
    test_weight: float | None
    hooks: tuple[Hook, ...]
    rollback_reason: str | None
    strategy: str
    bake_minutes: int | None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def rolling_back(self) -> bool:
        return self.status in ROLLING_BACK

    @property
    def awaiting(self) -> Hook | None:
        return next((h for h in self.hooks if h.awaiting), None)

    def hook(self, hook_id: str) -> Hook | None:
        return next((h for h in self.hooks if h.hook_id == hook_id), None)

    @property
    def why(self) -> str:
        """ECS's own words on how it ended (or why it is going back)."""
        return self.rollback_reason or self.status_reason or f"the service deployment is {self.status}"

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> ServiceDeploymentState:
        target = raw.get("targetServiceRevision") or {}
        config = raw.get("deploymentConfiguration") or {}
        hooks = tuple(
            Hook(
                hook_id=str(h.get("hookId", "")),
                target_type=str(h.get("targetType", "")),
                status=str(h.get("status", "")),
                expires_at=_epoch(h.get("expiresAt")),
                timeout_action=h.get("timeoutAction"),
            )
            for h in raw.get("lifecycleHookDetails") or []
        )
        weight = target.get("requestedProductionTrafficWeight")
        test = target.get("requestedTestTrafficWeight")
        bake = config.get("bakeTimeInMinutes")
        return cls(
            arn=str(raw.get("serviceDeploymentArn", "")),
            status=str(raw.get("status", "")),
            status_reason=raw.get("statusReason"),
            stage=raw.get("lifecycleStage"),
            target_revision=target.get("arn"),
            production_weight=float(weight) if weight is not None else None,
            test_weight=float(test) if test is not None else None,
            hooks=hooks,
            rollback_reason=(raw.get("rollback") or {}).get("reason"),
            strategy=str(config.get("strategy") or "ROLLING"),
            bake_minutes=int(bake) if bake is not None else None,
        )


def answer_claim(service_deployment: str, hook_id: str) -> str:
    """The store key whose first write answers a pause: a press, or `/rollback`, never both."""
    return f"pause:{service_deployment}#{hook_id}"


def stage_words(stage: str | None) -> str:
    return STAGE_WORDS.get(stage or "", (stage or "starting").replace("_", " ").lower())


def traffic_words(state: ServiceDeploymentState) -> str:
    """`production 10% · test 100%` on the new revision, as far as ECS says."""
    parts = []
    if state.production_weight is not None:
        parts.append(f"production {state.production_weight:g}%")
    if state.test_weight is not None and state.test_weight > 0:
        parts.append(f"test {state.test_weight:g}%")
    return " · ".join(parts) if parts else "no traffic yet"
