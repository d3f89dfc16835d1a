"""deploy/cloudformation.yml: cfn-lint clean, and the task role allows exactly what the code calls.

The AWS operations are collected from the source with `ast`, not from a list kept by hand:
`gateway.ecs(ref, "describe_services", …)`, `gateway.call("ecr", region, "describe_images", …)`,
and in the state store `self._call("put_item", …)`, `client.put_item(…)` and boto3 waiters.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore import xform_name
from cfnlint.decode import cfn_yaml

from bot.domain.aws import family_of
from bot.domain.catalog import Catalog
from bot.sandbox.world import SandboxWorld
from bot.settings import Settings
from bot.state import dynamodb

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "cloudformation.yml"
SOURCES = (ROOT / "bot", ROOT / "commands")
# The simulated world talks to moto, never to a real account.
NOT_PRODUCTION = (ROOT / "bot" / "sandbox",)
STORE = ROOT / "bot" / "state"
ASSUME_ROLE = ROOT / "bot" / "aws" / "assume_role.py"
POLICED_SERVICES = ("ecs", "ecr", "logs", "dynamodb", "sts", "scheduler", "events", "sqs", "ssm", "s3")

# Granted although no call in the code names them: AWS requires them for a call that does.
IMPLICIT = {
    # ECS requires ecs:TagResource to create a resource with tags (condition
    # ecs:CreateAction): register_task_definition copies the current revision's tags, and
    # run_task tags one-off tasks with who asked for them.
    "ecs:TagResource",
}
# IAM has no action of its own for these batch calls: the single-item action allows them.
BATCH_ACTIONS = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage"}
# Functions whose calls an operator makes with their own credentials, never the service:
# `tugboat init-state` creates the table, which this stack already owns; `tugboat init` lists
# a cluster's services to write a first catalog.
OPERATOR_ONLY_FUNCTIONS = {"create_table", "discover_services"}

Operations = dict[str, set[str]]
"""IAM action → where in the code it is called (path:line)."""


# -- what the code calls -------------------------------------------------------------------


@cache
def operation_names(service: str) -> dict[str, str]:
    """snake_case method → API operation name, from botocore's own model (no network)."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def iam_action(service: str, method: str, where: str) -> str:
    names = operation_names(service)
    assert method in names, f"{where}: {service} has no operation {method!r}"
    action = f"{service}:{names[method]}"
    return BATCH_ACTIONS.get(action, action)


def waiter_action(service: str, waiter: str, where: str) -> str:
    model = botocore.session.get_session().get_waiter_model(service)
    names = {xform_name(name): name for name in model.waiter_names}
    assert waiter in names, f"{where}: {service} has no waiter {waiter!r}"
    operation = model.get_waiter(names[waiter]).operation
    return iam_action(service, xform_name(operation), where)


def _text(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


class _Collector(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.in_store = STORE in path.parents
        self.functions: list[str] = []
        self.service: Operations = {}
        self.operator: Operations = {}

    def _add(self, action: str, node: ast.AST) -> None:
        where = f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        operator = any(f in OPERATOR_ONLY_FUNCTIONS for f in self.functions)
        (self.operator if operator else self.service).setdefault(action, set()).add(where)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        args = node.args
        # tugboat check's _describe(ecs, env, "service", region, "operation", …)
        if isinstance(node.func, ast.Name) and node.func.id == "_describe" and len(args) >= 5:
            if (svc := _text(args[2])) and (op := _text(args[4])):
                self._add(iam_action(svc, op, f"{self.path.relative_to(ROOT)}:{node.lineno}"), node)
            return
        if not isinstance(node.func, ast.Attribute):
            return
        method, args = node.func.attr, node.args
        where = f"{self.path.relative_to(ROOT)}:{node.lineno}"
        # EcsGateway.ecs(ref, "operation", …)
        if method == "ecs" and len(args) >= 2 and (op := _text(args[1])):
            self._add(iam_action("ecs", op, where), node)
        # EcsGateway.call("service", region, "operation", …)
        elif method == "call" and len(args) >= 3 and (svc := _text(args[0])):
            if op := _text(args[2]):
                self._add(iam_action(svc, op, where), node)
        elif self.in_store:
            # DynamoStore._call("operation", …) / _try(…), client.operation(…), waiters
            if method in ("_call", "_try") and args and (op := _text(args[0])):
                self._add(iam_action("dynamodb", op, where), node)
            elif method == "get_waiter" and args and (name := _text(args[0])):
                self._add(waiter_action("dynamodb", name, where), node)
            elif method in operation_names("dynamodb"):
                self._add(iam_action("dynamodb", method, where), node)


def _python_files() -> Iterator[Path]:
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            if not any(skip in path.parents for skip in NOT_PRODUCTION):
                yield path


@cache
def code_operations() -> tuple[Operations, Operations]:
    """(what the running service calls, what only `tugboat init-state` calls)."""
    service: Operations = {}
    operator: Operations = {}
    for path in _python_files():
        collector = _Collector(path)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        for found, into in ((collector.service, service), (collector.operator, operator)):
            for action, places in found.items():
                into.setdefault(action, set()).update(places)
    if ASSUME_ROLE.exists():
        service.setdefault("sts:AssumeRole", set()).add("bot/assume_role.py")
    return service, operator


# -- what the template grants --------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    data = cfn_yaml.load(str(TEMPLATE))
    assert isinstance(data, dict)
    return data


def _statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    statements = document["Statement"]
    for statement in statements if isinstance(statements, list) else [statements]:
        if isinstance(statement, dict) and "Fn::If" in statement:
            # A conditional statement: both branches count, AWS::NoValue is nothing.
            for branch in statement["Fn::If"][1:]:
                if branch != {"Ref": "AWS::NoValue"}:
                    yield branch
        else:
            yield statement


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def task_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    resources = template["Resources"]
    task_definition = resources["TaskDefinition"]["Properties"]
    role_name = task_definition["TaskRoleArn"]["Fn::GetAtt"][0]
    role = resources[role_name]["Properties"]
    assert not role.get("ManagedPolicyArns"), "no managed policies: their grants are unchecked"
    statements = [s for policy in role.get("Policies", []) for s in _statements(policy["PolicyDocument"])]
    for resource in resources.values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = resource["Properties"].get("Roles", [])
            if {"Ref": role_name} in roles:
                statements.extend(_statements(resource["Properties"]["PolicyDocument"]))
    assert all(s.get("Effect") == "Allow" for s in statements)
    return statements


def granted(template: dict[str, Any]) -> set[str]:
    return {a for s in task_role_statements(template) for a in _listed(s["Action"])}


def statement_for(template: dict[str, Any], action: str) -> dict[str, Any]:
    matches = [s for s in task_role_statements(template) if action in _listed(s["Action"])]
    assert len(matches) == 1, f"{action}: expected one statement, found {len(matches)}"
    return matches[0]


# -- tests ---------------------------------------------------------------------------------


def test_cfn_lint_is_clean() -> None:
    local = Path(sys.executable).parent / "cfn-lint"
    exe = str(local) if local.exists() else shutil.which("cfn-lint")
    assert exe, "cfn-lint is not installed: pip install -e '.[dev]'"
    result = subprocess.run(
        [exe, "--", str(TEMPLATE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_collector_sees_the_gateway_and_the_store() -> None:
    """Guards the guard: if the code's call style changes, this test says so first."""
    service, _ = code_operations()
    for action in ("ecs:DescribeServices", "ecs:UpdateService", "dynamodb:PutItem"):
        assert action in service, f"collector found no {action}: has the call style changed?"


def test_task_role_allows_every_operation_the_code_calls(template: dict[str, Any]) -> None:
    allowed = granted(template)
    service, _ = code_operations()
    missing = {
        action: sorted(places)
        for action, places in service.items()
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed)
    }
    assert not missing, f"called by the code but not allowed to the task role: {missing}"


def test_task_role_allows_nothing_the_code_does_not_call(template: dict[str, Any]) -> None:
    allowed = granted(template)
    service, _ = code_operations()
    assert not [a for a in allowed if "*" in a], "no wildcard actions"
    extra = {
        action for action in allowed if action.split(":")[0] in POLICED_SERVICES and action not in service
    } - IMPLICIT
    assert not extra, f"granted but never called (or add to IMPLICIT with a reason): {extra}"
    unexpected = {a.split(":")[0] for a in allowed} - {*POLICED_SERVICES, "iam"}
    assert not unexpected, f"services the code never uses: {unexpected}"


def test_init_state_permissions_stay_with_the_operator(template: dict[str, Any]) -> None:
    allowed = granted(template)
    service, operator = code_operations()
    leaked = {a for a in operator if a not in service} & allowed
    assert not leaked, f"only `tugboat init-state` needs {leaked}; the stack owns the table"


def test_managed_services_and_tasks_are_scoped_to_the_managed_clusters(
    template: dict[str, Any],
) -> None:
    for action in ("ecs:DescribeServices", "ecs:DescribeTasks"):
        resource = statement_for(template, action)["Resource"]
        assert resource != "*" and "ManagedClusterNames" in repr(resource), action
    for action in ("ecs:RunTask", "ecs:ListTasks"):
        condition = statement_for(template, action)["Condition"]
        assert "ManagedClusterNames" in repr(condition["ArnLike"]["ecs:cluster"]), action


def test_writes_are_scoped_to_the_catalogs_services_and_families(template: dict[str, Any]) -> None:
    update = statement_for(template, "ecs:UpdateService")["Resource"]
    assert "ManagedServices" in repr(update) and "ManagedClusterNames" not in repr(update)
    run = statement_for(template, "ecs:RunTask")["Resource"]
    assert run != "*" and "ManagedTaskDefinitionFamilies" in repr(run)


def test_pass_role_only_for_managed_roles_and_only_to_their_services(template: dict[str, Any]) -> None:
    """Task roles go only to ECS tasks; schedule roles only back to Scheduler and EventBridge."""
    passing = {
        str(s["Resource"]["Ref"]): s["Condition"]["StringEquals"]["iam:PassedToService"]
        for s in task_role_statements(template)
        if "iam:PassRole" in _listed(s["Action"])
    }
    assert passing == {
        "ManagedTaskRoleArns": "ecs-tasks.amazonaws.com",
        "ScheduleRoleArns": ["scheduler.amazonaws.com", "events.amazonaws.com"],
    }


def test_schedules_are_read_and_written_only_where_the_catalog_names_them(
    template: dict[str, Any],
) -> None:
    for action in ("scheduler:GetSchedule", "scheduler:UpdateSchedule"):
        assert "ManagedSchedules" in repr(statement_for(template, action)["Resource"])
    for action in ("events:DescribeRule", "events:ListTargetsByRule", "events:PutTargets"):
        assert "ManagedScheduleRules" in repr(statement_for(template, action)["Resource"])


def test_assume_role_only_for_the_given_roles(template: dict[str, Any]) -> None:
    assert statement_for(template, "sts:AssumeRole")["Resource"] == {"Ref": "AssumeRoleArns"}


def test_state_table_permissions_are_for_its_own_table(template: dict[str, Any]) -> None:
    dynamo = {a for a in granted(template) if a.startswith("dynamodb:")}
    for action in dynamo:
        resources = _listed(statement_for(template, action)["Resource"])
        assert {"Fn::GetAtt": ["StateTable", "Arn"]} in resources
        assert all("StateTable" in repr(r) for r in resources), resources


def test_state_table_has_the_shape_the_store_expects(template: dict[str, Any]) -> None:
    table = template["Resources"]["StateTable"]["Properties"]
    keys = {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]}
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert keys == {"pk": "HASH", "sk": "RANGE"}
    assert types["pk"] == types["sk"] == "S"
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": dynamodb.TTL_ATTRIBUTE,
        "Enabled": True,
    }
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert dynamodb.INDEX in {i["IndexName"] for i in table["GlobalSecondaryIndexes"]}


def test_container_gets_settings_the_code_reads_and_secrets_from_secrets_manager(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    (container,) = resources["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    environment = {e["Name"]: e["Value"] for e in container["Environment"]}
    optional = [s["Fn::If"] for s in container["Secrets"] if "Fn::If" in s]
    assert optional == [
        [
            "HasGitHubToken",
            {"Name": "GITHUB_TOKEN", "ValueFrom": {"Ref": "GitHubTokenSecretArn"}},
            {"Ref": "AWS::NoValue"},
        ]
    ]
    secrets = {s["Name"]: s["ValueFrom"] for s in container["Secrets"] if "Name" in s}
    assert set(secrets) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "GITHUB_WEBHOOK_SECRET"}
    for name, value in secrets.items():
        # The secret the stack creates, or the one the operator gave: never a plain value.
        condition, created, given = value["Fn::If"]
        assert resources[created["Ref"]]["Type"] == "AWS::SecretsManager::Secret", name
        assert resources[created["Ref"]]["Condition"] == condition
        assert template["Parameters"][given["Ref"]]["Default"] == ""
    assert not set(environment) & set(secrets), "a secret must not also be plain text"
    assert environment["TUGBOAT_STATE"] == {"Fn::Sub": "dynamodb://${StateTable}"}
    settings = {name.upper() for name in Settings.model_fields}
    for name in {*environment, *secrets, "GITHUB_TOKEN"}:
        assert name in settings or name.startswith("AWS_"), f"{name} is not a Tugboat setting"


def test_service_is_fargate_and_scalable(template: dict[str, Any]) -> None:
    service = template["Resources"]["Service"]["Properties"]
    assert service["LaunchType"] == "FARGATE"
    assert service["DesiredCount"] == {"Ref": "DesiredCount"}
    count = template["Parameters"]["DesiredCount"]
    assert count["Default"] == 1
    assert count["MaxValue"] <= 10, "Slack allows an app at most 10 Socket Mode connections"


def test_tags_only_resources_tugboat_creates(template: dict[str, Any]) -> None:
    tagging = [s for s in task_role_statements(template) if "ecs:TagResource" in _listed(s["Action"])]
    assert tagging
    for statement in tagging:
        assert statement["Condition"]["StringEquals"]["ecs:CreateAction"] in (
            "RegisterTaskDefinition",
            "RunTask",
        )


# -- resources: the stack as docs/operations.md configures it for a catalog ------------------
# Which ARN each ECS action the code calls acts on, for one catalog target (see `ecs_requests`).
# Every ECS action the code calls must be here, so a new call cannot skip the resource check.
ECS_RESOURCE_KINDS = {
    "ecs:DescribeServices": "service",
    "ecs:UpdateService": "service",
    "ecs:DescribeClusters": "cluster",
    "ecs:RunTask": "task-definition",
    "ecs:DescribeTasks": "task",
    "ecs:StopTask": "task",
    "ecs:ListTasks": "container-instance",
    "ecs:DescribeTaskDefinition": "task-definition",
    "ecs:ListTaskDefinitions": "*",
    "ecs:RegisterTaskDefinition": "*",
    "ecs:ListServiceDeployments": "service",
    "ecs:DescribeServiceDeployments": "service-deployment",
    "ecs:ContinueServiceDeployment": "service-deployment",
    "ecs:StopServiceDeployment": "service-deployment",
}
PSEUDO_PARAMETERS = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::StackName": "tugboat"}


def resolve(value: Any, parameters: dict[str, Any]) -> Any:
    """A template value with the intrinsics the task role uses worked out, as CloudFormation would."""
    if isinstance(value, list):
        return [resolve(v, parameters) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return parameters.get(argument, f"<{argument}>")
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument)}>"
        if function == "Fn::Join":
            return argument[0].join(resolve(argument[1], parameters))
        if function == "Fn::Split":
            return resolve(argument[1], parameters).split(argument[0])
        if function == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(parameters.get(m[1], f"<{m[1]}>")), argument)
    return {key: resolve(v, parameters) for key, v in value.items()}


def _iam_match(value: str, pattern: str) -> bool:
    """IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` one character."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value) is not None


def _conditions_hold(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            value = context.get(key)
            if value is None:
                return False
            if operator in ("ArnLike", "StringLike"):
                matched = any(_iam_match(value, p) for p in _listed(wanted))
            elif operator in ("ArnEquals", "StringEquals"):
                matched = value in _listed(wanted)
            else:
                raise AssertionError(f"the evaluator knows no condition operator {operator}")
            if not matched:
                return False
    return True


def allows(
    statements: list[dict[str, Any]],
    parameters: dict[str, Any],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
) -> bool:
    """Whether an identity policy made of Allow `statements` lets `action` act on `resource`."""
    for statement in statements:
        if not any(_iam_match(action, a) for a in _listed(statement["Action"])):
            continue
        if not any(_iam_match(resource, r) for r in _listed(resolve(statement["Resource"], parameters))):
            continue
        if _conditions_hold(resolve(statement.get("Condition", {}), parameters), context or {}):
            return True
    return False


@pytest.fixture
def stack_parameters(world: SandboxWorld, catalog: Catalog) -> dict[str, Any]:
    """The `Managed…` parameters for the sandbox's catalog, found the way the docs say."""
    ecs = boto3.client("ecs", region_name=catalog.region, **world_client_settings(world))
    services, families = [], []
    for app in catalog.apps.values():
        for env in app.environments.values():
            services.append(f"{env.cluster}/{env.service}")
            described = ecs.describe_services(cluster=env.cluster, services=[env.service])["services"]
            families.append(family_of(described[0]["taskDefinition"]))
    clusters = sorted({s.split("/")[0] for s in services})
    return {
        **PSEUDO_PARAMETERS,
        "AWS::AccountId": world.account_id,
        "ManagedClusterNames": clusters,
        "ManagedServices": services,
        "ManagedTaskDefinitionFamilies": families,
    }


def world_client_settings(world: SandboxWorld) -> dict[str, str]:
    env = world.env()
    return {
        "endpoint_url": env["AWS_ENDPOINT_URL"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
    }


def ecs_requests(account: str, region: str, cluster: str, service: str, family: str) -> dict[str, str]:
    """resource kind → the ARN a call about `service` acts on (revision 7, a task `abc`)."""
    arn = f"arn:aws:ecs:{region}:{account}"
    return {
        "service": f"{arn}:service/{cluster}/{service}",
        "cluster": f"{arn}:cluster/{cluster}",
        "task-definition": f"{arn}:task-definition/{family}:7",
        "task": f"{arn}:task/{cluster}/abc",
        "container-instance": f"{arn}:container-instance/{cluster}/abc",
        "service-deployment": f"{arn}:service-deployment/{cluster}/{service}/abc",
        "*": "*",
    }


def test_every_ecs_call_has_its_resource_checked() -> None:
    service, _ = code_operations()
    unchecked = {a for a in service if a.startswith("ecs:")} - set(ECS_RESOURCE_KINDS) - IMPLICIT
    assert not unchecked, f"add these to ECS_RESOURCE_KINDS with the ARN they act on: {unchecked}"


def test_task_role_allows_every_ecs_call_on_the_catalogs_services(
    template: dict[str, Any], stack_parameters: dict[str, Any], catalog: Catalog
) -> None:
    statements = task_role_statements(template)
    account = stack_parameters["AWS::AccountId"]
    targets = [env for app in catalog.apps.values() for env in app.environments.values()]
    families = stack_parameters["ManagedTaskDefinitionFamilies"]
    assert len(targets) == len(families) >= 2
    for env, family in zip(targets, families, strict=True):
        region = env.region or catalog.region
        arns = ecs_requests(account, region, env.cluster, env.service, family)
        cluster = {"ecs:cluster": arns["cluster"]}
        for action, kind in ECS_RESOURCE_KINDS.items():
            assert allows(statements, stack_parameters, action, arns[kind], cluster), (action, arns[kind])
        # Implicit tagging: a new revision of the family, a task started in the cluster.
        new_revision = {"ecs:CreateAction": "RegisterTaskDefinition"}
        assert allows(statements, stack_parameters, "ecs:TagResource", arns["task-definition"], new_revision)
        started = {"ecs:CreateAction": "RunTask"}
        assert allows(statements, stack_parameters, "ecs:TagResource", arns["task"], started)


def test_task_role_denies_services_and_task_definitions_outside_the_catalog(
    template: dict[str, Any], stack_parameters: dict[str, Any]
) -> None:
    statements = task_role_statements(template)
    ours = ecs_requests(stack_parameters["AWS::AccountId"], "us-east-1", "staging", "api", "api-staging")
    neighbour = ecs_requests(stack_parameters["AWS::AccountId"], "us-east-1", "staging", "billing", "billing")
    elsewhere = ecs_requests(stack_parameters["AWS::AccountId"], "us-east-1", "sandbox", "api", "api-staging")
    in_staging = {"ecs:cluster": ours["cluster"]}

    def allowed(action: str, resource: str, context: dict[str, str] | None = None) -> bool:
        return allows(statements, stack_parameters, action, resource, context)

    assert allowed("ecs:UpdateService", ours["service"])
    assert not allowed("ecs:UpdateService", neighbour["service"]), "another service in a managed cluster"
    assert not allowed("ecs:UpdateService", elsewhere["service"]), "a catalog service name, another cluster"
    assert allowed("ecs:ContinueServiceDeployment", ours["service-deployment"])
    assert not allowed("ecs:ContinueServiceDeployment", neighbour["service-deployment"]), "another service"
    assert not allowed("ecs:StopServiceDeployment", elsewhere["service-deployment"]), "another cluster"
    assert allowed("ecs:RunTask", ours["task-definition"], in_staging)
    assert not allowed("ecs:RunTask", neighbour["task-definition"], in_staging), "another family"
    assert not allowed("ecs:RunTask", ours["task-definition"], {"ecs:cluster": elsewhere["cluster"]})
    assert not allowed(
        "ecs:TagResource", neighbour["task-definition"], {"ecs:CreateAction": "RegisterTaskDefinition"}
    )


def test_one_deploy_gets_a_working_bot_when_the_secrets_are_given(template: dict[str, Any]) -> None:
    """With existing secret ARNs, nothing is a placeholder: no second deploy is needed."""
    parameters, conditions = template["Parameters"], template["Conditions"]
    for name in ("SlackBotTokenSecretArn", "SlackAppTokenSecretArn", "GitHubWebhookSecretArn"):
        assert parameters[name]["Default"] == ""
    assert conditions["CreateSlackBotTokenSecret"] == {"Fn::Equals": [{"Ref": "SlackBotTokenSecretArn"}, ""]}
    assert parameters["DesiredCount"]["Default"] >= 1


def test_the_catalog_can_live_in_ssm_or_s3_and_only_that_one_is_readable(template: dict[str, Any]) -> None:
    (container,) = template["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    config = next(e["Value"] for e in container["Environment"] if e["Name"] == "TUGBOAT_CONFIG")
    condition, ssm, rest = config["Fn::If"]
    assert condition == "HasCatalogParameter" and ssm == {"Fn::Sub": "ssm:///${CatalogParameterName}"}
    assert rest["Fn::If"][1] == {"Fn::Sub": "s3://${CatalogS3Object}"}
    assert (
        "parameter/${CatalogParameterName}"
        in statement_for(template, "ssm:GetParameter")["Resource"]["Fn::Sub"]
    )
    assert statement_for(template, "s3:GetObject")["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${CatalogS3Object}"
    }


def test_the_load_balancer_forwards_only_post_github_webhook(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    rule = resources["WebhookListenerRule"]["Properties"]
    fields = {c["Field"]: c for c in rule["Conditions"]}
    assert fields["path-pattern"]["PathPatternConfig"]["Values"] == ["/github/webhook"]
    assert fields["http-request-method"]["HttpRequestMethodConfig"]["Values"] == ["POST"]
    listener = resources["WebhookListener"]["Properties"]
    assert listener["Protocol"] == "HTTPS" and listener["DefaultActions"][0]["Type"] == "fixed-response"
    assert resources["WebhookTargetGroup"]["Properties"]["Port"] == 8080, "never /metrics on 9090"
    for name in ("WebhookLoadBalancer", "WebhookListener", "WebhookListenerRule", "WebhookTargetGroup"):
        assert resources[name]["Condition"] == "HasWebhookLoadBalancer", name
