"""What a Slack user sees, read off the fake: threads, their final state, ephemerals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.sandbox.fake_slack import FakeSlack, Message, wait_for

FINAL_WORDS = ("*Succeeded*", "*Succeeded with warnings*", "*Failed*")


def parents(fake: FakeSlack, channel: str) -> list[Message]:
    """Top-level messages the bot posted in `channel`."""
    return [m for m in fake.channel_messages(channel) if m.user == "U0TUGBOAT"]


def is_final(message: Message) -> bool:
    return any(word in message.flat for word in FINAL_WORDS)


async def final_parent(fake: FakeSlack, channel: str, index: int = -1, timeout: float = 30) -> Message:
    """Wait until the `index`-th thread in `channel` shows a final state, and return it."""

    def check() -> Message | None:
        found = parents(fake, channel)
        if not found or len(found) <= (index if index >= 0 else -index - 1):
            return None
        message = found[index]
        return message if is_final(message) else None

    return await wait_for(check, timeout=timeout, what=f"a final thread state in {channel}")


async def parent_where(
    fake: FakeSlack, channel: str, test: Callable[[Message], bool], *, what: str, timeout: float = 10
) -> Message:
    """Wait for a message the bot posted in `channel` that passes `test`, and return the first."""
    return await wait_for(
        lambda: next((m for m in parents(fake, channel) if test(m)), None), timeout=timeout, what=what
    )


async def confirmation_in(fake: FakeSlack, channel: str = "C0DEPLOY") -> Message:
    """The card that asks to confirm or cancel a deploy, in `channel`."""
    return await parent_where(
        fake, channel, lambda m: "Confirm or cancel" in m.text, what=f"a confirmation in {channel}"
    )


async def all_succeeded(fake: FakeSlack, channel: str, count: int, timeout: float = 90) -> list[Message]:
    """Wait until `channel` holds `count` threads, every one of them succeeded; return them."""

    def check() -> list[Message] | None:
        found = parents(fake, channel)
        return found if len(found) == count and all("*Succeeded*" in p.flat for p in found) else None

    return await wait_for(check, timeout=timeout, what=f"{count} final threads")


async def deployed(
    fake: FakeSlack,
    text: str = "api staging v2",
    *,
    user: str = "U0DEV",
    channel: str = "C0STAGING",
    index: int = -1,
    timeout: float = 30,
) -> Message:
    """`/deploy text` from `user`, then its thread in `channel` once it shows a final state."""
    fake.slash_command("/deploy", text, user=user)
    return await final_parent(fake, channel, index, timeout=timeout)


async def thread_under_way(
    fake: FakeSlack, command: str, text: str, *, reached: str, user: str = "U0DEV", channel: str = "C0STAGING"
) -> Message:
    """Send a slash command, wait for its thread in `channel` and for a reply saying `reached`."""
    fake.slash_command(command, text, user=user)
    parent = await wait_for(lambda: next(iter(parents(fake, channel)), None), timeout=20, what="thread")
    await thread_text(fake, parent, must_contain=reached, timeout=20)
    return parent


async def thread_text(
    fake: FakeSlack, parent: Message, *, must_contain: str = "", timeout: float = 10
) -> str:
    """All replies of a thread as one text (waits until `must_contain` shows up)."""

    def check() -> str | None:
        text = "\n".join(m.flat for m in fake.thread(parent.channel, parent.ts))
        return text if must_contain in text else None

    return await wait_for(check, timeout=timeout, what=f"{must_contain!r} in the thread")


async def ephemeral_to(fake: FakeSlack, user: str, *, containing: str = "", timeout: float = 10) -> str:
    def check() -> str | None:
        for message in fake.ephemerals(user=user):
            if containing in message.flat:
                return message.flat
        return None

    return await wait_for(check, timeout=timeout, what=f"an ephemeral to {user} with {containing!r}")


async def answer_to(
    fake: FakeSlack, command: str, text: str, *, containing: str, user: str = "U0DEV", channel: str = "C0DEV"
) -> str:
    """`command text` from `user` in `channel`, and the ephemeral answer that says `containing`."""
    fake.slash_command(command, text, user=user, channel=channel)
    return await ephemeral_to(fake, user, containing=containing)


def service(world: Any, cluster: str, name: str) -> dict[str, Any]:
    """What ECS says about a service now."""
    answer = world.client("ecs").describe_services(cluster=cluster, services=[name])
    return dict(answer["services"][0])


def revisions(world: Any, family: str) -> list[str]:
    return list(world.client("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"])
