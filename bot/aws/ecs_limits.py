"""ECS's request throttling, as data: token buckets per group of actions.

AWS, *Request throttling for the Amazon ECS API*: each account and Region has one bucket per
group of actions, shared with every other tool. Tugboat paces itself by these numbers
(`bot.aws.buckets`), so the table lives in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

OTHER = "other"
"""The bucket of any ECS action the table does not name."""


@dataclass(frozen=True)
class BucketLimit:
    """One token bucket: `burst` calls at once, then `refill_per_s` a second on average."""

    burst: float
    refill_per_s: float

    def share(self, fraction: float) -> BucketLimit:
        return BucketLimit(self.burst * fraction, self.refill_per_s * fraction)


@dataclass(frozen=True)
class EcsLimits:
    """ECS's buckets by name, and which bucket each action draws from."""

    buckets: Mapping[str, BucketLimit]
    actions: Mapping[str, str]
    speed: float = field(default=1.0)
    """How many times faster than ECS the buckets refill: 1 in production; tests raise it so
    a minute of ECS's pacing takes seconds."""

    def bucket_of(self, action: str) -> str:
        """The bucket an action draws from: `DescribeServices` or boto3's `describe_services`."""
        return self.actions.get(camel_case(action), OTHER)

    def limit(self, bucket: str) -> BucketLimit:
        limit = self.buckets.get(bucket) or self.buckets[OTHER]
        return BucketLimit(limit.burst, limit.refill_per_s * self.speed)

    def sped_up(self, speed: float) -> EcsLimits:
        """The same buckets, refilling `speed` times faster (for tests and benchmarks)."""
        return EcsLimits(self.buckets, self.actions, speed)


def camel_case(operation: str) -> str:
    """boto3's `describe_services` as ECS names it, `DescribeServices`; names already so stay."""
    if "_" not in operation and operation[:1].isupper():
        return operation
    return "".join(part.capitalize() for part in re.split(r"_+", operation) if part)


def _table(groups: Mapping[str, tuple[BucketLimit, tuple[str, ...]]]) -> EcsLimits:
    buckets = {name: limit for name, (limit, _) in groups.items()}
    actions = {action: name for name, (_, members) in groups.items() for action in members}
    return EcsLimits(MappingProxyType(buckets), MappingProxyType(actions))


ECS_LIMITS = _table(
    {
        "service read": (
            BucketLimit(100, 20),
            ("DescribeServices", "ListServices", "ListServicesByNamespace"),
        ),
        "service modify": (BucketLimit(50, 5), ("UpdateService", "CreateService", "DeleteService")),
        "cluster resource modify": (BucketLimit(100, 40), ("RunTask", "StopTask", "StartTask")),
        "cluster resource read": (BucketLimit(100, 20), ("DescribeTasks", "ListTasks")),
        "task definition modify": (
            BucketLimit(20, 1),
            ("RegisterTaskDefinition", "DeregisterTaskDefinition", "DeleteTaskDefinitions"),
        ),
        "task definition read": (
            BucketLimit(50, 20),
            ("DescribeTaskDefinition", "ListTaskDefinitions", "ListTaskDefinitionFamilies"),
        ),
        # Anything else (service deployments, clusters, tags): a modest bucket of its own.
        OTHER: (BucketLimit(50, 5), ()),
    }
)
"""ECS's documented buckets for the actions a deploy bot makes (see SPEC, "AWS's limits")."""
