"""The one backoff rule, on its inputs alone: bounds, growth, cap, floor and determinism."""

from __future__ import annotations

import random

import pytest

from bot.backoff import ceiling, full_jitter


def draws(attempt: int, n: int = 500, **kwargs: float) -> list[float]:
    rng = random.Random(attempt)
    return [full_jitter(attempt, rng=rng, base_s=0.5, cap_s=20.0, **kwargs) for _ in range(n)]


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 5, 10])
def test_every_delay_lies_between_zero_and_the_ceiling(attempt: int) -> None:
    top = ceiling(attempt, base_s=0.5, cap_s=20.0)
    assert all(0.0 <= d <= top for d in draws(attempt))


def test_the_ceiling_doubles_with_each_failure_until_the_cap() -> None:
    tops = [ceiling(a, base_s=0.5, cap_s=20.0) for a in range(8)]
    assert tops == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_delays_grow_on_average_and_spread_over_the_whole_range() -> None:
    means = [sum(draws(a)) / 500 for a in (1, 2, 3, 4)]
    assert means == sorted(means)
    # Full jitter: about half the ceiling on average, some near zero, some near the top.
    assert 0.4 < means[3] / ceiling(4, base_s=0.5, cap_s=20.0) < 0.6
    late = draws(4)
    assert min(late) < 0.5 and max(late) > 7.5


def test_the_cap_holds_for_any_number_of_failures() -> None:
    assert ceiling(10_000, base_s=0.5, cap_s=20.0) == 20.0
    assert max(draws(10_000)) <= 20.0


def test_a_floor_keeps_every_delay_above_it() -> None:
    assert all(d >= 1.0 for d in draws(1, floor_s=1.0))
    # A floor above the ceiling wins: the delay is the floor itself.
    assert set(draws(0, n=20, floor_s=3.0)) == {3.0}


def test_the_same_seed_gives_the_same_delays() -> None:
    first = [full_jitter(a, base_s=0.5, cap_s=20.0, rng=random.Random(7)) for a in range(6)]
    second = [full_jitter(a, base_s=0.5, cap_s=20.0, rng=random.Random(7)) for a in range(6)]
    assert first == second
    other = [full_jitter(a, base_s=0.5, cap_s=20.0, rng=random.Random(8)) for a in range(6)]
    assert first != other


def test_the_module_random_is_the_default_source() -> None:
    random.seed(3)
    first = full_jitter(2, base_s=0.5, cap_s=20.0)
    random.seed(3)
    assert full_jitter(2, base_s=0.5, cap_s=20.0) == first
