"""The catalog (`tugboat.yml`): which apps exist, where they run, and who may touch them.

Strict on purpose: a typo in a deploy bot's config must stop it at start, not surface as a
surprise in production. Every error names the file, the key path and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.domain.approvals import ApprovalRule
from bot.domain.aws import ServiceRef
from bot.domain.freezes import FreezeEntry, zone
from bot.domain.schedules import ScheduleRef

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""App, environment and task names: what the command grammar accepts, nothing more."""
SCHEDULE_NAME = r"^[0-9A-Za-z_.-]{1,64}$"
"""EventBridge's own rule for schedule, group and rule names."""

GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class CatalogError(Exception):
    """The catalog file cannot be used; the message names file, key path and expectation."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TaskSpec(_Strict):
    """A named one-off task: run from the service's task definition with this command."""

    command: list[str] = Field(min_length=1)
    timeout: int = Field(default=600, gt=0, le=86_400)
    args: bool = False


class AutoDeploy(_Strict):
    """Which GitHub events deploy this environment by themselves."""

    branch: str = Field(min_length=1)
    on: Literal["push", "workflow_run"] = "push"
    workflow: str | None = None
    image_wait: int = Field(default=900, ge=0, le=86_400)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: object) -> object:
        """YAML 1.1 reads the key `on` as the boolean true; take it back."""
        if isinstance(data, dict) and True in data:
            return {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _workflow_named(self) -> AutoDeploy:
        if self.on == "workflow_run" and not self.workflow:
            raise ValueError("`workflow` is required when `on` is workflow_run")
        return self


class ScheduleEntry(_Strict):
    """A scheduled task that runs the app: an EventBridge Scheduler schedule or a rule's ECS target."""

    scheduler: str | None = Field(default=None, pattern=SCHEDULE_NAME)
    group: str = Field(default="default", pattern=SCHEDULE_NAME)
    rule: str | None = Field(default=None, pattern=SCHEDULE_NAME)
    target: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleEntry:
        if (self.scheduler is None) == (self.rule is None):
            raise ValueError("give exactly one of `scheduler: NAME` or `rule: NAME`")
        if self.rule is not None and "group" in self.model_fields_set:
            raise ValueError("`group` is for a `scheduler:` schedule; a rule has `target:`")
        if self.scheduler is not None and self.target is not None:
            raise ValueError("`target` is for a `rule:`; a scheduler schedule has `group:`")
        return self

    @property
    def name(self) -> str:
        """What people call it: `/run-task APP ENV NAME`, the thread and the status card."""
        return self.scheduler or self.rule or ""

    def ref(self, region: str, role_arn: str | None) -> ScheduleRef:
        if self.scheduler is not None:
            return ScheduleRef("scheduler", self.scheduler, region, group=self.group, role_arn=role_arn)
        return ScheduleRef("rule", self.name, region, target_id=self.target, role_arn=role_arn)


def _ids(pattern: re.Pattern[str], kind: str, values: list[str]) -> list[str]:
    for value in values:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a Slack {kind} id (like {pattern.pattern})")
    return values


class ServiceEntry(_Strict):
    """One service of a release: its name, and the containers a deploy replaces in it."""

    name: str = Field(min_length=1, max_length=255)
    containers: list[str] | None = Field(default=None, min_length=1)
    """None: the app's `container`/`containers`."""

    @field_validator("containers")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        return _distinct_names(value, "container") if value is not None else None


def _distinct_names(values: list[str], kind: str) -> list[str]:
    twice = sorted({value for value in values if values.count(value) > 1})
    if twice:
        raise ValueError(f"{kind} names must differ: {', '.join(twice)} appears more than once")
    if any(not value for value in values):
        raise ValueError(f"a {kind} name cannot be empty")
    return values


def _one_of(data: object, single: str, several: str, example: str) -> object:
    """`single: X` or `several: [X, …]`, exactly one; both are set afterwards, so every reader
    of the single key (the first) and of the list keeps working."""
    if not isinstance(data, dict) or several not in data:
        if isinstance(data, dict) and single in data:
            first = data[single]
            return {**data, several: [first if single == "container" else {"name": first}]}
        return data
    if single in data:
        raise ValueError(f"give exactly one of `{single}` or `{several}`, not both")
    listed = data[several]
    if not isinstance(listed, list) or not listed:
        raise ValueError(f"`{several}` must be a non-empty list, like {example}")
    first = listed[0]
    name = first.get("name") if isinstance(first, dict) else first
    if not isinstance(name, str):
        raise ValueError(f"`{several}` must be a list like {example}")
    return {**data, single: name}


class Environment(_Strict):
    """One deploy target: one ECS service in a cluster (or several, deployed as one release),
    plus its safety rules."""

    cluster: str = Field(min_length=1)
    service: str = Field(min_length=1)
    """The first (or only) service: the one run-task, schedules and status read first."""
    services: list[ServiceEntry] = Field(default_factory=list, min_length=1)
    """Every service of a release, in catalog order (one entry for `service: NAME`)."""
    max_tasks: int = Field(default=50, ge=0, le=5000)
    """The most `/ecs-scale` may ask for."""
    region: str | None = None
    channel: str | None = None
    auto_deploy: AutoDeploy | None = None
    promote_from: str | None = None
    before_deploy: list[str] = Field(default_factory=list)
    rollback_on_failure: bool = True
    confirm: bool = False
    require_ci: bool = False
    """A manual deploy ships only a commit whose GitHub checks and statuses are all green."""
    allowed_users: list[str] = Field(default_factory=list)
    allowed_groups: list[str] = Field(default_factory=list)
    allowed_channels: list[str] = Field(default_factory=list)
    read_users: list[str] = Field(default_factory=list)
    read_groups: list[str] = Field(default_factory=list)
    role_arn: str | None = None
    timeout: int = Field(default=900, gt=0, le=86_400)
    schedules: list[ScheduleEntry] = Field(default_factory=list)
    approval: ApprovalRule | None = None
    freeze: list[FreezeEntry] = Field(default_factory=list)
    timezone: str = "UTC"
    """Where recurring freeze windows are read, and how their times are shown."""

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("approval")
    @classmethod
    def _approval_groups(cls, value: ApprovalRule | None) -> ApprovalRule | None:
        if value is not None:
            _ids(GROUP_ID, "user group", value.groups)
        return value

    @model_validator(mode="before")
    @classmethod
    def _service_or_services(cls, data: object) -> object:
        return _one_of(data, "service", "services", "[{name: api}, {name: api-worker}]")

    @field_validator("services")
    @classmethod
    def _distinct_services(cls, value: list[ServiceEntry]) -> list[ServiceEntry]:
        _distinct_names([entry.name for entry in value], "service")
        return value

    @property
    def is_release(self) -> bool:
        """Several services deployed as one release."""
        return len(self.services) > 1

    def service_names(self) -> list[str]:
        return [entry.name for entry in self.services]

    @field_validator("schedules")
    @classmethod
    def _distinct_schedules(cls, value: list[ScheduleEntry]) -> list[ScheduleEntry]:
        names = [entry.name for entry in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"schedule names must differ: {', '.join(twice)} appears more than once")
        return value

    def schedule(self, name: str) -> ScheduleEntry | None:
        return next((entry for entry in self.schedules if entry.name == name), None)

    @field_validator("allowed_users", "read_users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        return _ids(USER_ID, "user", value)

    @field_validator("allowed_groups", "read_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return _ids(GROUP_ID, "user group", value)

    @field_validator("allowed_channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        return _ids(CHANNEL_ID, "channel", value)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None:
            _ids(CHANNEL_ID, "channel", [value])
        return value

    @field_validator("role_arn")
    @classmethod
    def _role(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", value):
            raise ValueError("expected an IAM role ARN like arn:aws:iam::123456789012:role/x")
        return value


AppName = Annotated[str, Field(pattern=NAME_PATTERN)]


class App(_Strict):
    """A deployable app: one container image, shipped to one ECS service per environment."""

    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    container: str = Field(min_length=1)
    """The first (or only) container a deploy replaces: whose image status and schedules read."""
    containers: list[str] = Field(default_factory=list, min_length=1)
    """Every container whose image a deploy replaces (one entry for `container: NAME`)."""
    image: str = Field(min_length=1)
    tag_format: Literal["{sha}", "{short_sha}"] = "{sha}"
    tasks: dict[AppName, TaskSpec] = Field(default_factory=dict)
    environments: dict[AppName, Environment] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _container_or_containers(cls, data: object) -> object:
        return _one_of(data, "container", "containers", "[web, cron]")

    @field_validator("containers")
    @classmethod
    def _distinct_containers(cls, value: list[str]) -> list[str]:
        return _distinct_names(value, "container")

    def containers_of(self, service: ServiceEntry) -> list[str]:
        """The containers a deploy replaces in `service`: its own list, else the app's."""
        return service.containers if service.containers is not None else self.containers

    @field_validator("image")
    @classmethod
    def _untagged(cls, value: str) -> str:
        last = value.rsplit("/", 1)[-1]
        if ":" in last or "@" in last:
            raise ValueError("expected the image without a tag, like 1234.dkr.ecr.REGION/name")
        return value

    @model_validator(mode="after")
    def _references(self) -> App:
        for env_name, env in self.environments.items():
            for task in env.before_deploy:
                if task not in self.tasks:
                    known = ", ".join(sorted(self.tasks)) or "none are defined"
                    raise ValueError(
                        f"environments.{env_name}.before_deploy: unknown task {task!r} (known tasks: {known})"
                    )
            if env.promote_from is not None and env.promote_from not in self.environments:
                raise ValueError(
                    f"environments.{env_name}.promote_from: unknown environment "
                    f"{env.promote_from!r} (known: {', '.join(sorted(self.environments))})"
                )
            if env.promote_from == env_name:
                raise ValueError(f"environments.{env_name}.promote_from: cannot promote from itself")
            for entry in env.schedules:
                if entry.name in self.tasks:
                    raise ValueError(
                        f"environments.{env_name}.schedules: {entry.name!r} is both a task and a "
                        "schedule, so `/run-task` could not tell which to run: rename one"
                    )
            if env.require_ci and self.repository is None:
                raise ValueError(
                    f"environments.{env_name}.require_ci: needs the app's `repository` (owner/name), "
                    "where GitHub keeps the commits' checks"
                )
            if env.auto_deploy is not None and env.channel is None:
                raise ValueError(
                    f"environments.{env_name}.channel: required when auto_deploy is set, "
                    "so webhook deploys know where to report"
                )
        return self


class Catalog(_Strict):
    """Every app Tugboat may act on. Nothing outside it can be touched."""

    region: str = "us-east-1"
    apps: dict[AppName, App] = Field(min_length=1)

    def target(self, app: str, env: str) -> tuple[App, Environment]:
        """The app and environment by name; KeyError when either is unknown."""
        app_spec = self.apps[app]
        return app_spec, app_spec.environments[env]

    def has(self, app: str, env: str) -> bool:
        """Whether the catalog still names this app's environment (records can outlive it)."""
        return app in self.apps and env in self.apps[app].environments

    def region_of(self, env: Environment) -> str:
        return env.region or self.region

    def service_ref(self, app: str, env: str) -> ServiceRef:
        """The ECS service an app's environment runs as; KeyError when either is unknown."""
        _, spec = self.target(app, env)
        return ServiceRef(self.region_of(spec), spec.cluster, spec.service, spec.role_arn)

    def release_refs(self, app: str, env: str) -> list[tuple[ServiceEntry, ServiceRef]]:
        """Every service of the environment's release, in catalog order, with where it lives."""
        _, spec = self.target(app, env)
        region = self.region_of(spec)
        return [
            (entry, ServiceRef(region, spec.cluster, entry.name, spec.role_arn)) for entry in spec.services
        ]

    def schedule_refs(self, app: str, env: str) -> list[tuple[ScheduleEntry, ScheduleRef]]:
        """The environment's schedules with where each lives (its region, Tugboat's role there)."""
        _, spec = self.target(app, env)
        return [(entry, entry.ref(self.region_of(spec), spec.role_arn)) for entry in spec.schedules]

    def targets(self) -> list[tuple[str, str]]:
        """Every (app, env) pair, in catalog order."""
        return [(a, e) for a, spec in self.apps.items() for e in spec.environments]


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("function-after", "function-plain"))


EXPECTED = {
    "model_type": "expected a mapping of keys (KEY: VALUE, or {KEY: VALUE})",
    "model_attributes_type": "expected a mapping of keys (KEY: VALUE, or {KEY: VALUE})",
    "dict_type": "expected a mapping (KEY: VALUE)",
    "list_type": "expected a list, like [a, b] or one `- item` per line",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "float_parsing": "expected a number",
    "literal_error": "",
}
"""Pydantic's error types, said in the catalog's own words (YAML, not Python classes)."""


def _describe(error: dict[str, object]) -> str:
    kind = str(error.get("type", ""))
    msg = str(error.get("msg", ""))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if msg.startswith("Value error, "):
        return msg.removeprefix("Value error, ")
    context = error.get("ctx")
    ctx = context if isinstance(context, dict) else {}
    if kind == "string_pattern_mismatch":
        msg = f"expected a name matching {ctx.get('pattern')}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": "more than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }
        msg = f"expected a number {words[kind]} {next(iter(ctx.values()), '?')}"
    elif EXPECTED.get(kind):
        msg = EXPECTED[kind]
    got = error.get("input")
    if isinstance(got, str | int | float | bool):
        return f"{msg[0].lower()}{msg[1:]} (got {got!r})"
    return f"{msg[0].lower()}{msg[1:]}"


def parse_catalog(text: str, source: str = "tugboat.yml") -> Catalog:
    """Parse catalog YAML, raising CatalogError with one line per problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise CatalogError(f"{source}: not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: expected a mapping with `apps:` at the top")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = _location(tuple(err["loc"])) or "(top level)"
            lines.append(f"{source}: {path}: {_describe(dict(err))}")
        raise CatalogError("\n".join(lines)) from None


def load_catalog(path: Path) -> Catalog:
    """Read and validate the catalog file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc.strerror}") from None
    return parse_catalog(text, str(path))
