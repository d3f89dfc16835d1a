"""Slack wiring: thin Bolt listeners that ack first, then hand the work to a tracked task.

Listeners are declared where they are wired, and everything they need is passed in. What a
command means lives in commands/; what it does lives in bot/slack/dispatch.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.gates import CONTINUE, ROLLBACK
from bot.domain.records import Target
from bot.domain.text import text
from bot.lifecycle import Origin
from bot.operations import Reply
from bot.slack.blocks import CANCEL_ACTION, ROLLBACK_ACTION
from bot.slack.confirm import APPROVE_ACTION, CONFIRM_ACTION, DECLINE_ACTION, WITHDRAW_ACTION
from bot.slack.dispatch import Dispatcher
from bot.slack.gates import CONTINUE_ACTION as PAUSE_CONTINUE
from bot.slack.gates import ROLLBACK_ACTION as PAUSE_ROLLBACK
from bot.slack.replies import SlackReply
from bot.slack.status_cards import (
    COUNT_INPUT,
    REFRESH_ACTION,
    RESTART_ACTION,
    SCALE_ACTION,
    SCALE_VIEW,
    SERVICE_INPUT,
    scale_modal,
)
from commands.grammar import RestartRequest, RollbackRequest, ScaleRequest, UsageError, parse_slash

log = logging.getLogger(__name__)

SLASH_COMMANDS = (
    "/deploy",
    "/rollback",
    "/run-task",
    "/ecs-status",
    "/ecs-scale",
    "/ecs-restart",
    "/tugboat",
)


class _BoltTokenNotice(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN itself and warns it is unused beside our client, which holds
    that very token: a warning on every start that asks nothing of the operator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def build_app(client: AsyncWebClient, dispatcher: Dispatcher) -> AsyncApp:
    """The Bolt app with every listener Tugboat has."""
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_BoltTokenNotice())
    app = AsyncApp(client=client, process_before_response=False)
    ops, front = dispatcher.operations, dispatcher.front

    async def slash(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        origin = Origin(actor=str(command["user_id"]), channel=str(command["channel_id"]))
        dispatcher.submit_slash(
            str(command["command"]), str(command.get("text", "")), origin, _private(respond)
        )

    for name in SLASH_COMMANDS:
        app.command(name)(slash)

    @app.event("app_mention")
    async def mention(event: dict[str, Any], body: dict[str, Any]) -> None:
        origin = Origin(
            actor=str(event.get("user", "")),
            channel=str(event.get("channel", "")),
            trigger="mention",
            thread_ts=event.get("thread_ts"),
        )
        dispatcher.submit_mention(str(event.get("text", "")), origin, body.get("event_id"))

    @app.event("app_home_opened")
    async def home(event: dict[str, Any]) -> None:
        if event.get("tab", "home") == "home":
            dispatcher.submit(dispatcher.home(str(event["user"])), "home")

    @app.action(ROLLBACK_ACTION)
    async def rollback_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        origin = _clicker(body)
        dispatcher.submit(
            _rollback_from(dispatcher, _value(body), origin, _private(respond)), "rollback-button"
        )

    @app.action(CANCEL_ACTION)
    async def cancel_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        dispatcher.submit(ops.cancel(_value(body), _clicker(body), _private(respond)), "cancel-button")

    @app.action(CONFIRM_ACTION)
    async def confirm_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        work = ops.confirm(_value(body), _clicker(body), _private(respond), front, accept=True)
        dispatcher.submit(work, "confirm-button")

    @app.action(DECLINE_ACTION)
    async def decline_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        work = ops.confirm(_value(body), _clicker(body), _private(respond), front, accept=False)
        dispatcher.submit(work, "decline-button")

    @app.action(APPROVE_ACTION)
    async def approve_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        work = ops.approve(_value(body), _clicker(body), _private(respond), front)
        dispatcher.submit(work, "approve-button")

    @app.action(WITHDRAW_ACTION)
    async def withdraw_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        work = ops.withdraw(_value(body), _clicker(body), _private(respond), front)
        dispatcher.submit(work, "withdraw-button")

    async def pause_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        container = body.get("container", {})
        action = str((body.get("actions") or [{}])[0].get("action_id", ""))
        work = dispatcher.answer_pause(
            _value(body),
            CONTINUE if action == PAUSE_CONTINUE else ROLLBACK,
            _clicker(body),
            _private(respond),
            str(container.get("message_ts", "")),
        )
        dispatcher.submit(work, "pause-button")

    app.action(PAUSE_CONTINUE)(pause_button)
    app.action(PAUSE_ROLLBACK)(pause_button)

    @app.action(REFRESH_ACTION)
    async def refresh_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        app_name, _, env = _value(body).partition(" ")
        container = body.get("container", {})
        if dispatcher.catalog.has(app_name, env):
            work = dispatcher.refresh_status(
                Target(app_name, env),
                _clicker(body),
                str(container.get("channel_id")),
                str(container.get("message_ts")),
            )
            dispatcher.submit(work, "refresh-button")

    @app.action(RESTART_ACTION)
    async def restart_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        target = _card_target(dispatcher, body)
        if target is not None:
            request, origin = RestartRequest(target), _clicker(body)
            dispatcher.submit(
                _quietly(ops.restart(request, origin, _private(respond), front)), "restart-button"
            )

    @app.action(SCALE_ACTION)
    async def scale_button(ack: AsyncAck, body: dict[str, Any]) -> None:
        """Scale opens the modal at once: its trigger_id lasts 3 seconds, so nothing slow comes first.
        Who may act is checked when the count is submitted."""
        await ack()
        target = _card_target(dispatcher, body)
        if target is None:
            return
        _, env = dispatcher.catalog.target(target.app, target.env)
        channel = str((body.get("channel") or {}).get("id", ""))
        view = scale_modal(target, env.service_names(), env.max_tasks, channel)
        await dispatcher.slack.call("views.open", trigger_id=str(body.get("trigger_id", "")), view=view)

    @app.view(SCALE_VIEW)
    async def scale_submitted(ack: AsyncAck, body: dict[str, Any]) -> None:
        """The count, parsed by `/ecs-scale`'s own grammar; a bad one is shown in the modal."""
        view = body.get("view") or {}
        app_name, env, channel = [*str(view.get("private_metadata", "")).split(" "), "", "", ""][:3]
        values = (view.get("state") or {}).get("values") or {}
        count = str((values.get(COUNT_INPUT) or {}).get(COUNT_INPUT, {}).get("value") or "").strip()
        chosen = (values.get(SERVICE_INPUT) or {}).get(SERVICE_INPUT, {}).get("selected_option") or {}
        words = [app_name, env, count or "?", *([str(chosen["value"])] if chosen.get("value") else [])]
        try:
            if not count.isdigit():
                raise UsageError("Give the number of tasks as digits, like 3.")
            request = parse_slash("/ecs-scale", " ".join(words), dispatcher.catalog)
            assert isinstance(request, ScaleRequest)
        except UsageError as exc:
            await ack(response_action="errors", errors={COUNT_INPUT: exc.problem[:150]})
            return
        await ack()
        origin = Origin(actor=str((body.get("user") or {}).get("id", "")), channel=channel, trigger="button")
        dispatcher.submit(
            _quietly(ops.scale(request, origin, dispatcher.ephemeral(origin), front)), "scale-modal"
        )

    return app


async def _quietly(work: Awaitable[object]) -> None:
    """An operation started from a button: its thread and replies say what became of it."""
    await work


def _card_target(dispatcher: Dispatcher, body: dict[str, Any]) -> Target | None:
    """The `APP ENV` a status card's button names, if the catalog still has it."""
    app_name, _, env = _value(body).partition(" ")
    return Target(app_name, env) if dispatcher.catalog.has(app_name, env) else None


async def _rollback_from(dispatcher: Dispatcher, op_id: str, origin: Origin, reply: Reply) -> None:
    """The Rollback button on a thread: back to the revision before that operation."""
    record = await dispatcher.store.get(op_id)
    if record is None:
        await reply(text("I have no record of that deploy any more."))
        return
    if not dispatcher.catalog.has(record.app, record.env):
        await reply(text(f"{record.app} {record.env} is no longer in the catalog."))
        return
    await dispatcher.operations.rollback(
        RollbackRequest(record.target),
        origin,
        reply,
        dispatcher.front,
        to_task_definition=record.previous_task_definition,
        to_services={
            s.name: s.previous_task_definition for s in record.services if s.previous_task_definition
        }
        or None,
    )


def _private(respond: AsyncRespond) -> SlackReply:
    async def send(summary: str, blocks: list[dict[str, Any]] | None) -> None:
        await respond(text=summary, blocks=blocks, response_type="ephemeral", replace_original=False)

    return SlackReply(send)


def _clicker(body: dict[str, Any]) -> Origin:
    channel = body.get("channel") or {}
    return Origin(
        actor=str(body.get("user", {}).get("id", "")),
        channel=str(channel.get("id", "")),
        trigger="button",
    )


def _value(body: dict[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value", ""))
