"""`tugboat init`: a starting `tugboat.yml` from the services that already run in ECS.

Like `ecspresso init`, it reads instead of asking: each service's task definition names its
containers, image, repository and log group. One app per service (and image), one
environment per cluster. What only people know (channels, who may act) is left as comments.
"""

from __future__ import annotations

import asyncio
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bot.aws.ecs import EcsGateway, chunks
from bot.domain.aws import AwsError, awslogs_of, family_of
from bot.domain.catalog import CatalogError, parse_catalog

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
ECR = re.compile(r"\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")


@dataclass(frozen=True)
class FoundService:
    """One running service, as a catalog entry needs it."""

    cluster: str
    service: str
    family: str
    container: str
    image: str
    log_group: str | None


@dataclass
class _App:
    name: str
    container: str
    image: str
    environments: dict[str, FoundService] = field(default_factory=dict)


def run_init(
    clusters: list[str],
    services: list[str],
    region: str,
    output: Path,
    *,
    force: bool = False,
    out: TextIO | None = None,
) -> int:
    """Write the catalog for `clusters` (only `services`, when given) to `output` ("-": stdout)."""
    out = out or sys.stdout
    if str(output) != "-" and output.exists() and not force:
        out.write(f"tugboat init: {output} exists; pass --force to replace it, or --output another path.\n")
        return EXIT_USAGE
    try:
        found = asyncio.run(discover_services(clusters, set(services), region))
    except AwsError as exc:
        where = ", ".join(clusters)
        out.write(f"tugboat init: cannot read cluster {where} ({region}): {exc.code}: {exc.aws_message}\n")
        return EXIT_PROBLEMS
    if not found:
        where = ", ".join(clusters)
        out.write(f"tugboat init: no services found in cluster {where} ({region}).\n")
        return EXIT_PROBLEMS
    text = catalog_text(found, region)
    try:
        parse_catalog(text, str(output))
    except CatalogError as exc:  # a bug here, never the user's: say so rather than write it
        out.write(f"tugboat init: the catalog it wrote does not load: {exc}\n")
        return EXIT_PROBLEMS
    if str(output) == "-":
        out.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        out.write(
            f"Wrote {output}: {len(found)} services. Next: fill in the channels, then `tugboat check`.\n"
        )
    return EXIT_OK


async def discover_services(clusters: list[str], wanted: set[str], region: str) -> list[FoundService]:
    """Every service of the clusters (or those named), read with the operator's credentials."""
    ecs = EcsGateway(budget_s=10.0)
    found: list[FoundService] = []
    try:
        for cluster in clusters:
            arns: list[str] = []
            token: dict[str, Any] = {}
            while True:
                page = await ecs.call("ecs", region, "list_services", cluster=cluster, **token)
                arns.extend(page.get("serviceArns", []))
                if not page.get("nextToken"):
                    break
                token = {"nextToken": page["nextToken"]}
            names = [arn.rsplit("/", 1)[-1] for arn in arns]
            names = sorted(n for n in names if not wanted or n in wanted)
            for batch in chunks(names, 10):
                described = await ecs.call(
                    "ecs", region, "describe_services", cluster=cluster, services=batch
                )
                for service in described.get("services", []):
                    arn = str(service["taskDefinition"])
                    answer = await ecs.call("ecs", region, "describe_task_definition", taskDefinition=arn)
                    entry = _entry(cluster, str(service["serviceName"]), answer["taskDefinition"], region)
                    if entry is not None:
                        found.append(entry)
    finally:
        ecs.close()
    return found


def _entry(cluster: str, service: str, definition: dict[str, Any], region: str) -> FoundService | None:
    """The container a deploy changes: the first essential one from ECR (else the first essential)."""
    containers = definition.get("containerDefinitions", [])
    essential = [c for c in containers if c.get("essential", True)] or containers
    if not essential:
        return None
    chosen = next((c for c in essential if ECR.search(str(c.get("image", "")))), essential[0])
    image = str(chosen.get("image", ""))
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        image = image.rsplit("@", 1)[0]
    elif ":" in last:
        image = image.rsplit(":", 1)[0]
    logs = awslogs_of(chosen, region)
    family = family_of(str(definition.get("taskDefinitionArn", "")))
    return FoundService(cluster, service, family, str(chosen["name"]), image, logs.group if logs else None)


def _name(value: str) -> str:
    """A catalog name (lowercase letters, digits, - and _) from an AWS name."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-_")
    return (cleaned or "app")[:63]


def catalog_text(found: list[FoundService], region: str) -> str:
    """The catalog as YAML, with comments where a person must decide."""
    apps: dict[str, _App] = {}
    for entry in found:
        key = f"{entry.service}|{entry.image}|{entry.container}"
        app = apps.get(key)
        if app is None:
            name = _name(entry.service)
            while any(a.name == name for a in apps.values()):
                name = f"{name}-{_name(entry.cluster)}"[:63]
            app = apps[key] = _App(name, entry.container, entry.image)
        app.environments[_name(entry.cluster)] = entry
    lines = [
        "# Written by `tugboat init` from what runs in ECS. Check it, then fill in what only people",
        "# know: each environment's `channel` (where its threads go) and who may act there",
        "# (`allowed_users`, `allowed_groups`). Every key: docs/configuration.md.",
        f"region: {region}",
        "apps:",
    ]
    for app in sorted(apps.values(), key=lambda a: a.name):
        lines += [
            f"  {app.name}:",
            f"    container: {app.container}",
            f"    image: {app.image}",
            "    environments:",
        ]
        for env_name, entry in sorted(app.environments.items()):
            lines += [
                f"      {env_name}:",
                f"        cluster: {entry.cluster}",
                f"        service: {entry.service}",
                "        # channel: C0123456789",
                "        # allowed_users: [U0123456789]",
            ]
            if entry.log_group:
                lines.append(f"        # logs: {entry.log_group} (task definition family {entry.family})")
    return "\n".join(lines) + "\n"
