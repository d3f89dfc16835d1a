"""What a Slack user sees, read off the fake: threads, their final state, ephemerals."""

from __future__ import annotations

from typing import Any

from bot.sandbox.fake_slack import FakeSlack, Message, wait_for

FINAL_WORDS = ("*Succeeded*", "*Failed*")


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


def service(world: Any, cluster: str, name: str) -> dict[str, Any]:
    """What ECS says about a service now."""
    answer = world.client("ecs").describe_services(cluster=cluster, services=[name])
    return dict(answer["services"][0])


def revisions(world: Any, family: str) -> list[str]:
    return list(world.client("ecs").list_task_definitions(familyPrefix=family)["taskDefinitionArns"])
