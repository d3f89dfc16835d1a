"""The fold from progress events to an operation's record, the phase as the parent line says it,
and the record's JSON form (legacy phase words included)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.events import (
    Failed,
    ImageVerified,
    Note,
    ProgressEvent,
    RolledBack,
    RollingBack,
    RolloutProgress,
    ServiceUpdated,
    Started,
    StoppedTasks,
    Succeeded,
    TaskDefinitionRegistered,
    TaskStarted,
    TaskStopped,
    WaitingForImage,
)
from bot.domain.progress import fold, phase_text
from bot.domain.records import OperationRecord, Phase

FAMILY = "arn:aws:ecs:us-east-1:123456789012:task-definition/api"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/acme/0123456789abcdef"
NOW = 1_700_000_000.0


def record(**fields: Any) -> OperationRecord:
    """A deploy of v2 to api staging, started a minute ago, with `fields` changed."""
    base: dict[str, Any] = {"action": "deploy", "app": "api", "env": "staging", "actor": "U123"}
    started = {"subject": "v2", "id": "op1", "created_at": NOW - 60, "updated_at": NOW - 60}
    return OperationRecord(**(base | started | fields))


# Each event, the fields it changes (nothing else may change), and whether a resume needs it saved.
EFFECTS: list[tuple[ProgressEvent, dict[str, Any], bool]] = [
    (Started("deploy", "api", "staging", "U123", "v2"), {"phase": Phase.CHECKING}, False),
    (WaitingForImage("repo:v2", 300), {"phase": Phase.WAITING_FOR_IMAGE}, False),
    (ImageVerified("repo:v2", "repo:v1"), {"phase": Phase.IMAGE_FOUND}, False),
    (
        TaskDefinitionRegistered(f"{FAMILY}:7", "api", 7, 6, "repo:v2"),
        {"task_definition": f"{FAMILY}:7", "phase": Phase.REGISTERED},
        True,
    ),
    (
        TaskStarted("migrate", TASK, 7),
        {"task_arn": TASK, "task_name": "migrate", "phase": Phase.RUNNING_TASK},
        True,
    ),
    (
        TaskStopped("migrate", TASK, {"app": 0}, "EssentialContainerExited", "done"),
        {},
        False,
    ),
    (
        ServiceUpdated("ecs-svc/1111", f"{FAMILY}:7", f"{FAMILY}:6"),
        {
            "deployment_id": "ecs-svc/1111",
            "task_definition": f"{FAMILY}:7",
            "previous_task_definition": f"{FAMILY}:6",
            "phase": Phase.ROLLING_OUT,
        },
        True,
    ),
    (
        RolloutProgress(running=1, desired=3, pending=2, failed_tasks=1, new_events=("started 2 tasks",)),
        {"running": 1, "desired": 3, "pending": 2},
        False,
    ),
    (StoppedTasks(("task 0123: exit 1",)), {}, False),
    (
        RollingBack(6, "tasks failed to start"),
        {"rollback_to": 6, "phase": Phase.ROLLING_BACK},
        True,
    ),
    (RolledBack(6), {"rollback_to": 6, "phase": Phase.ROLLED_BACK}, True),
    (
        RolledBack(6, completed=False),
        {"rollback_to": 6, "phase": Phase.ROLLBACK_INCOMPLETE},
        True,
    ),
    (Note("skipped before_deploy: no tasks", loud=True), {}, False),
    (
        Succeeded("3/3 tasks running"),
        {
            "state": "succeeded",
            "phase": Phase.DONE,
            "reason": "3/3 tasks running",
            "ended_at": NOW,
        },
        True,
    ),
    (
        Failed("image repo:v2 not found", ("looked for 300 s",)),
        {"state": "failed", "phase": Phase.STOPPED, "reason": "image repo:v2 not found", "ended_at": NOW},
        True,
    ),
]


def effect_id(event: ProgressEvent) -> str:
    incomplete = isinstance(event, RolledBack) and not event.completed
    return type(event).__name__ + ("-incomplete" if incomplete else "")


@pytest.mark.parametrize(
    ("event", "changes", "needs_save"), EFFECTS, ids=[effect_id(event) for event, _, _ in EFFECTS]
)
def test_each_event_changes_only_its_fields(
    event: ProgressEvent, changes: dict[str, Any], needs_save: bool
) -> None:
    rec = record(phase=Phase.ACCEPTED)
    before = dataclasses.asdict(rec)
    assert fold(rec, event, now=NOW) is needs_save
    assert dataclasses.asdict(rec) == {**before, **changes}


def test_the_events_a_resume_needs_are_exactly_the_saved_ones() -> None:
    saved = {type(event).__name__ for event, _, needs_save in EFFECTS if needs_save}
    assert saved == {
        "TaskDefinitionRegistered",
        "TaskStarted",
        "ServiceUpdated",
        "RollingBack",
        "RolledBack",
        "Succeeded",
        "Failed",
    }


def test_service_updated_keeps_the_first_previous_task_definition() -> None:
    """A second update (a rollback's) must not lose the revision the operation started from."""
    rec = record(previous_task_definition=f"{FAMILY}:5")
    fold(rec, ServiceUpdated("ecs-svc/2222", f"{FAMILY}:5", f"{FAMILY}:7"), now=NOW)
    assert rec.previous_task_definition == f"{FAMILY}:5"
    assert rec.task_definition == f"{FAMILY}:5"
    assert rec.deployment_id == "ecs-svc/2222"


def test_rollout_progress_leaves_the_phase() -> None:
    rec = record(phase=Phase.ROLLING_BACK, rollback_to=6)
    assert not fold(rec, RolloutProgress(running=2, desired=3, pending=1))
    assert rec.phase == Phase.ROLLING_BACK
    assert (rec.running, rec.desired, rec.pending) == (2, 3, 1)


def test_failed_after_a_completed_rollback_stays_rolled_back() -> None:
    rec = record()
    fold(rec, RollingBack(6, "tasks failed to start"), now=NOW)
    fold(rec, RolledBack(6, completed=True), now=NOW)
    assert fold(rec, Failed("the new revision never became healthy"), now=NOW)
    assert (rec.state, rec.phase, rec.rollback_to) == ("failed", Phase.ROLLED_BACK, 6)
    assert rec.reason == "the new revision never became healthy"
    assert rec.ended_at == NOW
    assert phase_text(rec) == "rolled back to rev 6"


def test_failed_after_an_incomplete_rollback_is_stopped() -> None:
    rec = record()
    fold(rec, RolledBack(6, completed=False), now=NOW)
    fold(rec, Failed("rollback timed out"), now=NOW)
    assert (rec.state, rec.phase) == ("failed", Phase.STOPPED)


def test_without_now_the_end_is_the_clock() -> None:
    rec = record()
    start = time.time()
    fold(rec, Succeeded("done"))
    assert rec.ended_at is not None and start <= rec.ended_at <= time.time()


def test_a_deploy_folds_to_what_a_resume_needs() -> None:
    rec = record()
    events: list[ProgressEvent] = [
        Started("deploy", "api", "staging", "U123", "v2"),
        ImageVerified("repo:v2"),
        TaskDefinitionRegistered(f"{FAMILY}:7", "api", 7, 6, "repo:v2"),
        TaskStarted("migrate", TASK, 7),
        TaskStopped("migrate", TASK, {"app": 0}, None, None),
        ServiceUpdated("ecs-svc/1111", f"{FAMILY}:7", f"{FAMILY}:6"),
        RolloutProgress(running=3, desired=3, pending=0),
    ]
    saves = [fold(rec, event, now=NOW) for event in events]
    assert saves == [False, False, True, True, False, True, False]
    assert rec.phase == Phase.ROLLING_OUT and phase_text(rec) == "rolling out"
    assert (rec.task_definition, rec.previous_task_definition, rec.deployment_id) == (
        f"{FAMILY}:7",
        f"{FAMILY}:6",
        "ecs-svc/1111",
    )
    assert rec.task_name == "migrate" and rec.task_arn == TASK
    assert rec.state == "running" and not rec.finished and rec.ended_at is None


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"phase": Phase.RUNNING_TASK, "task_name": "migrate"}, "running task migrate"),
        ({"phase": Phase.RUNNING_TASK}, "running task"),
        ({"phase": Phase.ROLLING_BACK, "rollback_to": 3}, "rolling back to rev 3"),
        ({"phase": Phase.ROLLING_BACK}, "rolling back"),
        ({"phase": Phase.ROLLED_BACK, "rollback_to": 3}, "rolled back to rev 3"),
        ({"phase": Phase.ROLLED_BACK}, "rolled back"),
        ({"phase": Phase.ROLLING_OUT, "task_name": "migrate", "rollback_to": 3}, "rolling out"),
        ({"phase": Phase.ROLLBACK_INCOMPLETE, "rollback_to": 3}, "rollback did not complete"),
        ({"phase": Phase.AWAITING_CONFIRMATION}, "awaiting confirmation"),
        ({"phase": "a phase from a newer replica"}, "a phase from a newer replica"),
    ],
)
def test_phase_text(fields: dict[str, Any], text: str) -> None:
    assert phase_text(record(**fields)) == text


def stored(**fields: Any) -> str:
    """A record's JSON as some older or newer replica may have written it."""
    data = json.loads(record().to_json())
    data.update(fields)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("word", "phase"),
    [
        ("updated", Phase.ROLLING_OUT),
        ("task running", Phase.RUNNING_TASK),
        ("rolling out", Phase.ROLLING_OUT),
    ],
)
def test_from_json_reads_legacy_phase_words(word: str, phase: Phase) -> None:
    rec = OperationRecord.from_json(stored(phase=word))
    assert rec.phase is phase


def test_from_json_keeps_an_unknown_phase_as_its_word() -> None:
    rec = OperationRecord.from_json(stored(phase="verifying canary"))
    assert rec.phase == "verifying canary"
    assert not isinstance(rec.phase, Phase)


def test_from_json_ignores_fields_it_does_not_know() -> None:
    rec = OperationRecord.from_json(stored(canary_weight=10))
    assert rec == record()


def test_json_round_trip_of_a_folded_record() -> None:
    rec = record(channel="C1", ts="1700000000.000100", permalink="https://x/p1", extra={"pr": 12})
    for event, _, _ in EFFECTS:
        fold(rec, event, now=NOW)
    back = OperationRecord.from_json(rec.to_json())
    assert back == rec
    assert isinstance(back.phase, Phase)


optional_text = st.none() | st.text(max_size=20)
optional_int = st.none() | st.integers(-(2**31), 2**31)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)


@given(
    phase=st.sampled_from(list(Phase)),
    state=st.sampled_from(["running", "succeeded", "failed"]),
    texts=st.lists(optional_text, min_size=8, max_size=8),
    counts=st.lists(optional_int, min_size=4, max_size=4),
    times=st.lists(st.floats(0, 4e9, allow_nan=False), min_size=3, max_size=3),
    extra=st.dictionaries(st.text(max_size=8), json_scalars, max_size=3),
)
def test_json_round_trip_preserves_any_record(
    phase: Phase,
    state: str,
    texts: list[str | None],
    counts: list[int | None],
    times: list[float],
    extra: dict[str, Any],
) -> None:
    names = "previous_task_definition task_definition deployment_id task_arn channel ts reason task_name"
    rec = record(
        phase=phase,
        state=state,
        created_at=times[0],
        updated_at=times[1],
        ended_at=times[2],
        extra=extra,
        **dict(zip(names.split(), texts, strict=True)),
        **dict(zip(("running", "desired", "pending", "rollback_to"), counts, strict=True)),
    )
    back = OperationRecord.from_json(rec.to_json())
    assert back == rec
    assert back.phase is phase
