"""GitHub Deployments: GitHub shows which commit runs in which environment, as Tugboat ships it.

The lifecycle hands every operation's reporter to `GitHubDeployments.observe`, which wraps the
reporter of a deploy or rollback of an app with a `repository`: once the image is known, a
deployment of its commit is created (`in_progress`, `log_url` = the thread), and the final
event sets `success` or `failure`; a success marks the deployment it replaced `inactive`
(GitHub's own `auto_inactive` skips production environments). All of it runs beside the
operation, in one tracked task per operation: the rollout never waits for GitHub, and a
GitHub error is said once in the thread and counted, never turned into a failure.
An operation resumed after a restart keeps its deployment: the one its record names, else
the one GitHub holds for it (found by commit, environment and operation id), else a new one
once the service was changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial

from bot.domain.aws import AwsError
from bot.domain.catalog import Catalog
from bot.domain.code import CodeHostError, commit_of
from bot.domain.events import Failed, ImageVerified, ProgressEvent, ServiceUpdated, Succeeded
from bot.domain.ports import Ecs
from bot.domain.records import OperationRecord
from bot.domain.text import Text, emoji, text
from bot.github.client import GitHubClient
from bot.lifecycle import Reporter, TaskTracker
from bot.settings import Settings
from bot.state import StateStore
from commands.taskdef import container_image, tag_of

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
ACTIONS = ("deploy", "rollback")


class GitHubDeployments:
    """Wraps the reporters of deploys and rollbacks of apps with a `repository` (see `observe`)."""

    def __init__(
        self, client: GitHubClient, catalog: Catalog, ecs: Ecs, store: StateStore, tracker: TaskTracker
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.ecs = ecs
        self.store = store
        self.tracker = tracker

    @classmethod
    def from_settings(
        cls, settings: Settings, catalog: Catalog, ecs: Ecs, store: StateStore, tracker: TaskTracker
    ) -> GitHubDeployments | None:
        """With GITHUB_TOKEN, deployments over a client of their own (a CLI twin's run); else None."""
        if settings.github_token is None:
            return None
        return cls(GitHubClient(settings.github_token, settings.github_api_url), catalog, ecs, store, tracker)

    @property
    def code(self) -> GitHubClient:
        """The client, for the CI gate and the commits on cards."""
        return self.client

    async def close(self) -> None:
        await self.client.close()

    def observe(self, record: OperationRecord, reporter: Reporter) -> Reporter:
        """The lifecycle's reporter hook: `reporter` itself, or it wrapped to tell GitHub too."""
        if record.action not in ACTIONS or not self.catalog.has(record.app, record.env):
            return reporter
        repository = self.catalog.apps[record.app].repository
        if repository is None:
            return reporter
        return DeploymentReporter(self, record, reporter, repository)


class DeploymentReporter:
    """One operation's reporter, plus its GitHub deployment, told in order by one tracked task."""

    def __init__(
        self, owner: GitHubDeployments, record: OperationRecord, inner: Reporter, repository: str
    ) -> None:
        self.owner = owner
        self.record = record
        self.inner = inner
        self.repository = repository
        known = record.extra.get("github_deployment")
        self.deployment: int | None = known if isinstance(known, int) else None
        self._started = self.deployment is not None  # a resumed operation keeps its deployment
        self._noted = False
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue()
        if not self._started and record.generation > 0:
            # Adopted after a restart: the events that start a deployment came before it.
            self._started = True
            self._jobs.put_nowait(self._recover)
        self._worker = owner.tracker.spawn(self._work(), f"github-deployment-{record.id}")

    # -- the Reporter protocol: the inner reporter first, GitHub beside it ------------------

    async def __call__(self, event: ProgressEvent) -> None:
        await self.inner(event)
        action = self.record.action
        match event:
            case ImageVerified(image=image) if action == "deploy" and not self._started:
                self._started = True
                self._jobs.put_nowait(partial(self._start, tag_of(image)))
            case ServiceUpdated(task_definition=arn) if action == "rollback" and not self._started:
                self._started = True
                self._jobs.put_nowait(partial(self._start_from, arn))
            case Succeeded():
                self._jobs.put_nowait(partial(self._finish, "success"))
            case Failed():
                self._jobs.put_nowait(partial(self._finish, "failure"))

    def say(self, line: Text) -> None:
        self.inner.say(line)

    async def close(self) -> None:
        """Tell GitHub the end (each call bounded by the client's timeout), then close the thread."""
        self._jobs.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        await self.inner.close()

    async def hand_over(self, line: Text) -> None:
        await self._stop()
        await self.inner.hand_over(line)

    async def abandon(self) -> None:
        await self._stop()
        await self.inner.abandon()

    async def _stop(self) -> None:
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

    # -- the GitHub side --------------------------------------------------------------------

    async def _work(self) -> None:
        while (job := await self._jobs.get()) is not None:
            try:
                await job()
            except CodeHostError as exc:
                self._note(exc)
            except Exception:
                log.exception("GitHub deployment step failed", extra={"op": self.record.id})

    def _note(self, error: CodeHostError) -> None:
        """Once per operation: the thread says GitHub failed, and that nothing else did."""
        log.warning("GitHub deployment not updated", extra={"op": self.record.id, "error": str(error)})
        if not self._noted:
            self._noted = True
            self.inner.say(
                text(
                    emoji("warning"),
                    f" {error}: GitHub's deployment view may be behind;"
                    f" the {self.record.action} itself is not affected.",
                )
            )

    async def _start_from(self, task_definition: str, *, resumed: bool = False) -> None:
        """A rollback ships the image of the revision it goes back to."""
        tag = await self._tag_of(task_definition)
        if tag is not None:
            await self._start(tag, resumed=resumed)

    async def _tag_of(self, task_definition: str) -> str | None:
        """The image tag the app's container runs in `task_definition`; None when ECS cannot tell."""
        record = self.record
        app = self.owner.catalog.apps[record.app]
        ref = self.owner.catalog.service_ref(record.app, record.env)
        try:
            definition = await self.owner.ecs.describe_task_definition(ref, task_definition)
        except AwsError:
            return None  # which commit it ran cannot be told; GitHub is simply not told
        return tag_of(container_image(definition, app.container))

    async def _recover(self) -> None:
        """A resumed deploy or rollback: the deployment its first process made, found again."""
        record = self.record
        if record.action == "deploy":
            await self._start(record.subject, resumed=True)
        elif record.task_definition is not None:
            await self._start_from(record.task_definition, resumed=True)

    async def _start(self, tag: str | None, *, resumed: bool = False) -> None:
        """A deployment of the commit the tag was built from (`tag_format`), now in progress.

        `resumed`: GitHub may already hold it, made before the restart; a new one only when
        the service was changed, since a resume never ships what had not started shipping.
        """
        sha = commit_of(tag)
        if sha is None:
            return  # `v2` names no commit: nothing to show in GitHub
        record, client = self.record, self.owner.client
        resolved = await client.resolve(self.repository, sha)
        record.extra["sha"] = resolved.sha
        if record.extra.get("committed_at") is None and resolved.committed_at is not None:
            record.extra["committed_at"] = resolved.committed_at  # lead time, for /tugboat stats
        if resumed:
            self.deployment = await client.find_deployment(
                self.repository, resolved.sha, record.env, record.id
            )
            if self.deployment is not None:
                record.extra["github_deployment"] = self.deployment
                return
            if record.deployment_id is None and record.task_definition is None:
                return
        self.deployment = await client.create_deployment(
            self.repository,
            resolved.sha,
            record.env,
            f"{record.action} of {tag} by {record.actor} via Tugboat",
            {"tugboat_operation": record.id, "thread": record.permalink, "image_tag": tag},
        )
        record.extra["github_deployment"] = self.deployment
        await client.set_status(
            self.repository,
            self.deployment,
            "in_progress",
            log_url=record.permalink,
            description=f"{record.action.capitalize()} in progress",
        )

    async def _finish(self, state: str) -> None:
        if self.deployment is None:
            return
        record, client = self.record, self.owner.client
        said = record.reason or state
        await client.set_status(
            self.repository, self.deployment, state, log_url=record.permalink, description=said
        )
        if state == "success":
            await self._inactivate_replaced()

    async def _inactivate_replaced(self) -> None:
        """The deployment that ran before this one's success is no longer live."""
        record = self.record
        for earlier in await self.owner.store.history(record.app, record.env, 20):
            replaced = earlier.extra.get("github_deployment")
            if (
                earlier.id != record.id
                and earlier.action in ACTIONS
                and earlier.state == "succeeded"
                and earlier.created_at < record.created_at
                and isinstance(replaced, int)
            ):
                await self.owner.client.set_status(
                    self.repository,
                    replaced,
                    "inactive",
                    log_url=earlier.permalink,
                    description=f"Replaced by the {record.action} of {record.subject}",
                )
                return
