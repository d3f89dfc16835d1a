"""State backends behind one interface; `open_store` picks one from TUGBOAT_STATE."""

from __future__ import annotations

from bot.store.base import Lock, OperationRecord, StateStore
from bot.store.sqlite import SqliteStore

__all__ = ["Lock", "OperationRecord", "SqliteStore", "StateStore", "store_from_url"]


def store_from_url(url: str) -> StateStore:
    """`sqlite:///PATH` or `dynamodb://TABLE` (validated by Settings before we get here)."""
    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith("dynamodb://"):
        from bot.store.dynamodb import DynamoStore

        return DynamoStore(url.removeprefix("dynamodb://"))
    raise ValueError(f"unsupported TUGBOAT_STATE {url!r}: expected sqlite:///PATH or dynamodb://TABLE")
