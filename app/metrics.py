"""Every Prometheus metric of the service, with its labels.

Label values come from the code (route table, status codes) or the model (version, classes,
features), never from the request.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `_created` series double the output and no dashboard or alert reads them.
disable_created_metrics()

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

REQUESTS = Counter(
    "mlstack_requests", "HTTP requests by route, method and status.", ["route", "method", "status"]
)
REQUEST_DURATION = Histogram(
    "mlstack_request_duration_seconds",
    "HTTP request latency in seconds, by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("mlstack_requests_in_flight", "HTTP requests being served.")
PREDICTIONS = Counter(
    "mlstack_predictions", "Predicted rows by model version and class.", ["model_version", "class"]
)
CONFIDENCE = Histogram(
    "mlstack_prediction_confidence",
    "Probability of the predicted class, per row.",
    ["model_version"],
    buckets=(0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
MODEL_INFO = Gauge(
    "mlstack_model_info", "The model being served (value 1).", ["name", "version", "alias"]
)
MODEL_LOADED = Gauge("mlstack_model_loaded", "1 when a model is loaded and served, else 0.")
MODEL_LOAD_DURATION = Histogram(
    "mlstack_model_load_duration_seconds",
    "Time to download, load and check a model version.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
RELOADS = Counter(
    "mlstack_model_reloads",
    "Attempts to load a version, by outcome (success, failed, refused).",
    ["outcome"],
)
FEATURE_DRIFT = Gauge(
    "mlstack_feature_drift_psi",
    "Population stability index of recent inputs against the training baseline, per feature.",
    ["feature"],
)
DRIFT_WINDOW_ROWS = Gauge("mlstack_drift_window_rows", "Rows in the drift window.")
OUT_OF_RANGE = Counter(
    "mlstack_feature_out_of_range",
    "Feature values outside the training range of the version's baseline, per feature "
    "(refused ones included).",
    ["model_version", "feature"],
)
PREDICTION_LOG_SHIPPED = Counter(
    "mlstack_prediction_log_shipped", "Prediction records accepted by the control plane."
)
PREDICTION_LOG_DROPPED = Counter(
    "mlstack_prediction_log_dropped",
    "Prediction records dropped: queue full, refused by the control plane, or unflushed.",
)
PREDICTION_LOG_QUEUE = Gauge(
    "mlstack_prediction_log_queue", "Prediction records waiting to be shipped."
)

SHADOW_MODEL_INFO = Gauge(
    "mlstack_shadow_model_info",
    "The version loaded beside the live one as its shadow (value 1).",
    ["name", "version", "alias"],
)
_PAIR = ["live_version", "shadow_version"]
SHADOW_ROWS = Counter(
    "mlstack_shadow_rows", "Rows the shadow predicted, by live and shadow version.", _PAIR
)
SHADOW_AGREED = Counter(
    "mlstack_shadow_agreed_rows",
    "Shadowed rows whose shadow label is the live label (agreement: this ÷ mlstack_shadow_rows).",
    _PAIR,
)
SHADOW_DIFFERENCE = Histogram(
    "mlstack_shadow_probability_difference",
    "Absolute difference of the live and the shadow probability of the live model's predicted "
    "class, per shadowed row.",
    _PAIR,
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
)
SHADOW_PREDICTIONS = Counter(
    "mlstack_shadow_predictions",
    "Shadowed rows by the shadow's predicted class.",
    [*_PAIR, "class"],
)
SHADOW_DURATION = Histogram(
    "mlstack_shadow_duration_seconds",
    "Time of one shadow prediction call (it predicts every queued request of a pair at once).",
    _PAIR,
    buckets=LATENCY_BUCKETS,
)
SHADOW_DROPPED = Counter(
    "mlstack_shadow_dropped",
    "Sampled requests the shadow did not predict: queue_full (the queue was full) or error.",
    [*_PAIR, "reason"],
)
SHADOW_QUEUE = Gauge("mlstack_shadow_queue", "Requests waiting for the shadow.")
WEBHOOKS = Counter(
    "mlstack_webhooks",
    "MLflow webhook deliveries by outcome (accepted, ignored, or the refusal's status).",
    ["outcome"],
)

for _outcome in ("success", "failed", "refused"):
    RELOADS.labels(_outcome)


def observe_one(child: Any, value: float) -> None:
    """`child.observe(value)` for a histogram child, with one C-level bisection instead of
    prometheus-client's Python loop over the buckets (the same counters are filled: `le`
    inclusive, and the sum). On the request path twice per request."""
    child._buckets[bisect_left(child._upper_bounds, value)].inc(1)
    child._sum.inc(value)


def observe_many(child: Any, values: np.ndarray) -> None:
    """Observe every value of a batch into a histogram child with one increment per bucket.

    prometheus-client has no batch observe; per-row `observe` calls cost more than the model
    on a 64-row batch. This fills the same per-bucket counters `observe` fills (non-cumulative,
    `le` inclusive) and the sum.
    """
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(child._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    child._sum.inc(float(np.sum(values, dtype=np.float64)))
