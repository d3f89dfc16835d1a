"""A large estate: 100 apps in 5 environments, one cluster each, 500 services in all."""

from __future__ import annotations

from bot.domain.catalog import Catalog, parse_catalog
from bot.sandbox.world import SandboxWorld
from tests.conftest import IMAGE

CLUSTERS = 5
APPS = 100


def estate_channel(cluster: int) -> str:
    return f"C0ESTATE{cluster}"


def estate_yaml(clusters: int = CLUSTERS, apps: int = APPS) -> str:
    """App `app{a}` in environment `env{c}` is service `svc{c * apps + a}` of cluster `estate{c}`."""
    lines = ["apps:"]
    for a in range(apps):
        lines += [f"  app{a}:", "    container: web", f"    image: {IMAGE}", "    environments:"]
        lines += [
            f"      env{c}: {{cluster: estate{c}, service: svc{c * apps + a}, channel: {estate_channel(c)}}}"
            for c in range(clusters)
        ]
    return "\n".join(lines) + "\n"


def estate_catalog(clusters: int = CLUSTERS, apps: int = APPS) -> Catalog:
    return parse_catalog(estate_yaml(clusters, apps), "estate.yml")


def seed_estate(world: SandboxWorld, clusters: int = CLUSTERS, apps: int = APPS) -> None:
    world.seed_estate(clusters, apps, f"{IMAGE}:v1")
    world.reset_calls()
