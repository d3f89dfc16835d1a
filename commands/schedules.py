"""Schedules follow the service: after a successful rollout, point every scheduled task at it.

Runs only once the service is live (SPEC part two), so a failed or cancelled deploy leaves
every schedule as it was. Moving is idempotent: a schedule already on the wanted revision
(or image) is left alone, which is what lets a restarted Tugboat simply move them again.
A schedule that cannot be moved never fails the operation; it ends succeeded with warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.domain.aws import AwsError, ServiceRef, family_of
from bot.domain.catalog import Catalog
from bot.domain.events import Emit, MovingSchedules, ScheduleMoved, ScheduleNotMoved, Succeeded
from bot.domain.ports import Ecs, Schedules
from bot.domain.records import Target
from bot.domain.schedules import ScheduledTask, ScheduleMissing
from commands.taskdef import container_image, with_image


class ScheduleProblem(Exception):
    """This schedule cannot run the app's new image; the message says why."""


@dataclass
class _Definitions:
    """Task definitions described once per move, whichever schedules share them."""

    ecs: Ecs
    ref: ServiceRef
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def get(self, arn: str) -> dict[str, Any]:
        if arn not in self.seen:
            self.seen[arn] = await self.ecs.describe_task_definition(self.ref, arn)
        return self.seen[arn]


async def succeed(
    catalog: Catalog,
    target: Target,
    task_definition: str,
    summary: str,
    ecs: Ecs,
    schedules: Schedules,
    emit: Emit,
) -> None:
    """The service is live on `task_definition`: move the schedules, then say Succeeded."""
    warnings = await move_schedules(catalog, target, task_definition, ecs, schedules, emit)
    await emit(Succeeded(summary, warnings))


async def move_schedules(
    catalog: Catalog,
    target: Target,
    task_definition: str,
    ecs: Ecs,
    schedules: Schedules,
    emit: Emit,
) -> tuple[str, ...]:
    """Point each schedule of the environment at what the service runs; warnings for the rest."""
    entries = catalog.schedule_refs(target.app, target.env)
    if not entries:
        return ()
    await emit(MovingSchedules(task_definition, len(entries)))
    app, _ = catalog.target(target.app, target.env)
    definitions = _Definitions(ecs, catalog.service_ref(target.app, target.env))
    warnings: list[str] = []

    async def not_moved(name: str, why: str) -> None:
        await emit(ScheduleNotMoved(name, why))
        warnings.append(f"Schedule {name} was not moved: {why}")

    for entry, ref in entries:
        try:
            tasks = await schedules.read(ref)
        except ScheduleMissing as exc:
            await not_moved(entry.name, str(exc))
            continue
        except AwsError as exc:
            await not_moved(entry.name, f"{exc.code}: {exc.aws_message}")
            continue
        for task in tasks:
            try:
                wanted = await _wanted(task, task_definition, app.container, definitions)
                if wanted != task.task_definition:
                    await schedules.point(task, wanted)
            except ScheduleProblem as exc:
                await not_moved(task.label, str(exc))
            except ScheduleMissing as exc:
                await not_moved(task.label, str(exc))
            except AwsError as exc:
                await not_moved(task.label, f"{exc.code}: {exc.aws_message}")
            else:
                await emit(ScheduleMoved(task.label, task.task_definition, wanted))
    return tuple(warnings)


async def _wanted(
    task: ScheduledTask, service_definition: str, container: str, definitions: _Definitions
) -> str:
    """The revision this schedule should run: the service's own, or one of its family with the image."""
    if task.family == family_of(service_definition):
        return service_definition
    image = container_image(await definitions.get(service_definition), container)
    if image is None:
        raise ScheduleProblem(f"the service's task definition has no container `{container}`")
    theirs = await definitions.get(task.task_definition)
    current = container_image(theirs, container)
    if current is None:
        raise ScheduleProblem(
            f"its task definition `{task.family}:{task.revision}` has no container `{container}`"
        )
    if current == image:
        return task.task_definition
    registered = await definitions.ecs.register_task_definition(
        definitions.ref, with_image(theirs, container, image)
    )
    return str(registered["taskDefinitionArn"])
