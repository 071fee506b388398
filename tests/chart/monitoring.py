"""What the chart tells Prometheus and Grafana: dashboard queries, alert rules, scrape endpoints.

For checks against a real Prometheus:

    from tests.chart.monitoring import dashboard_queries, service_monitor_endpoint
    endpoint = service_monitor_endpoint()      # port name/number, path, interval of the scrape
    for query in dashboard_queries():          # (dashboard, panel, expr), ready for /api/v1/query
        ...
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tests.chart.helm import CHART, MONITORING_API, find, render

DASHBOARDS = CHART / "files" / "dashboards"
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}")


class PanelQuery(NamedTuple):
    dashboard: str
    panel: str
    expr: str
    row: str | None = None  # the title of the row the panel sits under, if any


# The row whose panels have data only once a challenger is shadowed (tests/e2e scenario 13).
CHALLENGER_ROW = "Challenger on live traffic (shadow and canary)"


@dataclass(frozen=True)
class ScrapeEndpoint:
    """Where the ServiceMonitor scrapes the inference service."""

    service: str
    port_name: str
    port: int
    path: str
    interval: str
    scrape_timeout: str


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (`$name`, `${name}`) with values; unknown names are an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def _panels(panels: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows hold their panels


def dashboards() -> dict[str, dict[str, Any]]:
    """File name → parsed dashboard, for every dashboard the chart ships."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def raw_dashboard_queries() -> list[PanelQuery]:
    """Every panel query as written in the dashboards, Grafana variables included. A panel
    belongs to the last row panel above it (Grafana's layout of an expanded row)."""
    queries = []
    for dashboard in dashboards().values():
        row = None
        for panel in _panels(dashboard["panels"]):
            if panel.get("type") == "row":
                row = panel["title"]
            for target in panel.get("targets", []):
                if target.get("expr"):
                    queries.append(
                        PanelQuery(dashboard["title"], panel["title"], target["expr"], row)
                    )
    return queries


def dashboard_queries(
    rate_interval: str = "1m", namespace: str = ".*", job: str = ".*"
) -> list[PanelQuery]:
    """Every panel query ready to send to Prometheus: `$__rate_interval` becomes
    `rate_interval`, the namespace and service variables (regex matchers) become the given
    regexes (by default matching anything, whatever labels the scrape attaches)."""
    variables = {"__rate_interval": rate_interval, "namespace": namespace, "job": job}
    return [q._replace(expr=substitute(q.expr, variables)) for q in raw_dashboard_queries()]


def _monitoring_objects(values: Iterable[Path]) -> list[dict[str, Any]]:
    return render(values, api_versions=[MONITORING_API])


def service_monitor_endpoint(values: Iterable[Path] = ()) -> ScrapeEndpoint:
    """The inference ServiceMonitor's endpoint, rendered with `values` files on top of the
    defaults, with its port name resolved to the Service's port number."""
    objects = _monitoring_objects(values)
    monitors = [
        m
        for m in find(objects, "ServiceMonitor")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == "inference"
    ]
    if len(monitors) != 1:
        raise LookupError(f"expected one inference ServiceMonitor, rendered {len(monitors)}")
    monitor = monitors[0]
    endpoint = monitor["spec"]["endpoints"][0]
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s for s in find(objects, "Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    if len(services) != 1:
        raise LookupError(f"the ServiceMonitor selects {len(services)} Services, not one")
    ports = {p["name"]: p["port"] for p in services[0]["spec"]["ports"]}
    return ScrapeEndpoint(
        service=services[0]["metadata"]["name"],
        port_name=endpoint["port"],
        port=ports[endpoint["port"]],
        path=endpoint.get("path", "/metrics"),
        interval=endpoint["interval"],
        scrape_timeout=endpoint["scrapeTimeout"],
    )


def alert_rules(values: Iterable[Path] = ()) -> dict[str, Any]:
    """The rendered PrometheusRule's spec: a Prometheus rule file (`groups: [...]`)."""
    rules = find(_monitoring_objects(values), "PrometheusRule")
    if len(rules) != 1:
        raise LookupError(f"expected one PrometheusRule, rendered {len(rules)}")
    spec: dict[str, Any] = rules[0]["spec"]
    return spec
