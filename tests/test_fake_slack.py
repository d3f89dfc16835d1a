"""The fake Slack, driven through the real slack_sdk and slack_bolt clients."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.blockkit import check_message, check_view, flatten
from bot.sandbox.fake_slack import (
    Change,
    FakeSlack,
    Message,
    NoSocketConnected,
    wait_for,
    wait_for_sync,
)

CHANNEL = "C0DEV"
USER = "U0DEV"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(label: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }


def edited_message(fake: FakeSlack, ts: str) -> Message | None:
    message = fake.message(CHANNEL, ts)
    return message if message is not None and message.edits else None


@dataclass
class Bot:
    app: AsyncApp
    handler: AsyncSocketModeHandler
    client: AsyncWebClient


@pytest.fixture
def web(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


@pytest.fixture
async def bot(fake: FakeSlack) -> AsyncIterator[Bot]:
    client = AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)
    app = AsyncApp(client=client)
    # A short ping interval: after an abrupt drop the client only notices on its next ping tick.
    handler = AsyncSocketModeHandler(app, fake.app_token, ping_interval=1)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    await wait_for(lambda: fake.connection_count == 1, what="the bot to connect")
    yield Bot(app, handler, client)
    await handler.close_async()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------- socket mode


async def test_slash_command_reaches_listener_and_ack_text_shows_as_ephemeral(
    fake: FakeSlack, bot: Bot
) -> None:
    @bot.app.command("/deploy")
    async def deploy(ack: Any, command: dict[str, Any]) -> None:
        await ack(f"Deploying {command['text']} for {command['user_name']}")

    envelope_id = fake.slash_command("/deploy", "api", user=USER, user_name="alice")

    ack = await wait_for(lambda: fake.ack_for(envelope_id), what="the ack")
    assert ack.latency_s < 1.0
    assert ack.payload == {"text": "Deploying api for alice"}
    [shown] = fake.ephemerals(user=USER, channel=CHANNEL)
    assert shown.text == "Deploying api for alice"
    assert fake.channel_messages(CHANNEL) == []


async def test_unacknowledged_slash_command_shows_operation_timeout(fake: FakeSlack, bot: Bot) -> None:
    fake.ack_timeout_s = 0.2

    @bot.app.command("/slow")
    async def slow(ack: Any) -> None:
        """Never acks, as if the bot were stuck."""

    envelope_id = fake.slash_command("/slow", "")

    shown = await wait_for(lambda: fake.ephemerals(user=USER), what="Slack's timeout notice")
    assert shown[0].text == '/slow failed with the error "operation_timeout"'
    assert fake.ack_for(envelope_id) is None


async def test_response_url_posts_ephemeral_and_in_channel(fake: FakeSlack, bot: Bot) -> None:
    @bot.app.command("/deploy")
    async def deploy(ack: Any, respond: Any) -> None:
        await ack()
        await respond("Only you can see this")
        await respond(text="Deploying api to prod", response_type="in_channel")

    fake.slash_command("/deploy", "api prod")

    await wait_for(lambda: len(fake.channel_messages(CHANNEL)) == 2, what="in_channel reply")
    typed, announced = fake.channel_messages(CHANNEL)
    assert (typed.user, typed.text) == (USER, "/deploy api prod")
    assert (announced.user, announced.text) == (fake.bot_user_id, "Deploying api to prod")
    assert [m.text for m in fake.ephemerals(user=USER)] == ["Only you can see this"]


async def test_response_url_allows_five_posts(fake: FakeSlack, bot: Bot) -> None:
    statuses: list[int] = []

    @bot.app.command("/spam")
    async def spam(ack: Any, respond: Any) -> None:
        await ack()
        for attempt in range(6):
            statuses.append((await respond(f"post {attempt}")).status_code)

    fake.slash_command("/spam", "")

    await wait_for(lambda: len(statuses) == 6, what="six response_url posts")
    assert statuses == [200] * 5 + [404]
    assert len(fake.ephemerals(user=USER)) == 5


async def test_mention_in_thread_carries_thread_ts(fake: FakeSlack, bot: Bot, web: AsyncWebClient) -> None:
    parent = await web.chat_postMessage(channel=CHANNEL, text="Deploy of api started")

    @bot.app.event("app_mention")
    async def mentioned(event: dict[str, Any], say: Any) -> None:
        await say(text=f"Status of {event['text'].split()[-1]}: ok", thread_ts=event["thread_ts"])

    fake.mention("status api", user=USER, channel=CHANNEL, thread_ts=parent["ts"])

    await wait_for(lambda: len(fake.thread(CHANNEL, parent["ts"])) == 2, what="the reply")
    question, answer = fake.thread(CHANNEL, parent["ts"])
    assert question.text == f"<@{fake.bot_user_id}> status api"
    assert question.user == USER
    assert answer.text == "Status of api: ok"
    assert [m.ts for m in fake.channel_messages(CHANNEL)] == [parent["ts"]]


async def test_retried_event_is_delivered_again_but_shown_once(fake: FakeSlack, bot: Bot) -> None:
    deliveries: list[tuple[str, list[str]]] = []

    @bot.app.event("app_mention")
    async def mentioned(body: dict[str, Any], request: Any) -> None:
        deliveries.append((body["event_id"], request.headers.get("x-slack-retry-num")))

    fake.mention("status", event_id="Ev0RETRIED")
    await wait_for(lambda: len(deliveries) == 1, what="the first delivery")
    fake.mention("status", event_id="Ev0RETRIED")

    await wait_for(lambda: len(deliveries) == 2, what="the retry")
    assert deliveries == [("Ev0RETRIED", ["0"]), ("Ev0RETRIED", ["1"])]
    assert len(fake.channel_messages(CHANNEL)) == 1


async def test_click_reaches_action_listener_with_the_message(
    fake: FakeSlack, bot: Bot, web: AsyncWebClient
) -> None:
    blocks = [
        section("*api* deployed to prod"),
        {"type": "actions", "elements": [button("Roll back", "rollback", "api:41")]},
    ]
    posted = await web.chat_postMessage(channel=CHANNEL, text="api deployed", blocks=blocks)
    clicked: list[dict[str, Any]] = []

    @bot.app.action("rollback")
    async def rollback(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        clicked.append(body)
        await respond(text="Rolling back api", replace_original=True)

    fake.click(CHANNEL, posted["ts"], "rollback", user=USER)

    edited = await wait_for(lambda: edited_message(fake, posted["ts"]), what="the replacement")
    assert edited.text == "Rolling back api"
    assert edited.edits[0].flat == "*api* deployed to prod\n[Roll back]"
    [body] = clicked
    assert body["message"]["ts"] == posted["ts"]
    assert body["actions"][0]["value"] == "api:41"
    assert body["container"]["is_ephemeral"] is False
    with pytest.raises(LookupError, match="no button 'promote'"):
        fake.click(CHANNEL, posted["ts"], "promote")


async def test_click_on_ephemeral_button(fake: FakeSlack, bot: Bot, web: AsyncWebClient) -> None:
    blocks = [
        section("Really deploy?"),
        {"type": "actions", "elements": [button("Yes", "yes", "1")]},
    ]
    posted = await web.chat_postEphemeral(channel=CHANNEL, user=USER, text="?", blocks=blocks)
    containers: list[dict[str, Any]] = []

    @bot.app.action("yes")
    async def yes(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        containers.append(body["container"])
        await respond(text="Deploying", replace_original=True)

    fake.click_ephemeral(posted["message_ts"], "yes")

    await wait_for(lambda: fake.ephemerals(user=USER)[0].text == "Deploying", what="replace")
    assert containers[0]["is_ephemeral"] is True


async def test_app_home_opened_and_views_publish(fake: FakeSlack, bot: Bot) -> None:
    @bot.app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        view = {"type": "home", "blocks": [section("*Services*"), section("api: healthy")]}
        await client.views_publish(user_id=event["user"], view=view)

    fake.app_home_opened(USER)

    [view] = await wait_for(lambda: fake.views(USER), what="home view")
    assert (view.type, view.flat) == ("home", "*Services*\napi: healthy")


async def test_modal_needs_a_fresh_unused_trigger(fake: FakeSlack, bot: Bot) -> None:
    errors: list[str] = []
    modal = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Run task"},
        "blocks": [section("Which service?")],
    }

    @bot.app.command("/run")
    async def run(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        for _ in range(2):
            try:
                await client.views_open(trigger_id=body["trigger_id"], view=modal)
            except SlackApiError as refused:
                errors.append(refused.response["error"])

    fake.slash_command("/run", "")
    [view] = await wait_for(lambda: fake.views(USER), what="the modal")
    await wait_for(lambda: len(errors) == 1, what="the reused trigger")
    fake.trigger_ttl_s = 0
    fake.slash_command("/run", "")

    await wait_for(lambda: len(errors) == 3, what="the expired trigger")
    assert (view.type, view.flat) == ("modal", "Run task\nWhich service?")
    assert errors == ["exchanged_trigger_id", "expired_trigger_id", "expired_trigger_id"]
    assert len(fake.views(USER)) == 1


async def test_drop_connections_then_client_reconnects_by_itself(fake: FakeSlack, bot: Bot) -> None:
    @bot.app.command("/deploy")
    async def deploy(ack: Any) -> None:
        await ack("on it")

    assert fake.drop_connections() == 1
    with pytest.raises(NoSocketConnected):
        fake.slash_command("/deploy", "api")

    await wait_for(lambda: fake.connections_opened == 2, what="a reconnect")
    await wait_for(bot.handler.client.is_connected, what="is_connected")
    envelope_id = fake.slash_command("/deploy", "api")
    await wait_for(lambda: fake.ack_for(envelope_id), what="the ack after reconnecting")
    assert [m.text for m in fake.ephemerals(user=USER)] == ["on it"]


async def test_refresh_request_moves_client_to_new_connection(fake: FakeSlack, bot: Bot) -> None:
    @bot.app.command("/deploy")
    async def deploy(ack: Any) -> None:
        await ack("on it")

    fake.request_reconnect(grace_s=5)

    await wait_for(lambda: fake.connections_opened == 2, what="the client to move")
    await wait_for(lambda: fake.connection_count == 1, what="the old socket to close")
    envelope_id = fake.slash_command("/deploy", "api")
    await wait_for(lambda: fake.ack_for(envelope_id), what="the ack")
    assert [m.text for m in fake.ephemerals(user=USER)] == ["on it"]


# ---------------------------------------------------------------------- web API


async def test_post_thread_update_and_permalink(fake: FakeSlack, web: AsyncWebClient) -> None:
    parent = await web.chat_postMessage(channel=CHANNEL, text="Deploying api", blocks=[section("v1")])
    first = await web.chat_postMessage(channel=CHANNEL, text="step 1", thread_ts=parent["ts"])
    second = await web.chat_postMessage(channel=CHANNEL, text="step 2", thread_ts=first["ts"])
    await web.chat_update(channel=CHANNEL, ts=parent["ts"], text="Deployed api", blocks=[section("v2")])

    assert float(parent["ts"]) < float(first["ts"]) < float(second["ts"])
    assert len(parent["ts"].split(".")[1]) == 6
    assert [m.text for m in fake.thread(CHANNEL, parent["ts"])] == ["step 1", "step 2"]
    assert [m.ts for m in fake.channel_messages(CHANNEL)] == [parent["ts"]]
    updated = fake.message(CHANNEL, parent["ts"])
    assert updated is not None
    assert (updated.flat, [e.flat for e in updated.edits]) == ("v2", ["v1"])
    link = await web.chat_getPermalink(channel=CHANNEL, message_ts=second["ts"])
    digits = second["ts"].replace(".", "")
    assert link["permalink"].startswith(f"https://tugboat-sandbox.slack.com/archives/{CHANNEL}/p{digits}")


async def test_broadcast_reply_and_reaction(fake: FakeSlack, web: AsyncWebClient) -> None:
    parent = await web.chat_postMessage(channel=CHANNEL, text="Deploying api")
    reply = await web.chat_postMessage(
        channel=CHANNEL, text="api failed", thread_ts=parent["ts"], reply_broadcast=True
    )
    await web.reactions_add(channel=CHANNEL, timestamp=parent["ts"], name="x")

    assert [m.text for m in fake.channel_messages(CHANNEL)] == ["Deploying api", "api failed"]
    assert [m.ts for m in fake.thread(CHANNEL, parent["ts"])] == [reply["ts"]]
    reacted = fake.message(CHANNEL, parent["ts"])
    assert reacted is not None
    assert reacted.reactions == {"x": [fake.bot_user_id]}


async def test_update_of_unknown_message_is_refused(web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as refused:
        await web.chat_update(channel=CHANNEL, ts="1.000001", text="nope")
    assert refused.value.response["error"] == "message_not_found"


async def test_form_encoded_blocks_are_accepted(fake: FakeSlack, web: AsyncWebClient) -> None:
    await web.api_call(
        "chat.postMessage",
        data={"channel": CHANNEL, "text": "hi", "blocks": json.dumps([section("form *hi*")])},
    )
    assert [m.flat for m in fake.channel_messages(CHANNEL)] == ["form *hi*"]


async def test_posting_faster_than_the_limit_gets_429_until_retried(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    fake.set_rate_limit("chat.postMessage", per_second=1, burst=2)
    await web.chat_postMessage(channel=CHANNEL, text="1")
    await web.chat_postMessage(channel=CHANNEL, text="2")

    with pytest.raises(SlackApiError) as limited:
        await web.chat_postMessage(channel=CHANNEL, text="3")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "1"
    assert limited.value.response["error"] == "ratelimited"

    patient = AsyncWebClient(
        token=fake.bot_token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    await patient.chat_postMessage(channel=CHANNEL, text="3")
    assert [m.text for m in fake.channel_messages(CHANNEL)] == ["1", "2", "3"]


async def test_injected_faults_answer_without_performing(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.fail_every_nth_call(2, status=503, methods=["chat.postMessage"])
    await web.chat_postMessage(channel=CHANNEL, text="first")
    with pytest.raises(SlackApiError) as failed:
        await web.chat_postMessage(channel=CHANNEL, text="second")
    fake.clear_faults()
    await web.chat_postMessage(channel=CHANNEL, text="third")

    assert failed.value.response.status_code == 503
    assert [m.text for m in fake.channel_messages(CHANNEL)] == ["first", "third"]
    assert [c.status for c in fake.calls if c.method == "chat.postMessage"] == [200, 503, 200]


async def test_invalid_blocks_are_refused_and_recorded(fake: FakeSlack, web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as too_many:
        await web.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("x")] * 51)
    with pytest.raises(SlackApiError) as too_long:
        await web.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("x" * 3001)])

    assert too_many.value.response["error"] == "invalid_blocks"
    assert too_long.value.response["errors"] == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"
    ]
    assert fake.block_kit_violations == [
        "chat.postMessage: no more than 50 items allowed [json-pointer:/blocks]",
        "chat.postMessage: must be less than 3001 characters [json-pointer:/blocks/0/text/text]",
    ]
    assert fake.channel_messages(CHANNEL) == []


async def test_usergroup_members(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.set_usergroup("S0OPS", ["U1", "U2"])

    members = await web.usergroups_users_list(usergroup="S0OPS")
    with pytest.raises(SlackApiError) as unknown:
        await web.usergroups_users_list(usergroup="S0NOPE")

    assert members["users"] == ["U1", "U2"]
    assert unknown.value.response["error"] == "no_such_subteam"


async def test_tokens_are_checked(fake: FakeSlack) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    app_token = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)

    with pytest.raises(SlackApiError) as invalid:
        await wrong.auth_test()
    with pytest.raises(SlackApiError) as wrong_type:
        await app_token.chat_postMessage(channel=CHANNEL, text="hi")

    assert invalid.value.response["error"] == "invalid_auth"
    assert wrong_type.value.response["error"] == "not_allowed_token_type"
    assert (await app_token.apps_connections_open(app_token=fake.app_token))["ok"]


async def test_subscribers_see_changes_in_order(fake: FakeSlack, web: AsyncWebClient) -> None:
    changes: list[Change] = []
    unsubscribe = fake.subscribe(changes.append)

    posted = await web.chat_postMessage(channel=CHANNEL, text="one")
    await web.chat_update(channel=CHANNEL, ts=posted["ts"], text="two")
    await web.chat_postEphemeral(channel=CHANNEL, user=USER, text="psst")

    await wait_for(lambda: len(changes) == 3, what="three changes")
    unsubscribe()
    assert [(c.kind, c.message.flat) for c in changes] == [
        ("posted", "one"),
        ("updated", "two"),
        ("ephemeral", "psst"),
    ]


async def test_raw_response_url_rejects_unknown_ids(fake: FakeSlack) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}response/nope", json={"text": "hi"}) as answer,
    ):
        assert answer.status == 404


# ---------------------------------------------------------------------- block kit


def test_block_kit_limits() -> None:
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}
    actions = {"type": "actions", "elements": [button("b" * 76, "go", "v")]}
    fields = {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}

    assert check_message("ok", [header, actions, fields]) == [
        "must be less than 151 characters [json-pointer:/blocks/0/text/text]",
        "must be less than 76 characters [json-pointer:/blocks/1/elements/0/text/text]",
        "must be less than 2001 characters [json-pointer:/blocks/2/fields/0/text]",
    ]
    assert check_message("x" * 40_001, None) == ["text is 40001 characters, over 40000"]
    assert check_message("ok", [{"text": "no type"}]) == [
        "missing required field: type [json-pointer:/blocks/0]"
    ]
    assert check_view({"type": "home", "blocks": [section("x")] * 101}) == [
        "no more than 100 items allowed [json-pointer:/view/blocks]"
    ]
    assert check_message("ok", [section("x")] * 50) == []


def test_flatten_renders_what_users_read() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Deploy api"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "to *prod*"}, "fields": []},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "by alice"}]},
        {"type": "divider"},
        {"type": "actions", "elements": [button("Roll back", "rollback", "1")]},
        {
            "type": "rich_text",
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "done"}]}],
        },
    ]
    assert flatten(blocks) == "Deploy api\nto *prod*\nby alice\n---\n[Roll back]\ndone"


def test_wait_for_sync_times_out_with_what() -> None:
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_for_sync(lambda: None, timeout=0.05, what="the impossible")
