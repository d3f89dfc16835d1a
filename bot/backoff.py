"""The one backoff rule: full jitter, as AWS's architecture blog recommends.

Every retry loop (AWS calls, Slack calls, the rollout watcher) draws its delay here, so
contending callers spread out instead of retrying in lockstep.
"""

from __future__ import annotations

import random
from typing import Protocol

# 2**60 times any sane base is far past any cap; bounding the exponent avoids float overflow.
_MAX_EXPONENT = 60


class Uniform(Protocol):
    """What full_jitter needs of a random source: the `random` module or a seeded Random."""

    def uniform(self, a: float, b: float) -> float: ...


def ceiling(attempt: int, *, base_s: float, cap_s: float) -> float:
    """The largest delay after `attempt` failures: doubles from `base_s * 2`, up to `cap_s`."""
    return min(cap_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))


def full_jitter(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    floor_s: float = 0.0,
    rng: Uniform = random,
) -> float:
    """A delay drawn uniformly from [floor_s, ceiling], `attempt` counting failures so far.

    A floor keeps a poller from coming straight back (the watcher's shortest interval).
    """
    return rng.uniform(floor_s, max(floor_s, ceiling(attempt, base_s=base_s, cap_s=cap_s)))
