"""The chart's alerting rules pass promtool's checks and its unit tests, and every alert has a
firing and a not-firing test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import MONITORING_API, find, render
from tests.chart.monitoring import alert_rules

TESTS = Path(__file__).with_name("alerts.test.yaml")
CHART_FILES = Path(__file__).parents[2] / "charts" / "mlstack" / "files"
REQUIRED_ALERTS = {
    "MlstackInferenceErrorRatioHigh",
    "MlstackInferenceLatencyHigh",
    "MlstackInferenceNoModelLoaded",
    "MlstackModelReloadFailing",
    "MlstackFeatureDrift",
    "MlstackPredictionLogDropping",
    "MlstackShadowAgreementLow",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise FileNotFoundError(
            "promtool is missing: run hack/chart/setup.sh (make chart-test does)"
        )
    return path


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rules as rules.yaml, beside a copy of the unit tests."""
    directory = tmp_path_factory.mktemp("rules")
    (directory / "rules.yaml").write_text(yaml.safe_dump(alert_rules(), sort_keys=False))
    shutil.copy(TESTS, directory / TESTS.name)
    return directory


def _alerts(rules: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


def test_the_required_alerts_exist_with_severity_and_description() -> None:
    alerts = _alerts(alert_rules())
    assert {a["alert"] for a in alerts} == REQUIRED_ALERTS
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_promtool_check_rules_passes(rules_dir: Path) -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"],
        cwd=rules_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(REQUIRED_ALERTS)} rules found" in result.stdout


def test_promtool_unit_tests_pass(rules_dir: Path) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", TESTS.name],
        cwd=rules_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_not_firing_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == REQUIRED_ALERTS
    assert quiet == REQUIRED_ALERTS


def test_alert_thresholds_follow_the_values() -> None:
    objects = render(
        set_values=[
            "monitoring.prometheusRule.latency.p99Seconds=2",
            "monitoring.prometheusRule.drift.for=1h",
            "monitoring.prometheusRule.additionalLabels.team=ml",
        ],
        api_versions=[MONITORING_API],
    )
    alerts = {a["alert"]: a for a in _alerts(find(objects, "PrometheusRule")[0]["spec"])}
    assert alerts["MlstackInferenceLatencyHigh"]["expr"].endswith("> 2")
    assert alerts["MlstackFeatureDrift"]["for"] == "1h"
    assert all(a["labels"]["team"] == "ml" for a in alerts.values())


def test_prediction_alerts_and_panels_cover_every_protocol_route_and_no_other() -> None:
    """The alerts' and dashboard's route matcher is the service's table of prediction routes
    (app.protocols): a new protocol route that the matcher misses fails here."""
    import re

    from app.main import create_app
    from app.settings import Settings

    text = (CHART_FILES / "alerts.yaml").read_text()
    [matcher] = re.findall(r'\$predictions := "([^"]+)"', text)
    dashboard = (CHART_FILES / "dashboards" / "inference.json").read_text()
    assert set(re.findall(r'route=~\\"([^\\]+)\\"', dashboard)) == {matcher}
    service = create_app(Settings())
    prediction_routes = set(service.protocols)
    other_routes = set(service.api.openapi()["paths"]) - prediction_routes
    assert {"/predict", "/invocations"} <= prediction_routes
    assert len(prediction_routes) >= 5
    for route in prediction_routes:
        assert re.fullmatch(matcher, route), route
    for route in other_routes:
        assert not re.fullmatch(matcher, route), route
