"""The catalog refuses what it does not understand, naming file, key path and expectation."""

from pathlib import Path

import pytest

from bot.domain.catalog import CatalogError, load_catalog, parse_catalog
from tests.conftest import EXAMPLE

MINIMAL = """
apps:
  api:
    container: web
    image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api
    environments:
      staging: {cluster: staging, service: api}
"""


def test_example_catalog_loads_with_spec_defaults() -> None:
    catalog = load_catalog(EXAMPLE)
    app, prod = catalog.target("api", "production")
    assert prod.before_deploy == ["migrate"] and prod.confirm is True
    _, staging = catalog.target("api", "staging")
    assert staging.confirm is False and staging.rollback_on_failure is True
    assert app.tasks["migrate"].timeout == 600 and app.tasks["migrate"].args is False


def test_defaults_match_the_spec() -> None:
    env = parse_catalog(MINIMAL).apps["api"].environments["staging"]
    assert (env.confirm, env.rollback_on_failure, env.timeout, env.channel) == (
        False,
        True,
        900,
        None,
    )
    assert env.allowed_users == [] and env.allowed_channels == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("service: api}", "service: api, colour: red}"),
            "apps.api.environments.staging.colour: unknown key",
        ),
        (
            ("service: api}", "service: api, timeout: soon}"),
            "apps.api.environments.staging.timeout:",
        ),
        (("    container: web\n", ""), "apps.api.container: required key is missing"),
        (("service: api}", "service: api, before_deploy: [migrate]}"), "unknown task 'migrate'"),
        (("service: api}", "service: api, promote_from: prod}"), "unknown environment 'prod'"),
        (("acme/api\n", "acme/api:v1\n"), "apps.api.image: expected the image without a tag"),
        (("service: api}", "service: api, allowed_users: [bob]}"), "'bob' is not a Slack user id"),
        (
            ("service: api}", "service: api, auto_deploy: {branch: main}}"),
            "channel: required when auto_deploy is set",
        ),
        (
            ("service: api}", "service: api, schedules: [{scheduler: a, rule: b}]}"),
            "staging.schedules.0: give exactly one of `scheduler: NAME` or `rule: NAME`",
        ),
        (
            ("service: api}", "service: api, schedules: [{rule: a, group: g}]}"),
            "`group` is for a `scheduler:` schedule",
        ),
        (
            ("service: api}", "service: api, schedules: [{scheduler: a, target: t}]}"),
            "`target` is for a `rule:`",
        ),
        (
            ("service: api}", "service: api, schedules: [{scheduler: a}, {rule: a}]}"),
            "schedule names must differ: a appears more than once",
        ),
        (
            ("service: api}", "service: api, schedules: [{scheduler: 'a b'}]}"),
            "apps.api.environments.staging.schedules.0.scheduler: expected a name matching",
        ),
    ],
)
def test_each_mistake_names_file_path_and_expectation(change: tuple[str, str], expected: str) -> None:
    text = MINIMAL.replace(*change)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(text, "tugboat.yml")
    assert str(caught.value).startswith("tugboat.yml: ")
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "auto_deploy: main",
            "auto_deploy: expected a mapping of keys (KEY: VALUE, or {KEY: VALUE}) (got 'main')",
        ),
        ("timeout: soon", "timeout: expected a whole number (got 'soon')"),
        ("confirm: maybe", "confirm: expected true or false (got 'maybe')"),
        ("allowed_users: U0A", "allowed_users: expected a list, like [a, b] or one `- item` per line"),
        ("timeout: -5", "timeout: expected a number more than 0 (got -5)"),
    ],
)
def test_mistakes_are_said_in_the_catalogs_words_not_pythons(extra: str, expected: str) -> None:
    """No class names or parser jargon: a YAML author reads these."""
    with pytest.raises(CatalogError) as caught:
        parse_catalog(MINIMAL.replace("service: api}", f"service: api, {extra}}}"), "tugboat.yml")
    said = str(caught.value)
    assert f"apps.api.environments.staging.{expected}" in said
    assert "instance of" not in said and "valid dictionary" not in said and "unable to" not in said


def test_unreadable_and_invalid_yaml_are_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("apps: [unclosed")
    with pytest.raises(CatalogError, match=r"bad.yml: not valid YAML at line 1"):
        load_catalog(bad)
