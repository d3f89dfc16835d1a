"""The docs keep up with the code: every setting, catalog key, command and metric is documented."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path

import pytest
from prometheus_client import Metric
from pydantic import BaseModel

from bot import metrics
from bot.domain.catalog import App, AutoDeploy, Catalog, Environment, TaskSpec
from bot.settings import Settings
from bot.slack.app import SLASH_COMMANDS
from commands.grammar import MENTION_VERBS

DOCS = Path(__file__).resolve().parent.parent / "docs"
CATALOG_MODELS = (Catalog, App, Environment, TaskSpec, AutoDeploy)


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def documented(text: str, name: str) -> bool:
    """`name` appears as inline code, alone: `PORT`, not only inside `PORTS` or a longer span."""
    return re.search(rf"`{re.escape(name)}`", text) is not None


def models_under(model: type[BaseModel]) -> set[type[BaseModel]]:
    """`model` and every model its fields hold, however nested (dicts, lists, optionals)."""
    found = {model}
    todo = [f.annotation for f in model.model_fields.values()]
    while todo:
        annotation = todo.pop()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.add(annotation)
                todo.extend(f.annotation for f in annotation.model_fields.values())
        elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
            todo.extend(typing.get_args(annotation))
    return found


def catalog_keys() -> set[str]:
    return {
        field.alias or name for model in models_under(Catalog) for name, field in model.model_fields.items()
    }


def test_the_walk_reaches_every_catalog_model() -> None:
    assert set(CATALOG_MODELS) <= models_under(Catalog)


@pytest.mark.parametrize("name", sorted(n.upper() for n in Settings.model_fields))
def test_every_setting_is_in_configuration(name: str) -> None:
    assert documented(doc("configuration.md"), name), f"docs/configuration.md lacks `{name}`"


@pytest.mark.parametrize("key", sorted(catalog_keys()))
def test_every_catalog_key_is_in_configuration(key: str) -> None:
    assert documented(doc("configuration.md"), key), f"docs/configuration.md lacks `{key}`"


def test_every_command_and_mention_verb_is_in_commands() -> None:
    text = doc("commands.md")
    for command in SLASH_COMMANDS:
        assert f"`{command}" in text, f"docs/commands.md lacks {command}"
    for verb in MENTION_VERBS:
        assert re.search(rf"@Tugboat {re.escape(verb)}\b", text), f"docs/commands.md lacks @Tugboat {verb}"


def test_every_metric_is_in_operations() -> None:
    text = doc("operations.md")
    for value in vars(metrics).values():
        describe = getattr(value, "describe", None)
        if describe is None or isinstance(value, type):
            continue
        for family in describe():
            assert isinstance(family, Metric)
            # A counter's family drops the `_total` that /metrics shows.
            name = family.name + ("_total" if family.type == "counter" else "")
            assert documented(text, name), f"docs/operations.md lacks `{name}`"
