"""Prometheus metrics, served on /metrics. Module-level because Prometheus registries are."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEPLOYS = Counter(
    "tugboat_operations_total",
    "Finished operations by action, app, env and result",
    ["action", "app", "env", "result"],
)
DEPLOY_SECONDS = Histogram(
    "tugboat_operation_duration_seconds",
    "How long operations took, start to final state",
    ["action"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
# botocore and slack_sdk retry nothing under our loops, so each increment is one HTTP request.
AWS_CALLS = Counter(
    "tugboat_aws_calls_total",
    "AWS API requests (each attempt) by operation and outcome code",
    ["operation", "code"],
)
AWS_RETRIES = Counter(
    "tugboat_aws_retries_total", "AWS calls retried after throttling or a dropped connection", ["operation"]
)
SLACK_CALLS = Counter(
    "tugboat_slack_calls_total",
    "Slack Web API requests (each attempt) by method and status",
    ["method", "status"],
)
IN_FLIGHT = Gauge("tugboat_operations_in_flight", "Operations running now")
SOCKET_CONNECTED = Gauge("tugboat_socket_connected", "1 while the Socket Mode connection is up")
WATCHED_SERVICES = Gauge("tugboat_watched_services", "Services the rollout watcher polls")
BACKGROUND_FAILURES = Counter(
    "tugboat_background_failures_total",
    "Failed store writes, audit writes and lease renewals (each retried or acted on, never ignored)",
    ["what"],
)
WATCHES_BY_MODE = Gauge(
    "tugboat_watches",
    "Watched services and one-off tasks, by how they are followed: `events` (woken by ECS events,"
    " a safety-net poll) or `polling` (by phase)",
    ["mode"],
)
ECS_EVENTS = Counter(
    "tugboat_ecs_events_total", "Messages read from TUGBOAT_EVENTS_QUEUE, by ECS detail-type", ["kind"]
)
GITHUB_ERRORS = Counter(
    "tugboat_github_errors_total",
    "GitHub REST calls that failed (GITHUB_TOKEN set), by call and reason: an HTTP status, `timeout`"
    " or `connection`. None of them failed or held up a deploy",
    ["call", "reason"],
)
DORA_DEPLOYS_PER_DAY = Gauge(
    "tugboat_dora_deploys_per_day", "Successful deploys a day over the last 30 days", ["app", "env"]
)
DORA_LEAD_TIME = Gauge(
    "tugboat_dora_lead_time_seconds",
    "Median time from commit to live over the last 30 days (deploys whose commit time is known)",
    ["app", "env"],
)
DORA_CHANGE_FAILURE_RATE = Gauge(
    "tugboat_dora_change_failure_rate",
    "Share (0 to 1) of the last 30 days' changes that failed or were rolled back",
    ["app", "env"],
)
DORA_TIME_TO_RESTORE = Gauge(
    "tugboat_dora_time_to_restore_seconds",
    "Median time from a failed change to a good revision running again, over the last 30 days",
    ["app", "env"],
)
