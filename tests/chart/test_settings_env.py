"""Every MLSTACK_* variable the chart sets is a setting of the program its container runs.

The settings classes ignore unknown variables (a user's image may carry others), so a variable
the chart misspells, or one a refactor renamed, would be dropped without a word. Each scenario's
containers are matched to their program by command, and each MLSTACK_* name they set must be
one that program's settings read.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from app.settings import Settings as ServiceSettings
from control.settings import ControlSettings
from tests.chart.helm import pod_specs, scenarios
from training.publish import GateSettings
from training.settings import TrainingSettings

SCENARIO_NAMES = [s.name for s in scenarios()]

# The program a container runs, by the start of its command line, and the settings it reads.
PROGRAMS: dict[tuple[str, ...], tuple[type[BaseSettings], ...]] = {
    ("python", "-m", "app"): (ServiceSettings,),
    ("python", "-m", "training"): (TrainingSettings, GateSettings),
    ("mlstack", "serve"): (ControlSettings,),
}


def _names(settings: type[BaseSettings]) -> set[str]:
    """The variables a settings class reads: its prefix and each field, or the field's alias."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for field, info in settings.model_fields.items():
        alias = info.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{field}".upper())
    return names


def _pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Every pod spec of a rendered release, the training Job template the control plane
    publishes in a ConfigMap included."""
    specs = [(obj["metadata"]["name"], spec) for obj in objects for spec in pod_specs(obj)]
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "job.yaml" in obj.get("data", {}):
            job = yaml.safe_load(obj["data"]["job.yaml"])
            specs += [(f"{obj['metadata']['name']}/job.yaml", spec) for spec in pod_specs(job)]
    return specs


# A custom training command (`training.command`) runs the user's script in an image built on
# the platform's, which reports through the round's code (`log_classifier`): the same settings.
CUSTOM_TRAINING = PROGRAMS[("python", "-m", "training")]


def _program(container: dict[str, Any]) -> tuple[type[BaseSettings], ...] | None:
    line = tuple(container.get("command", [])) + tuple(container.get("args", []))
    for start, settings in PROGRAMS.items():
        if line[: len(start)] == start:
            return settings
    return CUSTOM_TRAINING if container["name"] == "training" else None


def _setting_containers(
    rendered: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], list[str]]]:
    """(pod, container, its MLSTACK_* names) of each container that sets any."""
    found = []
    for pod, spec in _pod_specs(rendered):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            names = [
                e["name"] for e in container.get("env", []) if e["name"].startswith("MLSTACK_")
            ]
            if names:
                found.append((pod, container, names))
    return found


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_every_mlstack_variable_is_a_setting_of_its_program(
    scenario: str, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    unknown = []
    for pod, container, names in _setting_containers(rendered[scenario]):
        where = f"{pod}/{container['name']}"
        programs = _program(container)
        assert programs is not None, (
            f"{where} sets {names} but runs no program this test knows: add it to PROGRAMS"
        )
        read = set().union(*(_names(settings) for settings in programs))
        unknown += [f"{where}: {name}" for name in names if name not in read]
    assert not unknown, f"set by the chart, read by no setting: {unknown}"


def test_the_check_sees_the_three_programs(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """The kind scenario sets variables for the service, the round (in its Job and in the
    control plane's template) and the control plane: the check above is not vacuous."""
    checked = _setting_containers(rendered["kind"])
    seen = {container["name"] for _, container, _ in checked}
    pods = {pod for pod, _, _ in checked}
    assert {"inference", "training", "control"} <= seen
    assert any(pod.endswith("/job.yaml") for pod in pods)


def test_a_misspelt_variable_is_caught() -> None:
    """The comparison itself: a name off by one letter is not read by the service."""
    assert "MLSTACK_POLL_SECONDS" in _names(ServiceSettings)
    assert "MLSTACK_POLL_SECOND" not in _names(ServiceSettings)
    assert "MLFLOW_TRACKING_URI" in _names(ServiceSettings)
