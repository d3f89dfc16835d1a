"""State backends behind one interface; `open_store` picks one from TUGBOAT_STATE."""

from __future__ import annotations

from bot.domain.records import Lock, OperationRecord
from bot.state.base import StateStore
from bot.state.sqlite import SqliteStore

__all__ = ["Lock", "OperationRecord", "SqliteStore", "StateStore", "store_from_url"]


def store_from_url(url: str) -> StateStore:
    """`sqlite:///PATH` or `dynamodb://TABLE` (validated by Settings before we get here)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith("dynamodb://"):
        from bot.state.dynamodb import DynamoStore

        return DynamoStore(url.removeprefix("dynamodb://"))
    raise ValueError(f"unsupported TUGBOAT_STATE {url!r}: expected sqlite:///PATH or dynamodb://TABLE")
