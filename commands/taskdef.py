"""Task definitions as deploys read and rewrite them: which image a container runs, and the
same definition with one container's image changed (the deploy rule, also for schedules).
"""

from __future__ import annotations

from typing import Any

from bot.domain.aws import registrable


def container_image(task_definition: dict[str, Any], container: str) -> str | None:
    for spec in task_definition.get("containerDefinitions", []):
        if spec.get("name") == container:
            return str(spec.get("image"))
    return None


def tag_of(image: str | None) -> str | None:
    if image is None or ":" not in image.rsplit("/", 1)[-1]:
        return None
    return image.rsplit(":", 1)[1]


def with_image(task_definition: dict[str, Any], container: str, image: str) -> dict[str, Any]:
    """The same task definition with only `container`'s image changed."""
    spec = registrable(task_definition)
    spec["containerDefinitions"] = [
        {**c, "image": image} if c.get("name") == container else c
        for c in task_definition.get("containerDefinitions", [])
    ]
    return spec


def with_images(task_definition: dict[str, Any], containers: list[str], image: str) -> dict[str, Any]:
    """The same task definition with every container in `containers` on `image`, the rest as is."""
    spec = registrable(task_definition)
    spec["containerDefinitions"] = [
        {**c, "image": image} if c.get("name") in containers else c
        for c in task_definition.get("containerDefinitions", [])
    ]
    return spec
