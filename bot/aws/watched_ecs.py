"""WatchedEcs: the gateway, also offering the shared watcher's `follow_task` (the TaskWatcher port).

`commands.run_task.wait_one_off` sees only the Ecs port; offering `follow_task` on it lets
every one-off task be followed in the shared watcher's batched describe_tasks, woken by ECS
task events, instead of each polling on its own. A subclass rather than a wrapper, so every
gateway call (including ones added later) stays exactly the gateway's.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from bot.aws.ecs import EcsGateway
from bot.aws.watcher import RolloutWatcher, TaskSubscription
from bot.domain.aws import ServiceRef


class WatchedEcs(EcsGateway):
    """An EcsGateway whose one-off tasks are followed by the watcher it is `watched_by`."""

    _watcher: RolloutWatcher | None = None

    def watched_by(self, watcher: RolloutWatcher) -> None:
        """The watcher is built on this gateway, so it is introduced after both exist."""
        self._watcher = watcher

    def follow_task(self, ref: ServiceRef, arn: str) -> AbstractAsyncContextManager[TaskSubscription]:
        if self._watcher is None:
            raise RuntimeError("WatchedEcs.follow_task before watched_by(watcher)")
        return self._watcher.follow_task(ref, arn)
