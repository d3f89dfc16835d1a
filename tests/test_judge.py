"""The rollout rule on hand-built snapshots: success only when our deployment is COMPLETED, alone,
and fully running; a circuit-breaker rollback is a failure that names where ECS went back to."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.aws import Deployment, ServiceRef, ServiceSnapshot
from commands.wait import Verdict, judge

REF = ServiceRef("us-east-1", "acme", "api")
FAMILY = "arn:aws:ecs:us-east-1:123456789012:task-definition/api"
NEW = f"{FAMILY}:7"
OLD = f"{FAMILY}:6"
OURS = "ecs-svc/1111"
OTHER = "ecs-svc/2222"
BREAKER = "ECS deployment circuit breaker: tasks failed to start."


def deployment(
    id: str = OURS,
    status: str = "PRIMARY",
    task_definition: str = NEW,
    *,
    desired: int = 3,
    running: int = 3,
    pending: int = 0,
    failed_tasks: int = 0,
    state: str | None = "COMPLETED",
    reason: str | None = None,
) -> Deployment:
    return Deployment(id, status, task_definition, desired, running, pending, failed_tasks, state, reason)


def snapshot(*deployments: Deployment, desired: int = 3, running: int | None = None) -> ServiceSnapshot:
    """The service's counts are the sum over its deployments unless given."""
    primary = next((d for d in deployments if d.status == "PRIMARY"), None)
    return ServiceSnapshot(
        ref=REF,
        status="ACTIVE",
        task_definition=primary.task_definition if primary else NEW,
        desired=desired,
        running=sum(d.running for d in deployments) if running is None else running,
        pending=sum(d.pending for d in deployments),
        deployments=deployments,
        events=(),
        raw={},
    )


def test_in_progress_is_undecided() -> None:
    ours = deployment(running=1, pending=2, state="IN_PROGRESS")
    old = deployment(OTHER, "ACTIVE", OLD, running=2)
    assert judge(snapshot(ours, old), OURS, NEW) is None


def test_completed_alone_and_fully_running_succeeds() -> None:
    verdict = judge(snapshot(deployment()), OURS, NEW)
    assert verdict == Verdict(True, "3/3 tasks running")
    assert verdict.ecs_rollback is None


def test_no_rollout_state_counts_as_completed_when_alone_and_running() -> None:
    """Services without the circuit breaker report no rolloutState: the counts decide."""
    assert judge(snapshot(deployment(state=None)), OURS, NEW) == Verdict(True, "3/3 tasks running")


def test_completed_while_another_deployment_is_still_listed_is_undecided() -> None:
    """Counts alone would say done (3/3, the old one drained to 0): the old deployment must go too."""
    drained = deployment(OTHER, "ACTIVE", OLD, desired=0, running=0)
    assert judge(snapshot(deployment(), drained), OURS, NEW) is None
    draining = deployment(OTHER, "ACTIVE", OLD, desired=0, running=1)
    assert judge(snapshot(deployment(), draining), OURS, NEW) is None


def test_failed_deployment_fails_with_ecs_reason() -> None:
    ours = deployment(running=0, failed_tasks=3, state="FAILED", reason="tasks failed to start")
    assert judge(snapshot(ours), OURS, NEW) == Verdict(False, "tasks failed to start")


def test_failed_deployment_without_reason_says_so() -> None:
    ours = deployment(running=0, state="FAILED")
    assert judge(snapshot(ours), OURS, NEW) == Verdict(False, f"deployment {OURS} FAILED")


def test_circuit_breaker_rollback_is_a_failure_naming_the_revision() -> None:
    ours = deployment(status="ACTIVE", running=0, failed_tasks=3, state="FAILED", reason=BREAKER)
    rollback = deployment(OTHER, "PRIMARY", OLD, running=1, pending=2, state="IN_PROGRESS")
    verdict = judge(snapshot(ours, rollback), OURS, NEW)
    assert verdict is not None and not verdict.ok
    assert verdict.ecs_rollback == rollback
    assert verdict.reason == f"{BREAKER} ECS rolled back to revision 6 (deployment {OTHER})."


def test_finished_circuit_breaker_rollback_is_never_success() -> None:
    """What `services-stable` calls stable: one COMPLETED deployment, all running, on the old revision."""
    rollback = deployment(OTHER, "PRIMARY", OLD)
    verdict = judge(snapshot(rollback), OURS, NEW)
    assert verdict is not None and not verdict.ok
    assert verdict.ecs_rollback == rollback
    assert verdict.reason == (
        "the PRIMARY deployment changed to another task definition"
        f" ECS rolled back to revision 6 (deployment {OTHER})."
    )


@given(
    desired=st.integers(0, 20),
    running=st.integers(0, 20),
    state=st.sampled_from(["COMPLETED", "IN_PROGRESS", "FAILED", None]),
    ours_present=st.booleans(),
    revision=st.integers(1, 5),
)
def test_primary_on_another_task_definition_always_fails_as_an_ecs_rollback(
    desired: int, running: int, state: str | None, ours_present: bool, revision: int
) -> None:
    rollback = deployment(
        OTHER, "PRIMARY", f"{FAMILY}:{revision}", desired=desired, running=running, state=state
    )
    ours = deployment(status="ACTIVE", running=0, state="FAILED")
    deployments = (rollback, ours) if ours_present else (rollback,)
    verdict = judge(snapshot(*deployments, desired=desired), OURS, NEW)
    assert verdict is not None and not verdict.ok and verdict.ecs_rollback == rollback
    assert f"revision {revision} " in verdict.reason


def test_primary_replaced_by_the_same_task_definition_fails_without_ecs_rollback() -> None:
    """Someone else deployed the same revision again (a forced new deployment): ours lost."""
    ours = deployment(status="ACTIVE", running=1, state="IN_PROGRESS")
    newer = deployment(OTHER, "PRIMARY", NEW, running=2, state="IN_PROGRESS")
    verdict = judge(snapshot(ours, newer), OURS, NEW)
    assert verdict == Verdict(False, f"deployment {OURS} was replaced by {OTHER}")
    assert verdict.ecs_rollback is None


def test_replaced_deployment_keeps_its_own_reason() -> None:
    ours = deployment(status="ACTIVE", running=0, state="FAILED", reason="stopped by a newer deploy")
    newer = deployment(OTHER, "PRIMARY", NEW)
    assert judge(snapshot(ours, newer), OURS, NEW) == Verdict(False, "stopped by a newer deploy")


def test_our_deployment_gone_fails() -> None:
    assert judge(snapshot(), OURS, NEW) == Verdict(False, f"deployment {OURS} is no longer on the service")
    leftover = deployment(OTHER, "ACTIVE", NEW)
    assert judge(snapshot(leftover), OURS, NEW) == Verdict(
        False, f"deployment {OURS} is no longer on the service"
    )


def test_fewer_running_than_desired_is_undecided() -> None:
    assert judge(snapshot(deployment(running=2)), OURS, NEW) is None
    # Our deployment counts all its tasks, but the service as a whole is still short.
    assert judge(snapshot(deployment(), running=2), OURS, NEW) is None
