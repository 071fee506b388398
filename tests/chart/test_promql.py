"""Every PromQL expression the chart ships (dashboard panels, alerts) parses, and asks only for
metrics the inference service exports, with labels those metrics carry."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from tests.chart.monitoring import alert_rules, dashboard_queries, dashboards, raw_dashboard_queries

# The service's metrics (app/, all declared in one module) and their labels.
SERVICE_METRICS: dict[str, set[str]] = {
    "mlstack_requests_total": {"route", "method", "status"},
    "mlstack_request_duration_seconds": {"route", "method"},
    "mlstack_predictions_total": {"model_version", "class"},
    "mlstack_prediction_confidence": {"model_version"},
    "mlstack_model_info": {"name", "version", "alias"},
    "mlstack_model_loaded": set(),
    "mlstack_model_load_duration_seconds": set(),
    "mlstack_model_reloads_total": {"outcome"},
    "mlstack_requests_in_flight": set(),
    "mlstack_feature_drift_psi": {"feature"},
    "mlstack_prediction_log_shipped_total": set(),
    "mlstack_prediction_log_dropped_total": set(),
    "mlstack_prediction_log_queue": set(),
    "mlstack_shadow_model_info": {"name", "version", "alias"},
    "mlstack_shadow_rows_total": {"live_version", "shadow_version"},
    "mlstack_shadow_agreed_rows_total": {"live_version", "shadow_version"},
    "mlstack_shadow_probability_difference": {"live_version", "shadow_version"},
    "mlstack_shadow_predictions_total": {"live_version", "shadow_version", "class"},
    "mlstack_shadow_duration_seconds": {"live_version", "shadow_version"},
    "mlstack_shadow_dropped_total": {"live_version", "shadow_version", "reason"},
    "mlstack_shadow_queue": set(),
    "mlstack_webhooks_total": {"outcome"},
}
HISTOGRAMS = {
    "mlstack_request_duration_seconds",
    "mlstack_prediction_confidence",
    "mlstack_model_load_duration_seconds",
    "mlstack_shadow_probability_difference",
    "mlstack_shadow_duration_seconds",
}
# Labels Prometheus attaches to every target scraped through the ServiceMonitor.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "endpoint", "container"}


def _series_labels() -> dict[str, set[str]]:
    """Every series name a query may select → the labels it carries."""
    names = {}
    for metric, labels in SERVICE_METRICS.items():
        if metric in HISTOGRAMS:
            names[f"{metric}_bucket"] = labels | {"le"}
            names[f"{metric}_sum"] = set(labels)
            names[f"{metric}_count"] = set(labels)
        else:
            names[metric] = set(labels)
    return {name: labels | TARGET_LABELS for name, labels in names.items()}


SERIES = _series_labels()


def _selectors(expr: str) -> list[Any]:
    selectors = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            selectors.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return selectors


def _aggregation_labels(expr: str) -> set[str]:
    labels: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return labels


def _queries() -> list[tuple[str, str]]:
    queries = [(f"{q.dashboard} / {q.panel}", q.expr) for q in dashboard_queries()]
    for group in alert_rules()["groups"]:
        for rule in group["rules"]:
            queries.append((f"alert {rule['alert']}", rule["expr"]))
    return queries


QUERIES = _queries()


def test_the_chart_ships_queries() -> None:
    assert len([q for q in QUERIES if not q[0].startswith("alert ")]) >= 10
    assert {d["title"] for d in dashboards().values()} == {"mlstack / Inference", "mlstack / Model"}


@pytest.mark.parametrize(("where", "expr"), QUERIES, ids=[q[0] for q in QUERIES])
def test_query_parses_and_uses_exported_metrics_and_labels(where: str, expr: str) -> None:
    selectors = _selectors(expr)
    assert selectors, f"{where}: selects no series"
    for selector in selectors:
        assert selector.name in SERIES, f"{where}: {selector.name} is not exported by the service"
        for matcher in selector.matchers.matchers:
            assert matcher.name in SERIES[selector.name], (
                f"{where}: {selector.name} has no label {matcher.name}"
            )
    known = set().union(*(SERIES[s.name] for s in selectors))
    unknown = _aggregation_labels(expr) - known
    assert not unknown, f"{where}: aggregates by labels the metrics lack: {unknown}"


def test_dashboard_queries_scope_to_the_selected_namespace_and_service() -> None:
    for query in raw_dashboard_queries():
        for selector in _selectors(query.expr.replace("$__rate_interval", "1m")):
            matchers = {m.name: m.value for m in selector.matchers.matchers}
            assert matchers.get("namespace") == "$namespace", query
            assert matchers.get("job") == "$job", query


def test_every_dashboard_variable_is_substituted() -> None:
    for query in dashboard_queries(rate_interval="2m", namespace="mlstack", job="svc"):
        assert "$" not in query.expr, query
        promql_parser.parse(query.expr)


def test_dashboards_use_the_datasource_variable() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert {"datasource", "namespace", "job"} <= variables, name
        for panel in dashboard["panels"]:
            if panel["type"] == "row":  # a row groups panels and queries nothing
                assert "targets" not in panel, (name, panel["title"])
                continue
            assert panel["datasource"]["uid"] == "${datasource}", (name, panel["title"])
