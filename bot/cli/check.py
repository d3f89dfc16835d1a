"""`tugboat check`: is the catalog true? One line per thing each app and environment needs.

Run it before the first `serve`, in CI after editing tugboat.yml, or when a deploy says "not
found": it names what is missing, changes nothing, and exits 0 (all green), 1 or 2 (bad config).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.aws.ecs import EcsGateway
from bot.aws.schedules import EventBridgeSchedules
from bot.catalog_source import read_catalog
from bot.domain.aws import AwsError, awslogs_of
from bot.domain.catalog import App, Catalog, CatalogError, Environment
from bot.domain.gates import gated
from bot.domain.schedules import ScheduleMissing, ScheduleRef
from bot.domain.text import paint
from bot.report.terminal import wants_color
from bot.settings import Settings, SettingsError, load_settings
from commands.deploy import repository_of

EXIT_OK, EXIT_PROBLEMS, EXIT_BAD_CONFIG = 0, 1, 2
AWS_BUDGET_S = 10.0
"""Retry budget per AWS call: a check should say "unreachable" quickly, not wait a minute."""
SLACK_TIMEOUT_S = 10
MARKS = {True: ("✓", "green"), False: ("✗", "red"), None: ("-", "dim")}

T = TypeVar("T")
Verdict = tuple[bool | None, str]
"""(found?, the line's text); None: not checked, or nothing to check."""


@dataclass(frozen=True)
class Finding:
    """One checked thing: `ok` is None when it could not be checked or there is nothing to check."""

    ok: bool | None
    where: str
    text: str

    def line(self, color: bool = False) -> str:
        mark, style = MARKS[self.ok]
        return f"{paint(mark, style, color)} {self.where}: {self.text}"


def run_check(*, slack: bool = False, out: TextIO | None = None) -> int:
    """Validate settings and catalog, then AWS (and Slack); print one line per finding."""
    out = out or sys.stdout
    color = wants_color(out)

    def show(finding: Finding) -> None:
        out.write(finding.line(color) + "\n")
        out.flush()

    try:
        settings = load_settings()
        if slack:
            settings.require_slack()
    except SettingsError as exc:
        show(Finding(False, "settings", str(exc)))
        return EXIT_BAD_CONFIG
    show(Finding(True, "settings", "read from the environment"))
    try:
        catalog = read_catalog(settings.tugboat_config)
    except CatalogError as exc:
        show(Finding(False, "catalog", str(exc)))
        return EXIT_BAD_CONFIG
    counts = f"{_many(len(catalog.apps), 'app')}, {_many(len(catalog.targets()), 'environment')}"
    show(Finding(True, "catalog", f"{settings.tugboat_config}: {counts}"))
    findings = asyncio.run(_check_all(settings, catalog, slack, show))
    problems = sum(1 for f in findings if f.ok is False)
    summary = f"{_many(problems, 'problem')} found." if problems else "All green."
    out.write(paint(summary, "red" if problems else "green", color) + "\n")
    return EXIT_PROBLEMS if problems else EXIT_OK


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


async def _check_all(
    settings: Settings, catalog: Catalog, slack: bool, show: Callable[[Finding], None]
) -> list[Finding]:
    """Every target checked concurrently, printed in catalog order as each one finishes."""
    ecs = EcsGateway(budget_s=AWS_BUDGET_S)
    found: list[Finding] = []
    try:
        checks = [asyncio.create_task(check_target(ecs, catalog, app, env)) for app, env in catalog.targets()]
        if slack:
            checks.append(asyncio.create_task(check_slack(settings)))
        for task in checks:
            for finding in await task:
                show(finding)
                found.append(finding)
    finally:
        ecs.close()
    return found


# -- AWS ---------------------------------------------------------------------------------


async def check_target(ecs: EcsGateway, catalog: Catalog, app_name: str, env_name: str) -> list[Finding]:
    """Cluster, each service and its containers, image repository and log group of one app
    environment."""
    app, env = catalog.target(app_name, env_name)
    region = catalog.region_of(env)
    chain, (repository, _) = await asyncio.gather(
        _service_chain(ecs, region, env, app),
        _safely("the image repository", _repository(ecs, region, env, app), None),
    )
    *links, log_group = chain
    where = f"{app_name} {env_name}"
    findings = [Finding(ok, where, text) for ok, text in (*links, repository, log_group)]
    schedules = EventBridgeSchedules(ecs)
    for entry, ref in catalog.schedule_refs(app_name, env_name):
        verdict, _ = await _safely(f"schedule {entry.name}", _schedule(schedules, ref, env), None)
        findings.append(Finding(verdict[0], where, verdict[1]))
    return findings


async def _schedule(
    schedules: EventBridgeSchedules, ref: ScheduleRef, env: Environment
) -> tuple[Verdict, None]:
    """The schedule exists, starts an ECS task, and starts it in the environment's cluster."""
    what = f"schedule {ref.name}" if ref.kind == "scheduler" else f"rule {ref.name}"
    try:
        tasks = await schedules.read(ref)
    except ScheduleMissing as exc:
        return (False, f"{what}: {exc}"), None
    elsewhere = sorted({t.cluster for t in tasks if t.cluster != env.cluster})
    if elsewhere:
        return (False, f"{what} runs tasks in cluster {', '.join(elsewhere)}, not in {env.cluster}"), None
    runs = ", ".join(sorted({f"{t.family}:{t.revision}" for t in tasks}))
    return (True, f"{what} starts {runs} in cluster {env.cluster}"), None


async def _service_chain(ecs: EcsGateway, region: str, env: Environment, app: App) -> list[Verdict]:
    """Each link needs the one before: cluster, each service and its containers, then the log
    group run-task reads (named by the app's container in the first service), last."""
    cluster, cluster_ok = await _safely(f"cluster {env.cluster}", _cluster(ecs, region, env), False)
    services = await asyncio.gather(
        *(
            _service_links(ecs, region, env, entry.name, app.containers_of(entry), cluster_ok)
            for entry in env.services
        )
    )
    first_definition = services[0][2]
    log_group, _ = await _safely(
        "the log group",
        _log_group(ecs, region, env, app, _container_spec(first_definition, app.container)),
        None,
    )
    return [
        cluster,
        *(link for service, containers, _ in services for link in (service, containers)),
        log_group,
    ]


async def _service_links(
    ecs: EcsGateway, region: str, env: Environment, name: str, containers: list[str], cluster_ok: bool
) -> tuple[Verdict, Verdict, dict[str, Any] | None]:
    """One service's lines (is it ACTIVE; are its containers in its task definition) and that definition."""
    service, raw = await _safely(f"service {name}", _service(ecs, region, env, name, cluster_ok), None)
    listed, definition = await _safely(
        _containers_named(containers), _containers(ecs, region, env, name, containers, raw), None
    )
    return service, listed, definition


def _containers_named(containers: list[str]) -> str:
    return f"container{'s' if len(containers) > 1 else ''} {', '.join(containers)}"


def _container_spec(definition: dict[str, Any] | None, container: str) -> dict[str, Any] | None:
    specs = (definition or {}).get("containerDefinitions", [])
    return next((c for c in specs if c.get("name") == container), None)


async def _safely(what: str, step: Awaitable[tuple[Verdict, T]], default: T) -> tuple[Verdict, T]:
    """An AWS error (no permission, no network) is a finding too, and the other checks go on."""
    try:
        return await step
    except AwsError as exc:
        return (False, f"cannot check {what}: {exc.code}: {exc.aws_message}"), default


async def _describe(
    ecs: EcsGateway, env: Environment, aws_service: str, region: str, operation: str, **params: Any
) -> dict[str, Any]:
    """One read-only AWS call in the environment's role, the one its deploys use."""
    return await ecs.call(aws_service, region, operation, role_arn=env.role_arn, **params)


async def _cluster(ecs: EcsGateway, region: str, env: Environment) -> tuple[Verdict, bool]:
    answer = await _describe(ecs, env, "ecs", region, "describe_clusters", clusters=[env.cluster])
    statuses = {c.get("clusterName"): c.get("status") for c in answer.get("clusters", [])}
    status = statuses.get(env.cluster)
    if status == "ACTIVE":
        return (True, f"cluster {env.cluster} is ACTIVE"), True
    if status is not None:
        return (False, f"cluster {env.cluster} is {status}, not ACTIVE"), False
    return (False, f"cluster {env.cluster} not found in {region}"), False


async def _service(
    ecs: EcsGateway, region: str, env: Environment, name: str, cluster_ok: bool
) -> tuple[Verdict, dict[str, Any] | None]:
    if not cluster_ok:
        return (None, f"service {name} not checked (needs cluster {env.cluster})"), None
    answer = await _describe(
        ecs, env, "ecs", region, "describe_services", cluster=env.cluster, services=[name]
    )
    found = [s for s in answer.get("services", []) if s.get("serviceName") == name]
    active = next((s for s in found if s.get("status") == "ACTIVE"), None)
    if active is not None:
        return (True, f"service {name} is ACTIVE in cluster {env.cluster}{_strategy(active)}"), active
    if found:
        state = found[0].get("status")
        return (False, f"service {name} is {state}, not ACTIVE, in cluster {env.cluster}"), None
    return (False, f"service {name} not found in cluster {env.cluster}"), None


async def _containers(
    ecs: EcsGateway,
    region: str,
    env: Environment,
    name: str,
    containers: list[str],
    service: dict[str, Any] | None,
) -> tuple[Verdict, dict[str, Any] | None]:
    """Every container a deploy replaces is in the service's task definition (returned, for the logs)."""
    what = _containers_named(containers)
    if service is None:
        return (None, f"{what} not checked (needs service {name})"), None
    task_definition = str(service.get("taskDefinition", ""))
    answer = await _describe(
        ecs, env, "ecs", region, "describe_task_definition", taskDefinition=task_definition
    )
    definition: dict[str, Any] = answer.get("taskDefinition", {})
    revision = f"{definition.get('family')}:{definition.get('revision')}"
    missing = [c for c in containers if _container_spec(definition, c) is None]
    if not missing:
        verb = "are" if len(containers) > 1 else "is"
        return (True, f"{what} {verb} in task definition {revision}"), definition
    others = ", ".join(str(c.get("name")) for c in definition.get("containerDefinitions", [])) or "none"
    absent = f"{_containers_named(missing)} {'are' if len(missing) > 1 else 'is'}"
    return (False, f"{absent} not in task definition {revision} (it has: {others})"), definition


async def _repository(ecs: EcsGateway, region: str, env: Environment, app: App) -> tuple[Verdict, None]:
    repo_region, repository = repository_of(app.image, region)
    try:
        await _describe(ecs, env, "ecr", repo_region, "describe_repositories", repositoryNames=[repository])
    except AwsError as exc:
        if exc.code != "RepositoryNotFoundException":
            raise
        return (False, f"image repository {repository} not found in {repo_region}"), None
    return (True, f"image repository {repository} exists in {repo_region}"), None


async def _log_group(
    ecs: EcsGateway, region: str, env: Environment, app: App, container: dict[str, Any] | None
) -> tuple[Verdict, None]:
    """The awslogs group run-task reads log tails from; other drivers are fine, just tail-less."""
    if container is None:
        return (None, f"log group not checked (needs container {app.container})"), None
    logs = awslogs_of(container, region)
    if logs is None:
        driver = (container.get("logConfiguration") or {}).get("logDriver") or "no log driver"
        return (None, f"container {app.container} logs with {driver}, not awslogs: no log tails"), None
    group, group_region = logs.group, logs.region
    answer = await _describe(ecs, env, "logs", group_region, "describe_log_groups", logGroupNamePrefix=group)
    if any(g.get("logGroupName") == group for g in answer.get("logGroups", [])):
        return (True, f"log group {group} exists in {group_region}"), None
    return (False, f"log group {group} not found in {group_region}"), None


# -- Slack -------------------------------------------------------------------------------


async def check_slack(settings: Settings) -> list[Finding]:
    """The bot token passes auth.test; the app token may open a Socket Mode connection."""
    bot_token, app_token = settings.require_slack()
    client = AsyncWebClient(token=bot_token, base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT_S)
    found: list[Finding] = []
    try:
        answer = await client.auth_test()
        who = f"{answer.get('user')} ({answer.get('user_id')}) in {answer.get('team')} ({answer.get('url')})"
        found.append(Finding(True, "slack", f"SLACK_BOT_TOKEN works: auth.test says {who}"))
    except Exception as exc:
        found.append(Finding(False, "slack", f"SLACK_BOT_TOKEN: auth.test failed: {_slack_problem(exc)}"))
    try:
        await client.apps_connections_open(app_token=app_token)
        found.append(Finding(True, "slack", "SLACK_APP_TOKEN works: apps.connections.open gave a socket URL"))
    except Exception as exc:
        problem = _slack_problem(exc)
        found.append(Finding(False, "slack", f"SLACK_APP_TOKEN: apps.connections.open failed: {problem}"))
    return _redacted(found, (bot_token, app_token))


def _slack_problem(exc: Exception) -> str:
    """Slack's error code, or what kept us from reaching it; never the request (it holds the token)."""
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return f"cannot reach the Slack API ({type(exc).__name__})"
    return type(exc).__name__


def _redacted(findings: Iterable[Finding], secrets: Iterable[str]) -> list[Finding]:
    """A last guard: no token ever reaches the terminal, whatever an error message carried."""
    result = []
    for finding in findings:
        text = finding.text
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        result.append(Finding(finding.ok, finding.where, text))
    return result


def _strategy(service: dict[str, Any]) -> str:
    """`, deploys by CANARY, pauses at POST_TEST_TRAFFIC_SHIFT`: what a deploy's thread will show."""
    config = service.get("deploymentConfiguration") or {}
    if not gated(config):
        return ""
    stages = [
        stage
        for hook in config.get("lifecycleHooks") or []
        if hook.get("targetType") == "PAUSE"
        for stage in hook.get("lifecycleStages") or []
    ]
    pauses = f", pauses at {', '.join(stages)} (Continue and Roll back in the thread)" if stages else ""
    return f", deploys by {config.get('strategy')}{pauses}"
