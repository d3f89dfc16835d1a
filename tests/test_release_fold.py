"""The fold and the view for an operation over several services: what a resume and the parent read."""

from __future__ import annotations

from bot.domain import events as ev
from bot.domain.progress import fold
from bot.domain.records import OperationRecord, Phase
from bot.domain.text import plain
from bot.report.view import ThreadView

API, WORKER = (
    "arn:aws:ecs:us-east-1:1:task-definition/api-staging",
    "arn:aws:ecs:us-east-1:1:task-definition/w",
)


def release() -> OperationRecord:
    record = OperationRecord("deploy", "api", "staging", "U0DEV", "v2")
    for event in (
        ev.ReleasePlanned(((("api", f"{API}:1")), ("api-worker", f"{WORKER}:4"))),
        ev.TaskDefinitionRegistered(f"{API}:2", "api-staging", 2, 1, "img:v2", service="api"),
        ev.TaskDefinitionRegistered(f"{WORKER}:5", "w", 5, 4, "img:v2", service="api-worker"),
        ev.ServiceUpdated("ecs-svc/1", f"{API}:2", f"{API}:1", service="api"),
        ev.ServiceUpdated("ecs-svc/2", f"{WORKER}:5", f"{WORKER}:4", service="api-worker"),
        ev.RolloutProgress(2, 2, 0, service="api"),
        ev.RolloutProgress(1, 3, 2, service="api-worker"),
    ):
        fold(record, event, now=1.0)
    return record


def test_each_service_keeps_what_a_resume_needs_and_survives_a_save() -> None:
    record = release()
    assert record.phase == Phase.ROLLING_OUT and record.deployment_id == "ecs-svc/1"
    assert (record.previous_task_definition, record.task_definition) == (f"{API}:1", f"{API}:2")
    again = OperationRecord.from_json(record.to_json())
    worker = again.service("api-worker")
    assert worker is not None
    assert (worker.previous_task_definition, worker.task_definition, worker.deployment_id) == (
        f"{WORKER}:4",
        f"{WORKER}:5",
        "ecs-svc/2",
    )
    assert (worker.state, worker.running, worker.desired) == ("rolling out", 1, 3)


def test_the_parent_shows_each_service_at_a_glance() -> None:
    record = release()
    fold(record, ev.ServiceSettled("api", True, "2/2 tasks running"))
    line = plain(ThreadView(record).status_line(now=5.0))
    assert "api ✅ 2/2 · api-worker ⏳ 1/3" in line
    assert "rev 1 → 2" not in line


def test_the_release_is_rolled_back_once_every_service_is() -> None:
    record = release()
    for name, revision in (("api", 1), ("api-worker", 4)):
        fold(record, ev.RollingBack(revision, "the release failed", service=name))
    fold(record, ev.RolledBack(1, service="api"))
    assert record.phase == Phase.ROLLING_BACK
    fold(record, ev.RolledBack(4, completed=False, service="api-worker"))
    assert record.phase == Phase.ROLLBACK_INCOMPLETE
    details = ThreadView(record).details(ev.RolledBack(4, completed=False, service="api-worker"))
    assert plain(details[0].text).startswith("api-worker: ⚠️ The rollback to revision 4 did not complete")
