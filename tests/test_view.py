"""The thread's view over a folded record: its parent line and its detail lines, as `Text` values.

Events go through `progress.fold` into an `OperationRecord` first, as the lifecycle does; the
view only reads the record and turns each event into lines. Checked on the values (`plain`,
`mrkdwn`), not through Slack.
"""

from __future__ import annotations

import io
from typing import Any

from bot.domain import events as ev
from bot.domain.aws import Deployment, ServiceEvent, ServiceRef, ServiceSnapshot
from bot.domain.progress import fold
from bot.domain.records import Lock, OperationRecord, Target
from bot.domain.text import bold, link, mention, mrkdwn, plain, text
from bot.report.status import card_lines, overview_line
from bot.report.terminal import TerminalReporter, status_lines
from bot.report.view import Detail, ThreadView
from bot.sandbox.mrkdwn import readable
from bot.slack.blocks import detail_blocks, detail_text, parent_blocks, parent_text
from bot.slack.status_cards import card_blocks, overview_blocks
from commands.status import ServiceStatus

NOW = 1_700_000_000.0
DEF = "arn:aws:ecs:us-east-1:123456789012:task-definition/api-staging"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/staging/0123456789abcdef"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api"
EVIL = "<!channel> see <https://evil|x> & more"
EVIL_ESCAPED = "&lt;!channel&gt; see &lt;https://evil|x&gt; &amp; more"


def record(action: str = "deploy", subject: str = "v2", **fields: Any) -> OperationRecord:
    return OperationRecord(
        action=action,
        app="api",
        env="staging",
        actor="U0DEV",
        subject=subject,
        id="op1",
        created_at=NOW - 75,
        **fields,
    )


def play(op: OperationRecord, *events: ev.ProgressEvent) -> tuple[ThreadView, list[Detail]]:
    """Fold each event into the record (as the lifecycle does), then ask the view for its lines."""
    view = ThreadView(op)
    details: list[Detail] = []
    for event in events:
        fold(op, event, now=NOW)
        details.extend(view.details(event))
    return view, details


def lines(details: list[Detail]) -> list[str]:
    return [mrkdwn(d.text) for d in details]


DEPLOY = (
    ev.Started("deploy", "api", "staging", "U0DEV", "v2"),
    ev.WaitingForImage(f"{IMAGE}:v2", 300),
    ev.ImageVerified(f"{IMAGE}:v2", f"{IMAGE}:v1"),
    ev.TaskDefinitionRegistered(f"{DEF}:2", "api-staging", 2, 1, f"{IMAGE}:v2"),
    ev.ServiceUpdated("ecs-svc/123", f"{DEF}:2", f"{DEF}:1"),
    ev.RolloutProgress(1, 2, 1, new_events=("(service api) has started 1 tasks: (task abc).",)),
)


def test_a_deploy_in_progress_reads_the_record() -> None:
    op = record(previous_task_definition=f"{DEF}:1")
    view, details = play(op, *DEPLOY)

    assert mrkdwn(view.status_line(now=NOW)) == (
        ":hourglass_flowing_sand: *In progress* · rolling out · rev 1 → 2 · 1/2 running"
        " · by <@U0DEV> · 1m 15s"
    )
    assert plain(view.status_line(now=NOW)) == (
        "⏳ In progress · rolling out · rev 1 → 2 · 1/2 running · by @U0DEV · 1m 15s"
    )
    assert lines(details) == [
        ":hourglass: Waiting for image `api:v2` (up to 300 s).",
        "Image `api:v2` is in ECR (running now: `api:v1`).",
        "Registered task definition `api-staging:2` (from `api-staging:1`).",
        "Service updated to revision 2: deployment `ecs-svc/123`.",
        "*ECS:*\n• (service api) has started 1 tasks: (task abc).",
    ]
    assert view.service_changed and not view.finished and view.outcome is None


def test_a_deploy_that_succeeds_says_so_and_stops_the_clock() -> None:
    op = record(previous_task_definition=f"{DEF}:1")
    view, details = play(op, *DEPLOY, ev.Succeeded("Revision 2 is live: 2/2 tasks healthy."))

    assert mrkdwn(view.status_line(now=NOW + 500)) == (
        ":white_check_mark: *Succeeded* · done · rev 1 → 2 · by <@U0DEV> · 1m 15s"
    )
    assert lines(details)[-1] == ":white_check_mark: Revision 2 is live: 2/2 tasks healthy."
    assert view.outcome is not None and plain(view.outcome) == "Revision 2 is live: 2/2 tasks healthy."
    assert view.state_word() == "Succeeded" and view.finished


def test_a_circuit_breaker_rollback_ends_rolled_back_and_failed() -> None:
    op = record(subject="broken", previous_task_definition=f"{DEF}:1")
    reason = "The ECS deployment circuit breaker stopped the rollout."
    view, details = play(
        op,
        *DEPLOY[:5],
        ev.StoppedTasks(("abc12345: CannotStartContainerError: no such image",)),
        ev.RollingBack(1, reason, by_ecs=True),
        ev.RolledBack(1, completed=True, by_ecs=True),
        ev.Failed(reason),
    )

    line = mrkdwn(view.status_line(now=NOW))
    assert line.startswith(":x: *Failed* · rolled back to rev 1 · rev 1 → 2 · by <@U0DEV>")
    assert lines(details)[-4:] == [
        "*Stopped tasks:*\n• abc12345: CannotStartContainerError: no such image",
        f":rewind: ECS is rolling back to revision 1: {reason}",
        "Service is back on revision 1.",
        f":x: *Failed:* {reason}",
    ]
    assert plain(details[-1].text) == f"❌ Failed: {reason}"


def test_a_rollback_that_does_not_complete_says_so() -> None:
    op = record(previous_task_definition=f"{DEF}:1")
    view, details = play(
        op, *DEPLOY[:5], ev.RollingBack(1, "timed out after 2 s"), ev.RolledBack(1, completed=False)
    )

    assert "rollback did not complete" in plain(view.status_line(now=NOW))
    assert lines(details)[-2:] == [
        ":rewind: Rolling back to revision 1: timed out after 2 s",
        ":warning: The rollback to revision 1 did not complete. Check the service.",
    ]


def test_a_run_task_shows_the_task_it_runs_and_how_it_stopped() -> None:
    op = record(action="run-task", subject="migrate --verbose", task_definition=f"{DEF}:1")
    view, details = play(
        op,
        ev.Started("run-task", "api", "staging", "U0DEV", "migrate --verbose"),
        ev.TaskStarted("migrate", TASK, 1),
    )

    assert plain(view.headline()) == "Run task api staging: migrate --verbose"
    assert plain(view.status_line(now=NOW)).startswith("⏳ In progress · running task migrate · by @U0DEV")
    assert lines(details) == ["Started task `migrate` from revision 1: `0123456789abcdef`."]

    stopped = ev.TaskStopped(
        "migrate",
        TASK,
        {"web": 0},
        "EssentialContainerExited",
        "Essential container in task exited",
        ("CreateWidgets: migrated", "<!channel> done"),
        "/ecs/api staging/web/0123",
    )
    _, more = play(op, stopped, ev.Succeeded("Task `migrate` exited 0."))
    assert lines(more)[0] == (
        ":white_check_mark: Task `migrate` stopped: exit code web=0\n"
        "EssentialContainerExited Essential container in task exited\n"
        "Logs: `/ecs/api staging/web/0123`"
    )
    assert more[0].code == "CreateWidgets: migrated\n<!channel> done"
    blocks = detail_blocks(more)
    assert blocks[1]["text"]["text"] == "```CreateWidgets: migrated\n&lt;!channel&gt; done```"
    assert "*Succeeded* · done · by <@U0DEV>" in mrkdwn(ThreadView(op).status_line())


def test_user_words_are_escaped_in_mrkdwn_and_kept_in_plain() -> None:
    op = record(subject=EVIL)
    view, details = play(
        op,
        ev.Started("deploy", "api", "staging", "U0DEV", EVIL),
        ev.Note(EVIL),
        ev.Note(text("Forced through the lock held by ", mention("U0OPS"), ": ", EVIL), loud=True),  # type: ignore[arg-type]
        ev.Failed(EVIL),
    )

    assert mrkdwn(view.headline()) == f"Deploy api staging: {EVIL_ESCAPED}"
    assert plain(view.headline()) == f"Deploy api staging: {EVIL}"
    assert lines(details) == [
        EVIL_ESCAPED,
        f":rotating_light: *Forced through the lock held by <@U0OPS>: {EVIL_ESCAPED}*",
        f":x: *Failed:* {EVIL_ESCAPED}",
    ]
    assert plain(details[1].text) == f"🚨 Forced through the lock held by @U0OPS: {EVIL}"

    blocks = parent_blocks(view, now=NOW)
    assert blocks[0]["text"]["text"] == f"*Deploy api staging: {EVIL_ESCAPED}*"
    assert blocks[2]["text"]["text"] == EVIL_ESCAPED, "the outcome, escaped"
    assert parent_text(view) == f"Deploy api staging: {EVIL_ESCAPED} — Failed"
    for rendered in (detail_text(details), *(b["text"]["text"] for b in detail_blocks(details))):
        assert "<!channel>" not in rendered and "<https://evil" not in rendered


def test_the_parent_offers_rollback_once_the_service_changed_and_cancel_while_running() -> None:
    op = record(previous_task_definition=f"{DEF}:1")
    view, _ = play(op, *DEPLOY[:4])
    assert [b["action_id"] for b in parent_blocks(view)[-1]["elements"]] == ["tugboat_cancel"]

    play(op, DEPLOY[4])
    actions = parent_blocks(view)[-1]
    assert actions["block_id"] == "op:op1"
    assert [b["action_id"] for b in actions["elements"]] == ["tugboat_rollback", "tugboat_cancel"]

    play(op, ev.Succeeded("Revision 2 is live."))
    assert [b["action_id"] for b in parent_blocks(view)[-1]["elements"]] == ["tugboat_rollback"]


async def test_the_terminal_prints_plain_lines_and_one_final_status() -> None:
    op = record(previous_task_definition=f"{DEF}:1")
    out = io.StringIO()
    reporter = TerminalReporter(ThreadView(op), out, color=False)
    for event in (*DEPLOY, ev.Succeeded("Revision 2 is live.")):
        fold(op, event, now=NOW)
        await reporter(event)
    reporter.say(text(bold("Confirmed by "), mention("U0OPS"), ": ", EVIL))
    await reporter.close()

    printed = out.getvalue()
    assert printed.startswith("Deploy api staging: v2\n")
    assert "Registered task definition `api-staging:2` (from `api-staging:1`)." in printed
    assert "1/2 running, 1 pending" in printed
    assert "✅ Revision 2 is live." in printed
    assert f"Confirmed by @U0OPS: {EVIL}" in printed
    assert printed.count("✅ Succeeded · done · rev 1 → 2 · by @U0DEV · 1m 15s") == 1
    assert "*" not in printed and "\033[" not in printed and ":white_check_mark:" not in printed
    assert reporter.succeeded


def status(**fields: Any) -> ServiceStatus:
    ref = ServiceRef("us-east-1", "staging", "api")
    deployment = Deployment("ecs-svc/1", "PRIMARY", f"{DEF}:3", 2, 2, 0, 0, "COMPLETED", None)
    snapshot = ServiceSnapshot(
        ref,
        "ACTIVE",
        f"{DEF}:3",
        2,
        2,
        0,
        (deployment,),
        (ServiceEvent("e1", None, "reached a steady state."),),
        {},
    )
    base: dict[str, Any] = {"target": Target("api", "staging"), "snapshot": snapshot, "image_tag": "v3"}
    return ServiceStatus(**(base | fields))


def test_a_status_card_is_text_for_slack_and_the_terminal_alike() -> None:
    last = record(subject="v3", state="succeeded", permalink="https://slack.example/archives/C1/p1")
    lock = Lock("api", "staging", "U0OPS", EVIL, created_at=NOW)
    card = status(lock=lock, last=last)

    slack = "\n".join(mrkdwn(line) for line in card_lines(card, NOW))
    assert slack.splitlines() == [
        ":large_green_circle: *api staging* — steady",
        "2/2 running · 0 pending · rev 3 · `v3`",
        "• PRIMARY COMPLETED: rev 3 2/2",
        "*Recent events:*",
        "  • reached a steady state.",
        f":lock: locked by <@U0OPS>: {EVIL_ESCAPED}",
        "Last: deploy `v3` by <@U0DEV> 75s ago :white_check_mark: <https://slack.example/archives/C1/p1|thread>",
    ]
    assert card_blocks(card, NOW)[0]["text"]["text"] == slack
    terminal = status_lines([card], detail=True)[0]
    assert terminal.splitlines()[0] == "🟢 api staging — steady"
    assert f"🔒 locked by @U0OPS: {EVIL}" in terminal
    assert "thread (https://slack.example/archives/C1/p1)" in terminal

    assert mrkdwn(overview_line(card, NOW)) == (
        ":large_green_circle: *api staging* :lock: · 2/2 · rev 3 · last deploy `v3` by <@U0DEV> 75s ago"
        " :white_check_mark: <https://slack.example/archives/C1/p1|thread>"
    )
    assert overview_blocks([card], NOW)[0]["text"]["text"] == mrkdwn(overview_line(card, NOW))
    missing = status(snapshot=None, problem="service api not found in cluster staging", image_tag=None)
    assert status_lines([missing], detail=False) == [
        "⚫ api staging · service api not found in cluster staging"
    ]


def test_the_sandbox_reads_mrkdwn_as_a_slack_client_shows_it() -> None:
    line = mrkdwn(text(bold("Failed:"), " by ", mention("U0DEV"), ": ", EVIL))
    assert readable(line) == f"Failed: by @U0DEV: {EVIL}"
    assert readable(":white_check_mark: <https://x.example|thread> at 12:30:45") == (
        "✅ thread (https://x.example) at 12:30:45"
    )


def test_a_bold_run_is_one_pair_of_marks_and_a_link_cannot_break_out() -> None:
    assert mrkdwn(bold("held by ", mention("U0OPS"), " ")) == "*held by <@U0OPS>* "
    assert mrkdwn(text(bold("a"), bold("b"))) == "*ab*"
    assert (
        mrkdwn(link("https://x.example/>|<!channel>", "a|b"))
        == "<https://x.example/%3E%7C%3C!channel%3E|a¦b>"
    )
