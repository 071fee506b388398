"""Every Prometheus metric of the control plane (`mlstack_control_*`), with its labels.

Label values come from the code (route templates, outcomes), never from the request: model
names and versions in paths stay out of labels.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()

REQUESTS = Counter(
    "mlstack_control_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "mlstack_control_request_duration_seconds",
    "HTTP request latency in seconds, by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
RECORDS_INGESTED = Counter(
    "mlstack_control_prediction_records_ingested",
    "Prediction records accepted into the log, by outcome.",
    ["outcome"],
)
BATCHES = Counter(
    "mlstack_control_prediction_batches",
    "Prediction record batches received, by result (accepted, invalid, too_large).",
    ["result"],
)
RETENTION_RUNS = Counter(
    "mlstack_control_retention_runs", "Retention runs by outcome (success, failed).", ["outcome"]
)
RETENTION_DELETED = Counter(
    "mlstack_control_retention_deleted_records", "Prediction records deleted by retention."
)
RETENTION_LAST_SUCCESS = Gauge(
    "mlstack_control_retention_last_success_timestamp_seconds",
    "When retention last finished without error (epoch seconds).",
)
ALIAS_CHANGES = Counter(
    "mlstack_control_alias_changes",
    "Promotions and rollbacks by action (promote, rollback) and result "
    "(moved, unchanged, refused).",
    ["action", "result"],
)
REGISTRY_ERRORS = Counter(
    "mlstack_control_registry_errors", "MLflow calls that failed (unreachable or an error)."
)

for _outcome in ("success", "error"):
    RECORDS_INGESTED.labels(_outcome)
for _result in ("accepted", "invalid", "too_large"):
    BATCHES.labels(_result)
WEBHOOKS = Counter(
    "mlstack_control_webhooks",
    "MLflow webhook deliveries by outcome (relayed, ignored, or the refusal's status).",
    ["outcome"],
)
WEBHOOK_RELAYS = Counter(
    "mlstack_control_webhook_relays",
    "Relays of a delivery to one inference pod, by result (delivered: it answered 200).",
    ["result"],
)
for _result in ("delivered", "failed"):
    WEBHOOK_RELAYS.labels(_result)
for _outcome in ("success", "failed"):
    RETENTION_RUNS.labels(_outcome)
for _action in ("promote", "rollback"):
    for _result in ("moved", "unchanged", "refused"):
        ALIAS_CHANGES.labels(_action, _result)
