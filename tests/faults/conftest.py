"""Fixtures for tests that run the bot as real processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.process import BotProcess


@pytest.fixture
def processes() -> Iterator[list[BotProcess]]:
    """Bot processes a test launches; every one is stopped at the end, whatever happened."""
    started: list[BotProcess] = []
    yield started
    for process in started:
        process.stop()
