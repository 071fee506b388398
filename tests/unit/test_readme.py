"""The README's settings table lists every setting of every program."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from app.settings import Settings
from control.settings import ControlSettings
from training.settings import TrainingSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("settings", [TrainingSettings, Settings, ControlSettings])
def test_every_setting_is_in_the_readme_table(settings: type[BaseSettings]) -> None:
    prefix = settings.model_config.get("env_prefix", "")
    for name, field in settings.model_fields.items():
        variable = field.validation_alias or f"{prefix}{name.upper()}"
        assert f"| `{variable}` |" in README, f"{variable} is missing from the README table"
